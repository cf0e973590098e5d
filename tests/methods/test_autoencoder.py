"""The DCASE autoencoder baseline: features, scores, state, and that it beats chance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from auscult.data.source import AudioSource
from auscult.errors import ConfigError, DataError
from auscult.eval import auc
from auscult.methods import METHODS, FitContext, build_method


def _labels(clips) -> np.ndarray:
    return np.array([c.label == "anomaly" for c in clips], dtype=int)


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory):
    """The synthetic 'small' preset at small scale: 3 machine types x 3 units, 4 s clips, 18 train / 20
    test clips per unit, faults at severity 0.5-1. Since issue 14 the preset's default severities
    (0.1-1) against a -6..+6 dB background put the AE where the DCASE baselines are (0.55-0.80): at
    this size the MSE score's mean AUC was 0.590 (ToyCar 0.557, fan 0.499, slider 0.714), so the
    test asks for clearly present faults, as the other methods' beat-chance tests do."""
    from auscult.data.index import DatasetIndex
    from auscult.data.synth import generate_dataset

    root = generate_dataset("small", tmp_path_factory.mktemp("small") / "data", seed=0,
                            machines=["ToyCar", "fan", "slider"], scale=0.5, duration=4.0, workers=2, probe=False,
                            severity_range=(0.5, 1.0))
    return DatasetIndex.scan(root)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    return AudioSource({}, tmp_path_factory.mktemp("ae_cache"))


def test_registered_with_baseline_defaults():
    assert "autoencoder" in METHODS
    m = build_method("autoencoder", {})
    assert m.input_dim == 640 and m.feature_cfg.n_fft == 1024 and m.feature_cfg.hop_length == 512
    net = m._build_net()
    dims = [l.out_features for l in net.modules() if isinstance(l, torch.nn.Linear)]
    assert dims == [128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    assert m.train_cfg["lr"] == 1e-3 and m.train_cfg["optimizer"] == "adam"


def test_stacked_vectors_match_framestack(small_synth, audio):
    """The AE's on-the-fly gather builds exactly the FrameStack vectors (frame j's mels first)."""
    from auscult.features import FeatureConfig, FrameStack

    clips = small_synth.select(machine="fan", split="train")[:3]
    m = build_method("autoencoder", {})
    feats = m.features(clips, audio)
    ref = FrameStack(FeatureConfig(), context=5)(audio.batch(clips))  # [B, V, 640]
    got = feats.gather(torch.arange(len(feats))).reshape(ref.shape)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)


def test_beats_chance_on_small_synthetic_preset(small_synth, audio):
    """One model per machine type; both baseline scores (MSE and selective Mahalanobis) from it."""
    aucs = {"mse": {}, "mahalanobis": {}}
    for machine in small_synth.machines():
        train = small_synth.select(machine=machine, split="train")
        test = small_synth.select(machine=machine, split="test")
        m = build_method("autoencoder", {"model": {"normalize": True}, "score": {"kind": "mahalanobis"},
                                         "train": {"epochs": 10, "batch_size": 256}}, FitContext(quiet=True))
        m.fit(train, [], audio)
        aucs["mahalanobis"][machine] = auc(_labels(test), m.score(test, audio))
        aucs["mse"][machine] = auc(_labels(test), m.residual_summary(test, audio)[0])
    for kind, per in aucs.items():
        print(f"\nAE ({kind}) AUC on the synthetic 'small' preset (3 machines x 3 units, 20 test clips per unit): "
              + ", ".join(f"{k}={v:.3f}" for k, v in per.items()) + f"; mean {np.mean(list(per.values())):.3f}")
        assert np.mean(list(per.values())) > 0.6, kind
        assert sum(v > 0.5 for v in per.values()) >= 2, kind


def test_beats_chance_on_real_gearbox_clips(shared_data, audio):
    """DCASE 2021 gearbox section 00: train on normals 0000-0094, test on the other 100 normals and
    the 105 anomalies (the fair split described in the shared data README)."""
    from auscult.data.index import DatasetIndex

    clips = DatasetIndex.scan(shared_data / "dcase2021-gearbox-s00").clips
    train = [dataclasses.replace(c, split="train") for c in clips if c.label == "normal" and c.index <= 94]
    test = [c for c in clips if not (c.label == "normal" and c.index <= 94)]
    assert len(train) == 95 and len(test) == 205
    # 3 epochs left the AUC at the mercy of noise-level feature differences (0.49-0.64 across seeds
    # and float32/float64 STFTs); at 10 epochs it was 0.60 for seeds 0 and 1 (about 10 s).
    m = build_method("autoencoder", {"train": {"epochs": 10, "batch_size": 512}}, FitContext(quiet=True))
    m.fit(train, [], audio)
    a = auc(_labels(test), m.score(test, audio))
    print(f"\nAE (mse, baseline features, 10 epochs) AUC on real gearbox clips: {a:.3f}")
    assert a > 0.55


def test_model_selection_keeps_the_best_held_out_epoch(small_synth, audio):
    """Without a run directory, the weights of the epoch with the lowest held-out loss are kept."""
    train = small_synth.select(machine="fan", split="train")
    # A high learning rate overshoots, so some epoch before the last is the best one; which lr does
    # that depends on float details, so try a few and require one where best != last (else the
    # test would be vacuous).
    for lr in (0.05, 0.1, 0.2, 0.02):
        m = build_method("autoencoder", {"train": {"epochs": 4, "batch_size": 64, "lr": lr}}, FitContext(quiet=True))
        m.fit(train[:-5], train[-5:], audio)
        losses = [h["val_loss"] for h in m.history]
        if losses.index(min(losses)) < len(losses) - 1:
            break
    else:
        pytest.fail(f"no learning rate made an earlier epoch the best; last losses {losses}")
    feats = m.features(train[-5:], audio)
    now = float((m._residuals(feats, torch.device("cpu")) ** 2).mean())
    assert now == pytest.approx(min(losses), rel=1e-4)


def test_state_round_trip_and_refusals(small_synth, audio):
    train = small_synth.select(machine="slider", split="train")
    test = small_synth.select(machine="slider", split="test")[:6]
    cfg = {"model": {"normalize": True}, "score": {"kind": "mahalanobis"}, "train": {"epochs": 1}}
    m = build_method("autoencoder", cfg, FitContext(quiet=True))
    m.fit(train[:-4], train[-4:], audio)
    s = m.score(test, audio)
    assert s.shape == (6,) and np.isfinite(s).all()
    state = m.state_dict()
    m2 = build_method("autoencoder", cfg)
    m2.load_state_dict(state)
    np.testing.assert_array_equal(m2.score(test, audio), s)
    assert m.embed(test, audio).shape == (6, 128)
    # a state trained for MSE cannot serve the Mahalanobis score; another input size is refused
    mse = build_method("autoencoder", {"train": {"epochs": 1}}, FitContext(quiet=True)).fit(train[:8], [], audio)
    with pytest.raises(ConfigError, match="back-end"):
        build_method("autoencoder", cfg).load_state_dict(mse.state_dict())
    with pytest.raises(ConfigError, match="640"):
        build_method("autoencoder", {"features": {"n_mels": 64}}).load_state_dict(state)
    # training never touches test or anomalous clips
    with pytest.raises(DataError, match="training normals only"):
        build_method("autoencoder", cfg).fit(train[:4] + test[:1], [], audio)


@pytest.mark.parametrize("cfg, match", [
    ({"model": {"hiden": 3}}, "hiden"),
    ({"model": {"context": 0}}, "model.context"),
    ({"train": {"epochs": "ten"}}, "train.epochs"),
    ({"score": {"kind": "l1"}}, "score.kind"),
    ({"features": {"sample_rate": 8000}}, "sample_rate"),
    ({"model": {"normalize": "yes"}}, "normalize"),
])
def test_config_errors_name_the_key(cfg, match):
    with pytest.raises(ConfigError, match=match):
        build_method("autoencoder", cfg)
