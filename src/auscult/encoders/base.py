"""Clip encoders: a waveform in, one fixed-length vector out, nothing fitted on the user's data.

Every encoder takes 1-D float waveforms at its ``sample_rate`` and returns ``[N, dim]`` float64
rows (:meth:`ClipEncoder.embed`); ``config()`` is JSON and :func:`build_encoder` rebuilds it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import Registry

ENCODERS = Registry("encoder")

__all__ = ["ENCODERS", "ClipEncoder", "BandStatsEncoder", "LogMelStatsEncoder", "build_encoder"]


class ClipEncoder:
    """Base class (see the module docstring)."""

    name: str = ""

    def __init__(self, features: Optional[dict[str, Any]] = None):
        from ..features import FeatureConfig

        self.feature_cfg = FeatureConfig.from_dict(features or {})

    @property
    def sample_rate(self) -> int:
        return int(self.feature_cfg.sample_rate)

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _embed_batch(self, x) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, waves: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
        """``[len(waves), dim]`` float64 rows; waves of equal length are batched."""
        import torch

        waves = [np.asarray(w, dtype=np.float32) for w in waves]
        for i, w in enumerate(waves):
            if w.ndim != 1 or w.size == 0:
                raise DataError(f"{self.name}: waveform {i} has shape {w.shape}; 1-D mono samples are expected")
            if not np.all(np.isfinite(w)):
                raise DataError(f"{self.name}: waveform {i} contains NaN or Inf samples")
        out: list[Optional[np.ndarray]] = [None] * len(waves)
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(waves):
            by_len.setdefault(w.size, []).append(i)
        with torch.no_grad():
            for idx in by_len.values():
                for s in range(0, len(idx), batch):
                    part = idx[s:s + batch]
                    emb = self._embed_batch(torch.from_numpy(np.stack([waves[i] for i in part])))
                    for i, row in zip(part, np.asarray(emb, dtype=np.float64)):
                        out[i] = row
        if not out:
            return np.zeros((0, 0))
        return np.stack(out)  # type: ignore[arg-type]


@ENCODERS.register("bandstats", description="per-band mean / spread / flux of log band energies (linear bands)")
class BandStatsEncoder(ClipEncoder):
    """:class:`~auscult.features.BandStats` as an encoder.

    Args:
        features: :class:`~auscult.features.FeatureConfig` overrides (``n_fft``, ``hop_length``,
            ``fmin``, ``fmax``, ``sample_rate``).
        n_bands, stats, scale: see :class:`~auscult.features.BandStats`.
    """

    name = "bandstats"

    def __init__(self, features: Optional[dict[str, Any]] = None, n_bands: int = 32,
                 stats: Sequence[str] = ("mean", "flux"), scale: str = "linear"):
        from ..features import BandStats

        super().__init__({"n_fft": 1024, "hop_length": 256, **(features or {})})
        self.fe = BandStats(self.feature_cfg, n_bands=n_bands, stats=tuple(stats), scale=scale)

    @property
    def dim(self) -> int:
        return self.fe.dim

    def _embed_batch(self, x) -> np.ndarray:
        return self.fe(x).numpy()

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "features": self.feature_cfg.to_dict(), "n_bands": self.fe.n_bands,
                "stats": list(self.fe.stats), "scale": self.fe.scale}


@ENCODERS.register("logmel_stats", description="mean and spread of every log-mel band over the clip")
class LogMelStatsEncoder(ClipEncoder):
    """Mean and standard deviation over frames of every log-mel band (``2 * n_mels`` numbers) --
    the representation of the ``logmel_knn`` monitor detector.

    Args:
        features: :class:`~auscult.features.FeatureConfig` overrides.
        sd_floor_db: added in quadrature to every spread (as ``logmel_knn`` does).
    """

    name = "logmel_stats"

    def __init__(self, features: Optional[dict[str, Any]] = None, sd_floor_db: float = 0.5):
        from ..features import LogMel

        super().__init__(features)
        if not float(sd_floor_db) >= 0:
            raise ConfigError(f"logmel_stats: sd_floor_db must be >= 0, got {sd_floor_db!r}")
        self.sd_floor_db = float(sd_floor_db)
        self.fe = LogMel(self.feature_cfg)

    @property
    def dim(self) -> int:
        return 2 * self.feature_cfg.n_mels

    def _embed_batch(self, x) -> np.ndarray:
        lm = self.fe(x).double()  # [B, M, F]
        sd = (lm.var(-1, unbiased=False) + self.sd_floor_db ** 2).sqrt()
        return np.concatenate([lm.mean(-1).numpy(), sd.numpy()], axis=1)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "features": self.feature_cfg.to_dict(), "sd_floor_db": self.sd_floor_db}


def build_encoder(config: dict[str, Any]) -> ClipEncoder:
    """Rebuild an encoder from its ``config()`` (``{"name": ..., **kwargs}``)."""
    cfg = dict(config)
    name = cfg.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"encoder config needs a 'name' (one of {ENCODERS.names()}), got {config!r}")
    return ENCODERS.build(name, **cfg)
