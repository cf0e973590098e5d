"""``encoder_ft``: the shipped encoder fine-tuned on the folder's units as classes, a k-NN per unit.

Small on purpose (2 simulated fan units x 6 clips of 2 s, 1-2 epochs): what is checked is the
contract -- it trains (weights move), it is deterministic, a killed run resumes to the same weights,
it saves as plain arrays and reloads to the same scores, and one unit is a clear error.
"""

from __future__ import annotations

import numpy as np
import pytest

from auscult.errors import CheckpointError, ConfigError, DataError
from auscult.methods import METHODS, FitContext


@pytest.fixture(scope="module")
def units():
    from auscult.data.source import WaveformSource
    from auscult.data.synth import render_clip, unit_for

    src = WaveformSource({"sample_rate": 16000, "channel": "mean", "length": "keep"})
    train, test = [], []
    for section in ("00", "01"):
        u = unit_for("fan", section, 7)
        train += [src.add(render_clip("fan", unit=u, seed=i, duration=2.0), "fan", section=section, split="train")
                  for i in range(6)]
        test += [src.add(render_clip("fan", unit=u, seed=100 + i, duration=2.0), "fan", section=section)
                 for i in range(2)]
    return src, train, test


def _build(epochs=1, context=None, **extra):
    cfg = {"audio": {"sample_rate": 16000, "channel": "mean", "length": "keep"},
           "encoder_ft": {"epochs": epochs, "batch_size": 4, **extra}}
    return METHODS.build("encoder_ft", config=cfg, context=context or FitContext(seed=3, quiet=True))


def _weights(m):
    return {k: v.detach().clone() for k, v in m.encoder.net.state_dict().items()}


def test_fine_tunes_deterministically_and_scores_per_unit(units, one_thread):
    src, train, test = units
    frozen = _weights(_build(epochs=0))
    a = _build().fit(train, [], src)
    b = _build().fit(train, [], src)
    wa, wb = _weights(a), _weights(b)
    moved = [k for k in wa if wa[k].is_floating_point() and not np.allclose(wa[k].numpy(), frozen[k].numpy())]
    assert len(moved) > len(wa) // 2, "fine-tuning left the encoder (almost) as shipped"
    assert all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa), "same seed, different weights"
    sa, sb = a.score(test, src), b.score(test, src)
    again = _build()
    again.fit(train, [], src)
    again.fit(train, [], src)  # a repeated fit starts from the shipped weights, not the last fit's
    assert again.score(test, src).tolist() == sa.tolist()
    assert np.isfinite(sa).all() and sa.tolist() == sb.tolist()
    assert sorted(a.detectors) == ["fan/00", "fan/01"]
    # a training clip scores its leave-one-out score from its own unit's back-end
    ref = a.reference_scores()
    assert a.score(train[:1], src)[0] == ref[0] == a.detectors["fan/00"].normal_scores_[0]
    assert a.score(train[6:7], src)[0] == ref[6] == a.detectors["fan/01"].normal_scores_[0]


def test_saves_as_arrays_and_reloads_to_the_same_scores(units, one_thread, tmp_path):
    from auscult.fileio import pack_tree, unpack_tree

    src, train, test = units
    m = _build().fit(train, [], src)
    arrays: dict = {}
    skeleton = pack_tree(m.state_dict(), arrays)
    np.savez(tmp_path / "s.npz", **arrays)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        state = unpack_tree(skeleton, {k: z[k] for k in z.files})
    fresh = _build()
    fresh.load_state_dict(state)
    assert fresh.score(test, src).tolist() == m.score(test, src).tolist()
    assert fresh.score(train[:2], src).tolist() == m.score(train[:2], src).tolist()
    bad = dict(state, weights="some-other-encoder")
    with pytest.raises(CheckpointError, match="fine-tuned from"):
        _build().load_state_dict(bad)


def test_a_killed_run_resumes_to_the_same_weights(units, one_thread, tmp_path):
    src, train, test = units
    straight = _build(epochs=2, context=FitContext(seed=3, quiet=True, run_dir=tmp_path / "a")).fit(train, [], src)
    # the same run cut after its first epoch (its checkpoint is what a killed run leaves), then resumed
    _build(epochs=1, context=FitContext(seed=3, quiet=True, run_dir=tmp_path / "b")).fit(train, [], src)
    with pytest.raises(ConfigError, match="--resume"):
        _build(epochs=2, context=FitContext(seed=3, quiet=True, run_dir=tmp_path / "b")).fit(train, [], src)
    resumed = _build(epochs=2, context=FitContext(seed=3, quiet=True, run_dir=tmp_path / "b", resume=True))
    resumed.fit(train, [], src)
    ws, wr = _weights(straight), _weights(resumed)
    assert all(np.array_equal(ws[k].numpy(), wr[k].numpy()) for k in ws)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.score(test, src).tolist() == straight.score(test, src).tolist()
    with pytest.raises(CheckpointError, match="other settings"):  # other data: refused, not mixed
        _build(epochs=2, context=FitContext(seed=3, quiet=True, run_dir=tmp_path / "b", resume=True)).fit(
            train[:5] + train[6:], [], src)


def test_one_unit_is_a_clear_error(units, one_thread):
    src, train, test = units
    with pytest.raises(DataError, match="single unit.*encoder_knn"):
        _build().fit(train[:6], [], src)
    with pytest.raises(DataError, match="unit fan/01 \\(2 training clips\\)"):
        _build().fit(train[:8], [], src)
    m = _build().fit(train, [], src)
    from auscult.data.synth import render_clip

    other = src.add(render_clip("fan", seed=1, duration=2.0), "fan", section="05")
    with pytest.raises(DataError, match="not among the training units"):
        m.score([other], src)


def test_bad_settings_are_config_errors():
    for bad in ({"epochs": -1}, {"lr": 0}, {"statex": "yes"}, {"batch_size": 0}, {"folds": 1}):
        with pytest.raises(ConfigError):
            _build(**{"epochs": 1, **bad})
