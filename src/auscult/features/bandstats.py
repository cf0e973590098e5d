"""Clip-level statistics of log band energies: the features of the small-data detectors.

``BandStats`` turns a waveform into one vector: the STFT power spectrum is summed into bands
(equal-width *linear* bands, or mel triangles), each band's energy is taken in dB per frame, and
statistics over the frames are concatenated, statistic by statistic::

    from auscult.features import BandStats, FeatureConfig
    fe = BandStats(FeatureConfig(n_fft=1024, hop_length=256), n_bands=32, stats=("mean", "flux"))
    v = fe(waves)                      # [B, T] -> [B, 64]: 32 band means, then 32 band fluxes

Statistics (``E[b, t]`` = band ``b``'s energy in dB at frame ``t``, over the frames whose analysis
window lies wholly inside the clip when ``center=True``, so padding never enters):

* ``mean``: ``mean_t E[b, t]`` -- the long-term spectrum.
* ``std``: ``std_t E[b, t]`` -- how much the band's level moves over the clip.
* ``flux``: ``mean_t |E[b, t] - E[b, t-1]|`` -- how much it moves from one frame to the next:
  the band's fast amplitude modulation. Rattling, impacts and roughness raise it even where the
  long-term spectrum does not change.

Why linear bands: machine faults are often narrow-band and below 1-2 kHz, where 128 mel bands
are already as fine as the STFT; above 2 kHz mel bands grow wide and average a fault's harmonics
into the background. Equal-width bands keep the same resolution everywhere.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .config import FeatureConfig, FeatureInputError
from .frontends import FRONTENDS, mel_filterbank_tensor
from .stft import Spectrogram, _cached, as_batch

__all__ = ["BandStats", "BAND_STATS", "linear_band_matrix", "interior_frame_mask"]

BAND_STATS = ("mean", "std", "flux")
BAND_SCALES = ("linear", "mel")


def linear_band_matrix(config: FeatureConfig, n_bands: int) -> np.ndarray:
    """``[n_bands, n_freqs]`` 0/1 matrix: STFT bin ``k`` (at ``k * sr / n_fft`` Hz) belongs to band
    ``floor((f - fmin) / (fmax - fmin) * n_bands)`` when ``fmin <= f <= fmax`` (``fmax`` itself goes
    to the last band); bins outside the range belong to none."""
    freqs = np.arange(config.n_freqs) * config.sample_rate / config.n_fft
    lo, hi = float(config.fmin), float(config.mel_fmax)
    inside = (freqs >= lo) & (freqs <= hi)
    idx = np.minimum(np.floor((freqs - lo) * n_bands / (hi - lo) + 1e-9), n_bands - 1).astype(int)  # exact at edges
    m = np.zeros((n_bands, config.n_freqs))
    m[idx[inside], np.flatnonzero(inside)] = 1.0
    empty = np.flatnonzero(m.sum(1) == 0)
    if empty.size:
        raise ConfigError(
            f"BandStats: {n_bands} linear bands over {lo:g}-{hi:g} Hz leave band(s) {empty[:5].tolist()} without an "
            f"STFT bin (bins are {config.sample_rate / config.n_fft:g} Hz apart); use fewer bands or a larger n_fft"
        )
    return m


def interior_frame_mask(n_frames: int, n_samples: int, config: FeatureConfig) -> np.ndarray:
    """Frames whose analysis window lies inside the signal (all frames when ``center=False``, or
    when fewer than two are interior)."""
    mask = np.ones(n_frames, dtype=bool)
    if config.center:
        c = np.arange(n_frames) * config.hop_length
        mask = (c - config.n_fft // 2 >= 0) & (c + config.n_fft // 2 <= n_samples)
        if mask.sum() < 2:
            mask[:] = True
    return mask


@FRONTENDS.register("bandstats", defaults={"n_bands": 32, "stats": ("mean", "flux"), "scale": "linear"},
                    description="per-band clip statistics of log band energies [B, n_bands * len(stats)]")
class BandStats(nn.Module):
    """Statistics over frames of log band energies (see the module docstring).

    Args:
        config: STFT settings (``n_fft``, ``hop_length``, ``fmin``/``fmax`` bound the bands,
            ``eps`` floors the dB). ``power`` and ``n_mels`` are ignored (power spectrum; the
            band count is ``n_bands``).
        n_bands: number of bands.
        stats: which statistics, in output order (``mean``, ``std``, ``flux``).
        scale: ``"linear"`` (equal-width rectangular bands) or ``"mel"`` (the mel filterbank of
            ``config`` with ``n_bands`` triangles).

    Output ``[B, n_bands * len(stats)]`` float32 (``[n_bands * len(stats)]`` for a 1-D input).
    """

    def __init__(self, config: FeatureConfig | None = None, n_bands: int = 32,
                 stats: Sequence[str] = ("mean", "flux"), scale: str = "linear"):
        super().__init__()
        self.config = config or FeatureConfig()
        if isinstance(n_bands, bool) or not isinstance(n_bands, (int, np.integer)) or n_bands < 1:
            raise ConfigError(f"BandStats n_bands={n_bands!r} must be a positive integer")
        stats = (stats,) if isinstance(stats, str) else tuple(stats)
        bad = [s for s in stats if s not in BAND_STATS]
        if not stats or bad or len(set(stats)) != len(stats):
            raise ConfigError(f"BandStats stats={stats!r}: give distinct names from {BAND_STATS}")
        if scale not in BAND_SCALES:
            raise ConfigError(f"BandStats scale={scale!r}: choose one of {BAND_SCALES}")
        self.n_bands, self.stats, self.scale = int(n_bands), stats, scale
        self.spectrogram = Spectrogram(self.config, power=2.0)
        if scale == "linear":
            key = ("bandstats-linear", self.config.sample_rate, self.config.n_fft, self.config.fmin,
                   self.config.mel_fmax, self.n_bands)
            bands = _cached(key, lambda: torch.as_tensor(linear_band_matrix(self.config, self.n_bands),
                                                         dtype=torch.float32))
        else:
            bands = mel_filterbank_tensor(self.config.replace(n_mels=self.n_bands))
        self.register_buffer("bands", bands, persistent=False)

    @property
    def dim(self) -> int:
        return self.n_bands * len(self.stats)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        """Shape of one clip's features (no batch axis)."""
        return (self.dim,)

    def band_energies_db(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, n_bands, frames]`` band energies in dB of the interior frames of ``[B, T]`` waves."""
        power = self.spectrogram.frame_power(x)  # [B, F, n_freqs]
        keep = interior_frame_mask(power.shape[1], int(x.shape[-1]), self.config)
        power = power[:, torch.from_numpy(keep).to(power.device)]
        e = torch.matmul(power, self.bands.to(power.dtype).t()).transpose(1, 2)
        return 10.0 * torch.log10(e.clamp_min(self.config.eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = as_batch(x)
        e = self.band_energies_db(x)
        if "flux" in self.stats and e.shape[-1] < 2:
            raise FeatureInputError(f"a clip of {x.shape[-1]} samples gives one frame; flux needs two")
        parts = {"mean": lambda: e.mean(-1), "std": lambda: e.std(-1, unbiased=False),
                 "flux": lambda: (e[..., 1:] - e[..., :-1]).abs().mean(-1)}
        out = torch.cat([parts[s]() for s in self.stats], dim=-1).float()
        return out[0] if squeeze else out
