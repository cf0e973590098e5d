"""A k-NN on log-mel band statistics (``method: logmel_knn``): nothing to train, for small data.

Each clip is summarised by the mean and the spread of every log-mel band over time (``2 * n_mels``
numbers; the spread is ``sqrt(var + sd_floor_db^2)`` so silent or constant bands do not explode).
The summaries of the training clips form the bank; each dimension is standardised with the bank's
mean and standard deviation (plus 1e-3), and a clip's score is the mean RMS-per-dimension distance
to its ``k`` nearest training clips of the same machine and section -- the registered ``knn``
back-end (Euclidean) on the standardised summaries divided by ``sqrt(2 * n_mels)``. A network
trained on a handful of clips memorises them; a k-NN has no training hyper-parameters to get wrong,
which is why ``auscult fit --method auto`` picks it below a data-size threshold.

A training clip scored again (the research door fits thresholds on training normals) is scored
against the *other* training clips of its section (leave-one-out): it is its own nearest neighbour.

Recipe keys::

    features:   {n_fft: 1024, hop_length: 512, n_mels: 128, ...}      # FeatureConfig
    logmel_knn: {sd_floor_db: 0.5}
    backend:    {name: knn, k: 2, metric: euclidean, group_by: section}

Capabilities: ``embed`` (the standardised summaries), ``explain`` (every frame's log-mel band level
above the training band mean, distance from the clip's own band mean and change from the previous
frame, each over the highest a training frame reached there, summed), ``export`` (the summary
in one ONNX graph, the k-NN back-end beside it).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data.clip import Clip
from ..errors import CheckpointError, ConfigError, DataError
from . import _neural as nu
from .base import (METHODS, FitContext, Method, ScoringGraph, TFMap, backend_from_state, backend_to_state,
                   merge_section)

OWN_DEFAULTS = {"sd_floor_db": 0.5}
BACKEND_DEFAULT = {"name": "knn", "k": 2, "metric": "euclidean", "group_by": "section"}


class BandStats(nn.Module):
    """waveform ``[B, T]`` -> per-band log-mel mean and spread ``[B, 2 * n_mels]``, optionally
    standardised (``(stats - mu) / sd / sqrt(2 * n_mels)``: Euclidean distances between outputs are
    RMS-per-dimension distances between standardised summaries)."""

    def __init__(self, feature_cfg: Any, sd_floor_db: float, mu: Optional[np.ndarray] = None,
                 sd: Optional[np.ndarray] = None):
        super().__init__()
        from ..features import LogMel

        self.logmel = LogMel(feature_cfg).eval()
        self.floor = float(sd_floor_db)
        dim = 2 * int(feature_cfg.n_mels)
        self.standardise = mu is not None
        self.register_buffer("mu", torch.as_tensor(np.zeros(dim) if mu is None else mu, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(
            np.ones(dim) if sd is None else 1.0 / (np.asarray(sd) * np.sqrt(dim)), dtype=torch.float32))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        lm = self.logmel(waveform)  # [B, M, F]
        mean = lm.mean(dim=2)
        var = ((lm - mean[:, :, None]) ** 2).mean(dim=2)
        stats = torch.cat([mean, torch.sqrt(var + self.floor * self.floor)], dim=1)
        if not self.standardise:
            return stats
        return (stats - self.mu) * self.scale


@METHODS.register("logmel_knn", defaults={"logmel_knn": OWN_DEFAULTS},
                  description="k-NN on per-band log-mel mean and spread: nothing to train, for small data sets")
class LogMelKNN(Method):
    """k-NN on log-mel band statistics (see the module docstring)."""

    name = "logmel_knn"
    capabilities = frozenset({"embed", "explain", "export"})

    @classmethod
    def fit_preset(cls, n_windows: int, window_samples: int, knn_k: int = 2,
                   features: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return {"backend": {**BACKEND_DEFAULT, "k": int(knn_k)}}

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        super().__init__(config, context)
        self.opts = merge_section(OWN_DEFAULTS, config.get("logmel_knn"), "logmel_knn")
        if not isinstance(self.opts["sd_floor_db"], (int, float)) or not float(self.opts["sd_floor_db"]) > 0:
            raise ConfigError(f"logmel_knn.sd_floor_db must be > 0, got {self.opts['sd_floor_db']!r}")
        self.backend_cfg = {**BACKEND_DEFAULT, **dict(config.get("backend") or {})}
        if self.backend_cfg.get("name") != "knn":
            raise ConfigError(f"logmel_knn scores with the knn back-end; backend.name {self.backend_cfg.get('name')!r} "
                              "is not supported")
        nu.build_backend(self.backend_cfg, BACKEND_DEFAULT)  # validates k, metric, group_by
        self.feature_cfg = self.feature_config  # validates the features section
        if self.feature_cfg.sample_rate != self.sample_rate:
            raise ConfigError(f"features.sample_rate={self.feature_cfg.sample_rate} differs from audio.sample_rate="
                              f"{self.sample_rate}; drop features.sample_rate (it follows the audio)")
        self._stats_module = BandStats(self.feature_cfg, float(self.opts["sd_floor_db"]))
        self.bank: Optional[np.ndarray] = None  # [N, 2 * n_mels] raw (mean, spread) per training clip
        self.mu: Optional[np.ndarray] = None
        self.sd: Optional[np.ndarray] = None
        self.backend: Any = None
        self.train_meta: list[dict[str, Any]] = []
        #: per component of :meth:`_components`: (loc, scale) per band, see :meth:`explain`; None in
        #: models saved before it existed (they explain the old way)
        self.explain_ref: Optional[dict[str, tuple[np.ndarray, np.ndarray]]] = None

    @property
    def feature_config(self):
        cfg = getattr(self, "feature_cfg", None)
        return cfg if cfg is not None else super().feature_config

    # ---- features ----------------------------------------------------------------------------
    def _logmel(self, wave: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._stats_module.logmel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
                                             )[0].double().numpy()

    def _logmels(self, clips: Sequence[Clip], audio: Any):
        """Each clip's ``(wave, log-mel [n_mels, F])``, with the length check every path needs."""
        for w in audio.load_many(list(clips)):
            if w.shape[0] < self.min_samples:
                raise DataError(f"logmel_knn: a clip of {w.shape[0]} samples is shorter than one hop "
                                f"({self.min_samples}); use longer clips")
            yield w, self._logmel(w)

    def _summary(self, lm: np.ndarray) -> np.ndarray:
        """One clip's raw per-band (mean, spread) ``[2 * n_mels]`` from its log-mel."""
        floor = float(self.opts["sd_floor_db"])
        return np.concatenate([lm.mean(axis=1), np.sqrt(lm.var(axis=1) + floor ** 2)])

    def stats(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """Raw per-band (mean, spread) of each clip ``[N, 2 * n_mels]`` (float64)."""
        rows = [self._summary(lm) for _, lm in self._logmels(clips, audio)]
        return np.stack(rows) if rows else np.zeros((0, 2 * self.feature_cfg.n_mels))

    def _standardise(self, stats: np.ndarray) -> np.ndarray:
        assert self.mu is not None and self.sd is not None
        return (stats - self.mu) / self.sd / np.sqrt(stats.shape[1])

    # ---- fit / score -------------------------------------------------------------------------
    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: Any) -> "LogMelKNN":
        """Summarise the training clips (``val`` is not needed: there is nothing to select), and learn
        the explanation's reference (:meth:`explain`) from their frames."""
        from ..monitor.explain import interior_frames

        train = list(train)
        if len(train) < 2:
            raise DataError(f"logmel_knn: {len(train)} training clip(s); at least 2 are needed")
        cfg = self.feature_cfg
        # one pass: the summaries, and for the explanation's reference every training frame's per-band
        # maximum of each component plus the frames of at most EXPLAIN_REF_CLIPS clips (their medians)
        pick = set(np.linspace(0, len(train) - 1, min(len(train), self.EXPLAIN_REF_CLIPS)).round().astype(int).tolist())
        rows, kept, peak = [], [], {}
        for i, (w, lm) in enumerate(self._logmels(train, audio)):
            rows.append(self._summary(lm))
            keep = interior_frames(lm.shape[1], int(w.shape[0]), cfg.n_fft, cfg.hop_length)
            tops = {"lm": lm[:, keep].max(axis=1),
                    **{k: v[:, keep].max(axis=1) for k, v in self._components(lm, level=False).items()}}
            peak = tops if not peak else {k: np.maximum(peak[k], v) for k, v in tops.items()}
            if i in pick:
                kept.append((lm, keep))
        self.bank = np.stack(rows)
        self.mu = self.bank.mean(axis=0)
        self.sd = self.bank.std(axis=0) + 1e-3
        self.explain_ref = self._explain_reference(kept, peak)
        self.train_meta = [{**r, "path": str(c.path)} for r, c in zip(nu.clip_meta(train), train)]
        self._fit_backend()
        return self

    #: clips whose frames give each band's median in the explanation's reference (the maximum uses all)
    EXPLAIN_REF_CLIPS = 64

    def _components(self, lm: np.ndarray, level: bool = True) -> dict[str, np.ndarray]:
        """Per (band, frame), its contribution to what the k-NN compares, in dB: ``level`` -- above the
        training clips' band mean (0 below it; the summary's mean), ``spread`` -- away from the clip's
        own band mean (the summary's spread), ``change`` -- from the previous frame (where a click or a
        start lies inside a raised spread)."""
        from ..monitor.explain import level_contributions

        if not level:
            return level_contributions(lm, kinds=("spread", "change"))
        assert self.mu is not None
        c = level_contributions(lm, self.mu)
        return {"level": c["above"], "spread": c["spread"], "change": c["change"]}

    def _explain_reference(self, kept: Sequence[tuple[np.ndarray, np.ndarray]], peak: dict[str, np.ndarray]
                           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per component and band, :func:`~auscult.monitor.explain.tail_reference` (unsmoothed) of the
        training frames: the median over the interior frames of the clips ``kept`` (log-mel, interior
        mask; at most :attr:`EXPLAIN_REF_CLIPS` clips, spread evenly over the training set) and the highest value any
        training frame reached (``peak``: per-band maxima over every clip; ``lm`` the log-mel itself,
        whence the level's maximum) in the band or its neighbours."""
        from ..monitor.explain import tail_scale

        assert self.mu is not None
        n = len(peak["lm"])
        tops = {"level": np.maximum(peak["lm"] - self.mu[:n], 0.0), "spread": peak["spread"], "change": peak["change"]}
        comps = [{name: c[:, keep] for name, c in self._components(lm).items()} for lm, keep in kept]
        out = {}
        for name, top in tops.items():
            loc = np.median(np.concatenate([c[name] for c in comps], axis=1), axis=1)
            out[name] = (loc, tail_scale(loc, top))
        return out

    def _fit_backend(self) -> None:
        assert self.bank is not None
        self.backend = nu.build_backend(self.backend_cfg, BACKEND_DEFAULT)
        self.backend.fit(self._standardise(self.bank), nu.meta_from_state(self.train_meta))

    def _check(self) -> None:
        if self.bank is None:
            raise ConfigError("logmel_knn: call fit() (or load_state_dict()) before score()")

    def embed(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """The standardised summaries ``[N, 2 * n_mels]`` the k-NN back-end scores."""
        self._check()
        return self._standardise(self.stats(clips, audio))

    def score(self, clips: Sequence[Clip], audio: Any) -> np.ndarray:
        """Mean distance to the ``k`` nearest training clips of the clip's section."""
        from ..backends import BackendMeta

        self._check()
        clips = list(clips)
        if not clips:
            return np.zeros(0, dtype=np.float64)
        emb = self.embed(clips, audio)
        scores = np.asarray(self.backend.score(emb, BackendMeta.from_clips(clips)), dtype=np.float64)
        index = {r["path"]: j for j, r in enumerate(self.train_meta)}
        for i, c in enumerate(clips):  # a training clip is its own nearest neighbour: leave it out
            j = index.get(str(c.path))
            if j is not None:
                scores[i] = self._leave_one_out(j, emb[i:i + 1], c)
        return scores

    def _leave_one_out(self, j: int, emb: np.ndarray, clip: Clip) -> float:
        from ..backends import BackendMeta

        assert self.bank is not None
        key = (self.train_meta[j]["machine"], self.train_meta[j]["section"])
        rows = [r for r, m in enumerate(self.train_meta) if (m["machine"], m["section"]) == key and r != j]
        if not rows:
            return float(self.backend.score(emb, BackendMeta.from_clips([clip]))[0])
        be = nu.build_backend(self.backend_cfg, BACKEND_DEFAULT)
        be.fit(self._standardise(self.bank)[rows], nu.meta_from_state([self.train_meta[r] for r in rows]))
        return float(be.score(emb, BackendMeta.from_clips([clip]))[0])

    # ---- explain / export ----------------------------------------------------------------------
    def explain(self, clip: Clip, audio: Any) -> TFMap:
        """Every (band, frame): per component (:meth:`_components`: the level above the training band
        mean, the distance from the clip's own band mean, the change from the previous frame; dB), its
        value over the highest one any *training* frame reached in that band and its neighbours
        (:func:`~auscult.monitor.explain.tail_map`, unsmoothed), summed over the components. A steady
        tone (level), a louder or more variable stretch (spread) and a click (change) each count
        against how far normal audio moved that way. The clip score is the method's k-NN score.

        Models saved before the reference existed explain as they did: each frame's squared z-score
        against the nearest training clip's band mean and spread (two-sided, so a quiet frame counted
        like a loud one and a band the nearest clip happened to hold still outshone the fault:
        docs/benchmarks.md, Localisation)."""
        from ..features import mel_center_frequencies
        from ..monitor.explain import tail_map

        self._check()
        assert self.bank is not None
        (wave,) = audio.load_many([clip])
        lm = self._logmel(wave)  # [n_mels, F]
        stats = self._summary(lm)[None]
        rows = [r for r, m in enumerate(self.train_meta)
                if (m["machine"], m["section"]) == (clip.machine, clip.section) and m.get("path") != str(clip.path)]
        if not rows:
            rows = list(range(len(self.bank)))
        z = self._standardise(np.concatenate([stats, self.bank[rows]]))
        d = np.sqrt(((z[1:] - z[:1]) ** 2).sum(axis=1))
        k = min(int(self.backend_cfg.get("k", 2)), d.shape[0])
        ref = self.explain_ref
        if ref:
            tf = np.zeros_like(lm)
            for name, comp in self._components(lm).items():
                tf += tail_map(comp, *ref[name], smooth=1)
            how = ("sum over level, spread and change of each frame's log-mel band over the highest a training "
                   "frame reached in its band and neighbours")
        else:
            nn_row = rows[int(np.argmin(d))]
            n_mels = self.feature_cfg.n_mels
            mean_nn, sd_nn = self.bank[nn_row, :n_mels], self.bank[nn_row, n_mels:]
            tf = ((lm - mean_nn[:, None]) / sd_nn[:, None]) ** 2  # [n_mels, F]
            how = ("squared z-score of each frame's log-mel band against the nearest normal clip's band mean "
                   "and spread")
        cfg = self.feature_cfg
        return TFMap(times=np.arange(lm.shape[1]) * cfg.hop_length / cfg.sample_rate, frame_scores=tf.mean(axis=0),
                     freqs=np.asarray(mel_center_frequencies(cfg), dtype=np.float64), tf_map=tf, spectrogram=lm,
                     score=float(np.sort(d)[:k].mean()), how=how)

    def scoring_graph(self, clip: Clip) -> ScoringGraph:
        """The standardised band summary (conv STFT: standard ONNX ops); the k-NN back-end scores it."""
        self._check()
        module = BandStats(self.feature_cfg.replace(stft_impl="conv"), float(self.opts["sd_floor_db"]), self.mu,
                           self.sd).eval()
        return ScoringGraph(module, "embedding", int(self.feature_cfg.sample_rate),
                            backends=[{"state": backend_to_state(self.backend), "columns": [0, 2 * self.feature_cfg.n_mels]}],
                            meta={"machine": clip.machine, "section": clip.section, "domain": clip.domain})

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._check()
        return {"method": self.name, "version": 1, "bank": np.array(self.bank), "mu": np.array(self.mu),
                "sd": np.array(self.sd), "train_meta": [dict(r) for r in self.train_meta],
                "backend": backend_to_state(self.backend),
                **({"explain_ref": {name: {"loc": np.asarray(loc), "scale": np.asarray(scale)}
                                    for name, (loc, scale) in self.explain_ref.items()}} if self.explain_ref else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("method") != self.name:
            raise CheckpointError(f"state is for method {state.get('method') if isinstance(state, dict) else None!r}, "
                                  f"not {self.name!r}")
        bank = np.asarray(state["bank"], dtype=np.float64)
        if bank.ndim != 2 or bank.shape[1] != 2 * self.feature_cfg.n_mels:
            raise CheckpointError(f"logmel_knn: saved bank has shape {bank.shape}, expected [N, "
                                  f"{2 * self.feature_cfg.n_mels}] (features.n_mels={self.feature_cfg.n_mels})")
        self.bank = bank
        self.mu = np.asarray(state["mu"], dtype=np.float64)
        self.sd = np.asarray(state["sd"], dtype=np.float64)
        self.train_meta = [dict(r) for r in state["train_meta"]]
        self.backend = backend_from_state(state["backend"])
        self.explain_ref = None
        ref = state.get("explain_ref")
        if ref is not None:
            n = self.feature_cfg.n_mels
            try:
                loaded = {str(name): (np.asarray(v["loc"], dtype=np.float64), np.asarray(v["scale"], dtype=np.float64))
                          for name, v in dict(ref).items()}
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"logmel_knn: saved explanation reference is incomplete ({exc}); refit") from None
            if set(loaded) != {"level", "spread", "change"} or any(a.shape != (n,) or b.shape != (n,)
                                                                    for a, b in loaded.values()):
                raise CheckpointError(f"logmel_knn: saved explanation reference ({sorted(loaded)}) does not fit "
                                      f"{n} log-mel bands x (level, spread, change); refit")
            self.explain_ref = loaded

    def describe(self) -> str:
        return (f"logmel_knn (mean + spread of {self.feature_cfg.n_mels} log-mel bands per clip, mean distance to "
                f"the {self.backend_cfg.get('k', 2)} nearest of {0 if self.bank is None else len(self.bank)} "
                f"training clips)")
