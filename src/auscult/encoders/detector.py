"""A small-data detector: a fixed clip encoder, per-dimension standardisation, a back-end, and a
threshold from leave-one-out scores of the training clips.

Why leave-one-out: with a few dozen clips, holding a quarter out for calibration costs a quarter
of the reference set *and* leaves too few scores to set a threshold on. Here every clip is in the
final model, and every clip also gets an honest normal score from a model fitted without it
(:mod:`auscult.backends.loo`; standardisation is refitted in each fold too). The threshold for a
target false-alarm rate comes from those scores: the empirical quantile when they expect at least
10 false alarms at that rate, else the quantile of a gamma distribution fitted to their excesses
over the smallest of them (an extrapolation, recorded as such; the location is fixed because the
three-parameter fit is unstable on a few dozen heavy-tailed scores, see
:func:`auscult.eval.thresholds.gamma_threshold`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError
from .base import ClipEncoder, build_encoder

__all__ = ["EmbeddingDetector", "FusedDetector", "threshold_from_normal_scores", "THRESHOLD_RULES"]

THRESHOLD_RULES = ("auto", "empirical", "gamma")


def threshold_from_normal_scores(scores: Sequence[float], rate: float = 0.01, rule: str = "auto") -> dict[str, Any]:
    """A threshold record (``auscult.eval.thresholds.Threshold.to_dict()`` plus a ``note``) for a
    target false-alarm ``rate`` from normal scores of clips the model did not see."""
    from ..eval.thresholds import false_alarm_threshold, gamma_threshold

    if rule not in THRESHOLD_RULES:
        raise ConfigError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    s = np.asarray(scores, dtype=np.float64)
    if rule == "empirical" or (rule == "auto" and s.size * rate >= 10):
        thr = false_alarm_threshold(s, rate=rate).to_dict()
        thr["note"] = f"empirical: at most {rate:g} of {s.size} leave-one-out normal scores above it"
        return thr
    thr = gamma_threshold(s, quantile=1.0 - rate, loc="min").to_dict()
    thr["expected_false_alarm_rate"] = float(rate)
    thr["note"] = (f"gamma fit to {s.size} leave-one-out normal scores above their minimum, quantile {1 - rate:g} (extrapolated: "
                   f"{s.size} scores cannot measure a {rate:g} rate directly)")
    return thr


class EmbeddingDetector:
    """Encoder + standardisation + back-end + leave-one-out threshold (see the module docstring).

    Args:
        encoder: a :class:`~auscult.encoders.ClipEncoder` or its ``config()`` dict.
        backend: ``{"name": registered back-end, **params}`` (fitted as one group).
        standardize: z-score every embedding dimension with the training clips' mean and spread.
        false_alarm_rate: target fraction of normal clips above the threshold.
        threshold: ``auto``, ``empirical`` or ``gamma`` (see :func:`threshold_from_normal_scores`).
        folds: ``None`` = leave-one-out; an integer K = K folds (for large folders).
        seed: fold assignment seed (and nothing else: encoders and back-ends carry their own).
    """

    def __init__(self, encoder: Union[ClipEncoder, dict[str, Any]], backend: Optional[dict[str, Any]] = None,
                 standardize: bool = True, false_alarm_rate: float = 0.01, threshold: str = "auto",
                 folds: Optional[int] = None, seed: int = 0):
        from ..backends import BACKENDS

        self.encoder = encoder if isinstance(encoder, ClipEncoder) else build_encoder(encoder)
        self.backend_spec = dict(backend or {"name": "knn_norm"})
        name = self.backend_spec.get("name")
        if name not in BACKENDS:
            raise ConfigError(f"EmbeddingDetector: backend {self.backend_spec!r} needs a 'name' of a registered "
                              f"back-end ({', '.join(BACKENDS.names())})")
        if "group_by" in self.backend_spec:
            raise ConfigError("EmbeddingDetector: the back-end is fitted as one group; drop 'group_by'")
        if not 0.0 < float(false_alarm_rate) < 0.5:
            raise ConfigError(f"false_alarm_rate must be in (0, 0.5), got {false_alarm_rate}")
        if threshold not in THRESHOLD_RULES:
            raise ConfigError(f"threshold must be one of {THRESHOLD_RULES}, got {threshold!r}")
        self.standardize, self.rate, self.rule = bool(standardize), float(false_alarm_rate), threshold
        self.folds, self.seed = folds, int(seed)
        self.mu_: Optional[np.ndarray] = None
        self.sd_: Optional[np.ndarray] = None
        self.backend_ = None
        self.normal_scores_: Optional[np.ndarray] = None
        self.threshold_: Optional[dict[str, Any]] = None
        self.timings_: dict[str, float] = {}

    # -- the core: standardise + back-end ----------------------------------------------------
    def _new_backend(self):
        from ..backends import BACKENDS

        spec = dict(self.backend_spec)
        return BACKENDS.build(spec.pop("name"), group_by=None, **spec)

    def _core_fit(self, x: np.ndarray):
        if self.standardize:
            mu = x.mean(0)
            sd = x.std(0)
            sd = sd + 1e-6 * max(float(sd.max()), 1e-12) + 1e-12
        else:
            mu, sd = np.zeros(x.shape[1]), np.ones(x.shape[1])
        be = self._new_backend().fit((x - mu) / sd)
        return mu, sd, be

    @staticmethod
    def _core_score(core, x: np.ndarray) -> np.ndarray:
        mu, sd, be = core
        return be.score((x - mu) / sd)

    # -- public API --------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.encoder.sample_rate

    @property
    def threshold(self) -> float:
        if self.threshold_ is None:
            raise ConfigError("EmbeddingDetector: fit() before reading the threshold")
        return float(self.threshold_["value"])

    def fit(self, waves: Sequence[np.ndarray]) -> "EmbeddingDetector":
        """Embed ``waves`` (normal clips), fit on all of them, threshold on their leave-one-out scores."""
        t0 = time.perf_counter()
        x = self.encoder.embed(waves)
        t1 = time.perf_counter()
        self.fit_embeddings(x)
        self.timings_ = {"embed_s": t1 - t0, **self.timings_}
        return self

    def fit_embeddings(self, x: np.ndarray, groups: Optional[Sequence[Any]] = None) -> "EmbeddingDetector":
        """As :meth:`fit`, on already computed embeddings ``[N, dim]``.

        ``groups``: one label per row (e.g. the recording a window was cut from); the reference
        scores then hold out whole groups (leave-one-group-out, or ``folds`` parts of the groups), so a
        window is never scored against its neighbours from the same recording."""
        from ..backends.loo import fold_indices
        from ..eval.thresholds import MIN_SCORES

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) < max(3, MIN_SCORES):
            raise DataError(f"EmbeddingDetector: {len(x)} training clip(s); at least {max(3, MIN_SCORES)} are needed "
                            f"(a model and leave-one-out scores for its threshold)")
        t0 = time.perf_counter()
        self.mu_, self.sd_, self.backend_ = self._core_fit(x)
        t1 = time.perf_counter()
        normal = np.empty(len(x))
        if groups is None:
            folds = fold_indices(len(x), self.folds, self.seed)
        else:
            labels = np.asarray([str(g) for g in groups])
            if labels.shape != (len(x),):
                raise DataError(f"EmbeddingDetector: {labels.size} group labels for {len(x)} rows")
            names = np.unique(labels)
            if names.size < 2:
                raise DataError("EmbeddingDetector: the training rows form a single group; leave-one-group-out "
                                "scores need at least 2 (more recordings)")
            folds = [np.flatnonzero(np.isin(labels, names[f])) for f in fold_indices(names.size, self.folds, self.seed)]
        for held in folds:
            keep = np.setdiff1d(np.arange(len(x)), held)
            normal[held] = self._core_score(self._core_fit(x[keep]), x[held])
        self.normal_scores_ = normal
        self.threshold_ = threshold_from_normal_scores(normal, self.rate, self.rule)
        self.timings_ = {"fit_s": t1 - t0, "threshold_s": time.perf_counter() - t1}
        return self

    def _check(self) -> None:
        if self.backend_ is None:
            raise ConfigError("EmbeddingDetector: fit() or from_saved() before scoring")

    def score_embeddings(self, x: np.ndarray) -> np.ndarray:
        self._check()
        return self._core_score((self.mu_, self.sd_, self.backend_), np.asarray(x, dtype=np.float64))

    def score(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Anomaly score per clip (higher = more anomalous)."""
        self._check()
        if len(waves) == 0:
            return np.zeros(0)
        return self.score_embeddings(self.encoder.embed(waves))

    def decide(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """``score > threshold`` per clip."""
        return self.score(waves) > self.threshold

    # -- persistence (JSON config + arrays; no pickled code) -----------------------------------
    def config(self) -> dict[str, Any]:
        return {"encoder": self.encoder.config(), "backend": self.backend_spec, "standardize": self.standardize,
                "false_alarm_rate": self.rate, "threshold_rule": self.rule, "folds": self.folds, "seed": self.seed,
                "threshold": self.threshold_, "backend_params": None if self.backend_ is None else self.backend_.params,
                "backend_dim": None if self.backend_ is None else self.backend_.dim_}

    def state(self) -> dict[str, np.ndarray]:
        self._check()
        out = {"mu": self.mu_, "sd": self.sd_, "normal_scores": self.normal_scores_}
        out.update({f"backend/{k}": v for k, v in self.backend_.groups_[()].items()})
        return out

    @classmethod
    def from_saved(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> "EmbeddingDetector":
        try:
            det = cls(config["encoder"], config["backend"], config["standardize"], config["false_alarm_rate"],
                      config["threshold_rule"], config.get("folds"), config.get("seed", 0))
            det.mu_ = np.asarray(state["mu"], dtype=np.float64)
            det.sd_ = np.asarray(state["sd"], dtype=np.float64)
            det.normal_scores_ = np.asarray(state["normal_scores"], dtype=np.float64)
            be = det._new_backend()
            be.groups_ = {(): {k[len("backend/"):]: np.asarray(v) for k, v in state.items() if k.startswith("backend/")}}
            be.dim_ = config.get("backend_dim")
            det.backend_ = be
            det.threshold_ = dict(config["threshold"])
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"EmbeddingDetector: saved detector is incomplete ({type(exc).__name__}: {exc}); "
                                  f"refit it") from None
        json.dumps(det.config())  # the config must stay JSON
        return det

    def describe(self) -> str:
        n = 0 if self.normal_scores_ is None else len(self.normal_scores_)
        return (f"{self.encoder.name} encoder -> {'z-scored ' if self.standardize else ''}{self.backend_spec['name']} "
                f"on {n} clips, threshold from leave-one-out scores")


class FusedDetector:
    """Several :class:`EmbeddingDetector` members (different encoders and/or back-ends) fused by
    :class:`~auscult.backends.ScoreFusion` against their leave-one-out normal scores.

    Each member is fitted on all clips and has its own leave-one-out scores; the fusion is fitted
    on those score columns, the fused leave-one-out scores set the threshold (the same rule as a
    single member). A member that looks at the long-term spectrum and one that looks at its fast
    fluctuations fail on different faults; the fused score needs neither to be chosen in advance.

    Args:
        members: member detectors (unfitted) or their ``config()`` dicts (``backend`` and
            ``encoder`` keys at least).
        fusion: ``"z"`` or ``"rank"``.
        false_alarm_rate, threshold: as :class:`EmbeddingDetector`.
    """

    def __init__(self, members: Sequence[Union[EmbeddingDetector, dict[str, Any]]], fusion: str = "z",
                 false_alarm_rate: float = 0.01, threshold: str = "auto"):
        from ..backends.fusion import FUSIONS

        if len(members) < 1:
            raise ConfigError("FusedDetector: give at least one member")
        if fusion not in FUSIONS:
            raise ConfigError(f"FusedDetector: fusion must be one of {FUSIONS}, got {fusion!r}")
        self.members = [m if isinstance(m, EmbeddingDetector) else
                        EmbeddingDetector(m["encoder"], m["backend"], m.get("standardize", True), false_alarm_rate,
                                          threshold, m.get("folds"), m.get("seed", 0)) for m in members]
        rates = {m.encoder.sample_rate for m in self.members}
        if len(rates) != 1:
            raise ConfigError(f"FusedDetector: members expect different sample rates {sorted(rates)}")
        self.fusion, self.rate, self.rule = fusion, float(false_alarm_rate), threshold
        self.fusion_ = None
        self.normal_scores_: Optional[np.ndarray] = None
        self.threshold_: Optional[dict[str, Any]] = None

    @property
    def sample_rate(self) -> int:
        return self.members[0].sample_rate

    @property
    def threshold(self) -> float:
        if self.threshold_ is None:
            raise ConfigError("FusedDetector: fit() before reading the threshold")
        return float(self.threshold_["value"])

    def _finish_fit(self) -> "FusedDetector":
        from ..backends.fusion import ScoreFusion

        normal = np.stack([m.normal_scores_ for m in self.members], axis=1)
        self.fusion_ = ScoreFusion(self.fusion).fit(normal)
        self.normal_scores_ = self.fusion_.fuse(normal)
        self.threshold_ = threshold_from_normal_scores(self.normal_scores_, self.rate, self.rule)
        return self

    def fit(self, waves: Sequence[np.ndarray]) -> "FusedDetector":
        for m in self.members:
            m.fit(waves)
        return self._finish_fit()

    def fit_embeddings(self, xs: Sequence[np.ndarray], groups: Optional[Sequence[Any]] = None) -> "FusedDetector":
        """As :meth:`fit` with each member's embeddings given (one array per member, same rows);
        ``groups`` as :meth:`EmbeddingDetector.fit_embeddings` (every member leaves the same groups out)."""
        if len(xs) != len(self.members):
            raise DataError(f"FusedDetector: {len(xs)} embedding arrays for {len(self.members)} members")
        for m, x in zip(self.members, xs):
            m.fit_embeddings(x, groups=groups)
        return self._finish_fit()

    def _fuse(self, cols: list[np.ndarray]) -> np.ndarray:
        if self.fusion_ is None:
            raise ConfigError("FusedDetector: fit() before scoring")
        return self.fusion_.fuse(np.stack(cols, axis=1))

    def score_embeddings(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        return self._fuse([m.score_embeddings(x) for m, x in zip(self.members, xs)])

    def score(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        if len(waves) == 0:
            return np.zeros(0)
        return self._fuse([m.score(waves) for m in self.members])

    def decide(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        return self.score(waves) > self.threshold

    def config(self) -> dict[str, Any]:
        return {"members": [m.config() for m in self.members], "fusion": self.fusion, "false_alarm_rate": self.rate,
                "threshold_rule": self.rule, "threshold": self.threshold_}

    def state(self) -> dict[str, np.ndarray]:
        if self.fusion_ is None:
            raise ConfigError("FusedDetector: fit() before saving")
        out = {"fusion/normal": self.fusion_.state()["normal"], "normal_scores": self.normal_scores_}
        for i, m in enumerate(self.members):
            out.update({f"m{i}/{k}": v for k, v in m.state().items()})
        return out

    @classmethod
    def from_saved(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> "FusedDetector":
        from ..backends.fusion import ScoreFusion

        try:
            members = [EmbeddingDetector.from_saved(c, {k[len(f"m{i}/"):]: v for k, v in state.items()
                                                        if k.startswith(f"m{i}/")})
                       for i, c in enumerate(config["members"])]
            det = cls(members, config["fusion"], config["false_alarm_rate"], config["threshold_rule"])
            det.fusion_ = ScoreFusion.from_state(config["fusion"], {"normal": state["fusion/normal"]})
            det.normal_scores_ = np.asarray(state["normal_scores"], dtype=np.float64)
            det.threshold_ = dict(config["threshold"])
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"FusedDetector: saved detector is incomplete ({type(exc).__name__}: {exc}); "
                                  f"refit it") from None
        return det

    def describe(self) -> str:
        return f"{self.fusion}-fusion of: " + "; ".join(m.describe() for m in self.members)
