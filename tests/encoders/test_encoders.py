"""Clip encoders, the leave-one-out small-data detector, and the CNN encoder's files and pre-training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import torch

from auscult.backends import BACKENDS
from auscult.encoders import (ENCODERS, BandStatsEncoder, EmbeddingDetector, LogMelStatsEncoder, build_encoder,
                              threshold_from_normal_scores)
from auscult.errors import CheckpointError, ConfigError, DataError
from auscult.features import BandStats, FeatureConfig, LogMel


def _waves(n, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return [(0.1 * rng.normal(size=t.size) + 0.2 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)).astype(np.float32)
            for _ in range(n)]


def test_encoders_embed_in_order_whatever_the_lengths():
    waves = _waves(3, 1.0) + _waves(2, 0.5, seed=1)
    waves = [waves[0], waves[3], waves[1], waves[4], waves[2]]
    enc = BandStatsEncoder(n_bands=16, stats=("mean", "std"))
    got = enc.embed(waves, batch=2)
    fe = BandStats(FeatureConfig(n_fft=1024, hop_length=256), n_bands=16, stats=("mean", "std"))
    for row, w in zip(got, waves):
        np.testing.assert_allclose(row, fe(torch.from_numpy(w)).numpy(), rtol=1e-6, atol=1e-6)
    assert build_encoder(enc.config()).config() == enc.config()
    with pytest.raises(DataError, match="NaN"):
        enc.embed([np.full(1000, np.nan, dtype=np.float32)])


def test_logmel_stats_is_the_logmel_knn_representation():
    waves = _waves(2)
    got = LogMelStatsEncoder(sd_floor_db=0.5).embed(waves)
    for row, w in zip(got, waves):
        lm = LogMel(FeatureConfig())(torch.from_numpy(w)).double().numpy()
        want = np.concatenate([lm.mean(1), np.sqrt(lm.var(1) + 0.25)])
        np.testing.assert_allclose(row, want, rtol=1e-9)
    assert set(ENCODERS.names()) >= {"bandstats", "logmel_stats", "cnn"}


def test_detector_threshold_comes_from_leave_one_out_scores():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5)) * [1, 2, 3, 4, 5] + 10
    det = EmbeddingDetector({"name": "logmel_stats"}, {"name": "knn", "k": 1, "metric": "euclidean"})
    det.fit_embeddings(x)
    want = []
    for i in range(30):
        rest = np.delete(x, i, axis=0)
        mu, sd = rest.mean(0), rest.std(0)
        sd = sd + 1e-6 * sd.max() + 1e-12
        want.append(np.min(np.linalg.norm((rest - mu) / sd - (x[i] - mu) / sd, axis=1)))
    np.testing.assert_allclose(det.normal_scores_, want, rtol=1e-9)
    # 30 scores * 1 % < 10 expected false alarms: the gamma above the minimum
    m = min(want)
    shape, _, scale = scipy.stats.gamma.fit(np.maximum(np.array(want) - m, 1e-9 * (max(want) - m)), floc=0)
    assert det.threshold == pytest.approx(m + scipy.stats.gamma.ppf(0.99, shape, scale=scale))
    assert det.threshold_["method"] == "gamma" and "leave-one-out" in det.threshold_["note"]
    # the final model holds every clip: each training clip scores 0 against itself
    np.testing.assert_allclose(det.score_embeddings(x), 0.0, atol=1e-6)


def test_detector_on_waves_save_load_and_errors():
    waves = _waves(8)
    det = EmbeddingDetector(BandStatsEncoder(n_bands=8), {"name": "knn_norm"}, false_alarm_rate=0.2).fit(waves)
    assert det.threshold_["method"] == "gamma"
    probe = _waves(3, seed=5)
    cfg = json.loads(json.dumps(det.config()))
    again = EmbeddingDetector.from_saved(cfg, det.state())
    np.testing.assert_array_equal(again.score(probe), det.score(probe))
    assert again.threshold == det.threshold
    np.testing.assert_array_equal(det.decide(probe), det.score(probe) > det.threshold)
    with pytest.raises(DataError, match="at least"):
        EmbeddingDetector(BandStatsEncoder(n_bands=8)).fit(waves[:3])
    with pytest.raises(ConfigError, match="registered"):
        EmbeddingDetector(BandStatsEncoder(), {"name": "nope"})
    with pytest.raises(ConfigError, match="group_by"):
        EmbeddingDetector(BandStatsEncoder(), {"name": "knn", "group_by": "section"})
    with pytest.raises(ConfigError, match="fit"):
        EmbeddingDetector(BandStatsEncoder()).score(probe)
    with pytest.raises(CheckpointError, match="incomplete"):
        EmbeddingDetector.from_saved({k: v for k, v in cfg.items() if k != "threshold"}, det.state())


def test_empirical_threshold_when_enough_scores():
    s = np.arange(1000, dtype=float)
    t = threshold_from_normal_scores(s, 0.01)
    assert t["method"] == "false_alarm_rate" and t["value"] == 989.0


# ---------------------------------------------------------------------------------- CNN encoder
def test_cnn_encoder_files_roundtrip_and_embedding_definition(tmp_path):
    from auscult.encoders.cnn import CNNEncoder, build_net, save_encoder

    torch.manual_seed(0)
    crop = 1 + 8000 // 256
    net = build_net(32, crop, emb_dim=16, width=32).eval()
    feats = {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 32}
    js = save_encoder(tmp_path / "enc", net, {"features": feats, "crop_frames": crop, "window_hop": 10,
                                               "net": {"emb_dim": 16, "width": 32}}, dtype="float32")
    enc = CNNEncoder(js)
    w = _waves(1, seconds=1.3)[0]
    got = enc.embed([w])[0]
    with torch.no_grad():
        lm = LogMel(FeatureConfig(**feats))(torch.from_numpy(w))
        lm = lm - lm.mean()
        f = lm.shape[-1]
        starts = list(range(0, f - crop + 1, 10))
        if starts[-1] + crop < f:
            starts.append(f - crop)
        embs = [torch.nn.functional.normalize(net(lm[None, None, :, s:s + crop]), dim=1)[0] for s in starts]
        want = torch.stack(embs).mean(0).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert enc.embed([w[:4000]]).shape == (1, 16)  # shorter than a crop: tiled
    with np.load(tmp_path / "enc.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    with pytest.raises(CheckpointError, match="not found"):
        CNNEncoder(tmp_path / "missing")
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something-else", "format_version": 1}))
    (tmp_path / "bad.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not an auscult encoder"):
        CNNEncoder(tmp_path / "bad.json")


def test_pretraining_resumes_after_a_kill(tmp_path):
    from auscult.encoders.cnn import CNNEncoder
    from auscult.encoders.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(str(tmp_path / "run"), machines=["fan", "valve"], units_per_type=1, clips_per_unit=3,
                         clip_s=2.5, crop_s=2.0, epochs=2, batch_size=4, emb_dim=16, width=32)

    class Killed(Exception):
        pass

    def die_after_first_epoch(msg):
        if msg.startswith("{") and json.loads(msg)["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        pretrain(cfg, log=die_after_first_epoch)
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and not (tmp_path / "run" / "encoder.json").exists()
    lines = []
    js = pretrain(cfg, log=lines.append)
    assert lines[0] == "resumed after epoch 1" and len(lines) == 2  # shards reused, one epoch left
    head = json.loads(js.read_text())
    assert [h["epoch"] for h in head["training"]["history"]] == [1, 2]
    assert head["training"]["classes"] == ["fan/p00", "valve/p00"]
    assert "--machines fan valve" in head["training"]["command"]
    assert CNNEncoder(js).embed(_waves(1, seconds=3.0)).shape == (1, 16)
    with pytest.raises(SystemExit, match="another configuration"):
        pretrain(PretrainConfig(str(tmp_path / "run"), machines=["fan", "valve"], units_per_type=1, clips_per_unit=3,
                                clip_s=2.5, crop_s=2.0, epochs=3, batch_size=4, emb_dim=16, width=32))


def test_fused_detector_fuses_its_members_leave_one_out_scores():
    from auscult.backends import ScoreFusion
    from auscult.encoders import FusedDetector

    waves = _waves(10)
    probe = _waves(3, seed=9)
    mk = lambda stats: EmbeddingDetector(BandStatsEncoder(n_bands=8, stats=stats), {"name": "selective_mahalanobis"})
    fused = FusedDetector([mk(("mean",)), mk(("flux",))], fusion="z").fit(waves)
    a, b = mk(("mean",)).fit(waves), mk(("flux",)).fit(waves)
    normal = np.stack([a.normal_scores_, b.normal_scores_], axis=1)
    f = ScoreFusion("z").fit(normal)
    np.testing.assert_allclose(fused.normal_scores_, f.fuse(normal))
    np.testing.assert_allclose(fused.score(probe), f.fuse(np.stack([a.score(probe), b.score(probe)], axis=1)))
    assert fused.threshold == pytest.approx(threshold_from_normal_scores(f.fuse(normal), 0.01)["value"])
    again = FusedDetector.from_saved(json.loads(json.dumps(fused.config())), fused.state())
    np.testing.assert_array_equal(again.score(probe), fused.score(probe))
    with pytest.raises(ConfigError):
        FusedDetector([mk(("mean",))], fusion="max")
