"""The stop rule on held-out training normals, in every neural method: ``val_loss`` of the held-out
clips is recorded in the history after every epoch, ``train.patience`` epochs without improvement stop
the (first) training stage, the best epoch's weights are the ones scored, and a finished run that is
resumed reuses its selection instead of training again. Held-out clips are training normals only
(the pipeline's ``data.holdout``; a test clip there is refused by ``holdout_split``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auscult.engine import holdout_split
from auscult.methods import FitContext, build_method
from auscult.pipeline.recipe import load_recipe

from .test_schedule_interval import TINY, _first_stage_history

#: the autoencoder's tiny settings (the other methods share TINY with the schedule test)
STOP = {**TINY, "autoencoder": ("synthetic/autoencoder", ["train.batch_size=256"])}


def _audio_for(name, audio):
    if name != "ssl4asd":
        return audio
    from auscult.audio import AudioConfig
    from auscult.data.source import AudioSource

    return AudioSource(AudioConfig(sample_rate=16000, length="tile", duration=5.0), memory=True)


def _split(train):
    return holdout_split(list(train), 0.25, seed=0, key=lambda c: (c.machine, c.section, c.domain))


@pytest.mark.parametrize("name", sorted(STOP))
def test_patience_stops_on_held_out_normals_and_keeps_the_best_epoch(name, easy, one_thread, tmp_path):
    """min_delta 1e9: no epoch after the first counts as an improvement, so patience 1 stops after
    epoch 2 of 4 and the first epoch's weights are kept."""
    train, test, audio = easy
    audio = _audio_for(name, audio)
    fit, val = _split(train)
    recipe, sets = STOP[name]
    cfg = load_recipe(recipe, sets + ["train.epochs=4", "train.patience=1", "train.min_delta=1e9",
                                      "train.log_every=0"])
    m = build_method(name, cfg, FitContext(seed=0, quiet=True, run_dir=tmp_path / "run"))
    m.fit(fit, val, audio)
    hist = _first_stage_history(m)
    assert [r["epoch"] for r in hist] == [0, 1]
    assert all(math.isfinite(r["val_loss"]) for r in hist)
    assert hist[-1].get("stopped_early") is True and not hist[0].get("stopped_early")
    assert hist[-1]["best"] == pytest.approx(hist[0]["val_loss"])
    selected = getattr(m, "selected", None)
    if selected is not None:  # the methods that say which weights they kept
        text = " ".join(selected.values()) if isinstance(selected, dict) else " ".join(selected) \
            if isinstance(selected, list) else selected
        assert "epoch 0" in text, text
    scores = np.asarray(m.score(test[:6], audio))

    # resumed after the stop: no further training, the same selected weights, the same scores
    again = build_method(name, cfg, FitContext(seed=0, quiet=True, run_dir=tmp_path / "run", resume=True))
    again.fit(fit, val, audio)
    assert [r["epoch"] for r in _first_stage_history(again)] == [0, 1]
    np.testing.assert_allclose(np.asarray(again.score(test[:6], audio)), scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["clsia", "protoasd", "ssl4asd"])
def test_without_held_out_clips_the_schedule_runs_to_the_end(name, easy, one_thread):
    """No ``val``: nothing to stop on -- the recipe's epochs all run (the papers' fixed schedules)."""
    train, _, audio = easy
    recipe, sets = STOP[name]
    cfg = load_recipe(recipe, sets + ["train.epochs=2", "train.patience=1", "train.min_delta=1e9",
                                      "train.log_every=0"])
    m = build_method(name, cfg, FitContext(seed=0, quiet=True))
    m.fit(list(train)[::2], [], _audio_for(name, audio))
    hist = _first_stage_history(m)
    assert len(hist) == 2 and "val_loss" not in hist[-1]


def test_ssl4asd_one_class_has_a_held_out_signal(easy, one_thread):
    """One machine, one section, one attribute set: the classification term is 0 by construction, but
    the held-out loss still moves with training (the exchange term). Before, ``val_loss`` was only the
    classification term: identically 0, so the stop rule stopped after ``patience`` epochs on no signal."""
    from auscult.methods.ssl4asd import attribute_class

    import dataclasses

    train, _, _ = easy
    # the source clips of one section with their attributes dropped: one class, as a DCASE 2021 folder
    one = [dataclasses.replace(c, attributes_raw="", attributes={}) for c in train
           if c.section == "00" and c.domain == "source"]
    assert len(one) >= 12 and len({attribute_class(c) for c in one}) == 1
    fit, val = _split(one)
    recipe, sets = STOP["ssl4asd"]
    cfg = load_recipe(recipe, sets + ["train.epochs=3", "train.patience=null", "train.log_every=0"])
    m = build_method("ssl4asd", cfg, FitContext(seed=0, quiet=True))
    m.fit(fit, val, _audio_for("ssl4asd", None))
    assert len(m.classes) == 1
    hist = _first_stage_history(m)
    assert [r["epoch"] for r in hist] == [0, 1, 2]
    vl = [r["val_loss"] for r in hist]
    assert all(math.isfinite(v) and v > 0.1 for v in vl), vl
    assert all(abs(r["val_loss_class"]) < 1e-5 for r in hist), hist  # one class: no classification signal
    assert vl == pytest.approx([r["val_loss_exchange"] for r in hist])
    assert max(vl) - min(vl) > 1e-3, vl  # it moves with the weights (same partners every epoch)


def test_ssl4asd_held_out_loss_is_the_same_for_the_same_weights(easy, one_thread):
    """The held-out loss depends on the weights only: two calls with equally seeded generators agree,
    and a single clip (no partner) gives the classification term alone."""
    import torch

    from auscult.methods.ssl4asd import attribute_class

    train, _, _ = easy
    recipe, sets = STOP["ssl4asd"]
    cfg = load_recipe(recipe, sets + ["train.epochs=1"])
    m = build_method("ssl4asd", cfg, FitContext(seed=0, quiet=True))
    clips = list(train)[:4]
    audio = _audio_for("ssl4asd", None)
    m.n_samples = audio.batch(clips[:1]).shape[1]
    m.classes = sorted({attribute_class(c) for c in train})
    model = m._build_model(0).eval()
    x = audio.batch(clips)
    y = torch.as_tensor([m.classes.index(attribute_class(c)) for c in clips])
    a = m.heldout_losses(model, x, y, torch.Generator().manual_seed(3))
    b = m.heldout_losses(model, x, y, torch.Generator().manual_seed(3))
    assert float(a["val_loss"]) == float(b["val_loss"]) and float(a["val_loss_exchange"]) > 0
    one = m.heldout_losses(model, x[:1], y[:1], torch.Generator().manual_seed(3))
    assert float(one["val_loss_exchange"]) == 0.0 and float(one["val_loss"]) == float(one["val_loss_class"])
