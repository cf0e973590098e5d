"""BandStats (clip statistics of log band energies) against a numpy computation from its definition."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from auscult.errors import ConfigError
from auscult.features import FRONTENDS, BandStats, FeatureConfig, build_frontend, mel_filterbank
from auscult.features.config import FeatureInputError


def _reference(wave: np.ndarray, cfg: FeatureConfig, n_bands: int, scale: str) -> dict[str, np.ndarray]:
    """Centred zero-padded frames, periodic Hann, |rfft|^2, bands summed bin by bin, dB, stats over
    the frames whose window lies inside the signal."""
    n, hop = cfg.n_fft, cfg.hop_length
    pad = np.concatenate([np.zeros(n // 2), wave.astype(np.float64), np.zeros(n // 2)])
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    n_frames = 1 + len(wave) // hop
    frames = [pad[t * hop: t * hop + n] for t in range(n_frames)]
    keep = [t for t in range(n_frames) if t * hop - n // 2 >= 0 and t * hop + n // 2 <= len(wave)]
    spec = np.array([np.abs(np.fft.rfft(frames[t] * win)) ** 2 for t in keep])  # [F, n_freqs]
    if scale == "linear":
        hi = cfg.sample_rate / 2 if cfg.fmax is None else cfg.fmax
        lo, hi = Fraction(cfg.fmin), Fraction(hi)
        e = np.zeros((n_bands, len(keep)))
        for k in range(spec.shape[1]):
            f = Fraction(k * cfg.sample_rate, n)  # exact: band edges that fall on a bin are not rounded
            if lo <= f <= hi:
                e[min(int((f - lo) * n_bands // (hi - lo)), n_bands - 1)] += spec[:, k]
    else:
        e = np.asarray(mel_filterbank(cfg.replace(n_mels=n_bands)), dtype=np.float64) @ spec.T
    db = 10 * np.log10(np.maximum(e, cfg.eps))
    return {"mean": db.mean(1), "std": db.std(1), "flux": np.abs(np.diff(db, axis=1)).mean(1)}


@pytest.mark.parametrize("scale,n_bands,fmin,fmax", [("linear", 16, 0.0, None), ("linear", 24, 100.0, 6000.0),
                                                     ("mel", 20, 0.0, None)])
def test_bandstats_equal_the_definition(scale, n_bands, fmin, fmax):
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 7 * t))
            + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    cfg = FeatureConfig(n_fft=512, hop_length=128, fmin=fmin, fmax=fmax, stft_precision="float64")
    got = BandStats(cfg, n_bands=n_bands, stats=("mean", "std", "flux"), scale=scale)(torch.from_numpy(wave)).numpy()
    ref = _reference(wave, cfg, n_bands, scale)
    assert got.shape == (3 * n_bands,)
    np.testing.assert_allclose(got, np.concatenate([ref["mean"], ref["std"], ref["flux"]]), atol=2e-3)


def test_bandstats_see_what_they_claim():
    """A tone lands in its band's mean; amplitude modulation in one band raises only that band's flux."""
    rng = np.random.default_rng(1)
    sr = 16000
    t = np.arange(2 * sr) / sr
    noise = rng.normal(size=t.size) * 0.01
    tone = 0.2 * np.sin(2 * np.pi * 3100 * t)  # 3100 Hz: band 12 of 32 x 250 Hz
    steady = torch.from_numpy((noise + tone).astype(np.float32))
    rattling = torch.from_numpy((noise + tone * (1 + 0.9 * np.sin(2 * np.pi * 20 * t))).astype(np.float32))
    fe = BandStats(FeatureConfig(n_fft=1024, hop_length=256), n_bands=32)
    a, b = fe(torch.stack([steady, rattling])).numpy()
    assert int(np.argmax(a[:32])) == 12
    flux_gain = b[32:] - a[32:]
    assert int(np.argmax(flux_gain)) == 12 and flux_gain[12] > 3.0
    assert np.abs(np.delete(flux_gain, [11, 12, 13])).max() < 0.5


def test_bandstats_registered_and_validated():
    assert "bandstats" in FRONTENDS.names()
    fe = build_frontend("bandstats", {"n_fft": 1024, "hop_length": 256}, n_bands=8, stats=["flux"])
    assert fe.output_shape(16000) == (8,) and fe.state_dict() == {}
    with pytest.raises(ConfigError, match="without an STFT bin"):
        BandStats(FeatureConfig(n_fft=64), n_bands=64)
    with pytest.raises(ConfigError, match="stats"):
        BandStats(stats=("mean", "kurtosis"))
    with pytest.raises(ConfigError, match="scale"):
        BandStats(scale="bark")
    with pytest.raises(FeatureInputError, match="flux needs two"):
        BandStats(FeatureConfig(n_fft=1024, hop_length=4096))(torch.zeros(3000))
