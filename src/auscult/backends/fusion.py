"""Fusing the scores of detectors that score differently (z-score or rank fusion), and an
``ensemble`` back-end that fuses several back-ends on the same embeddings.

Scores of different detectors live on different scales (a Mahalanobis distance in the
hundreds, a density ratio around 1). Fusion puts each member on the scale of its own *normal*
scores first -- scores of training rows from models that did not see them (leave-one-out, see
:mod:`auscult.backends.loo`) -- and then averages:

* ``"z"``: member score ``s`` -> ``(s - mean) / std`` of the member's normal scores;
* ``"rank"``: ``s`` -> its mid-rank position among the member's normal scores, ``F(s)`` in
  ``[0, 1]`` (``(#{n < s} + #{n == s} / 2) / N``); beyond the smallest / largest normal score it
  continues linearly, ``1 + (s - max) / std`` above and ``(s - min) / std`` below, so that two
  clips both above every normal score keep their order.

Rank fusion is robust to a member with heavy-tailed scores; z fusion keeps how far beyond the
normal range a member puts a clip. Both need no test data: the fused score of one clip depends
on that clip and the training scores only.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .base import BACKENDS, Backend, BackendMeta, GroupKey

__all__ = ["ScoreFusion", "EnsembleBackend", "FUSIONS"]

FUSIONS = ("z", "rank")


class ScoreFusion:
    """Per-member normalisation against normal scores, then a (weighted) mean.

    Args:
        method: ``"z"`` or ``"rank"`` (see the module docstring).
        weights: one non-negative weight per member (default: equal).
    """

    def __init__(self, method: str = "z", weights: Optional[Sequence[float]] = None):
        if method not in FUSIONS:
            raise ConfigError(f"fusion method must be one of {FUSIONS}, got {method!r}")
        self.method = method
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights is not None and (self.weights.ndim != 1 or np.any(self.weights < 0) or self.weights.sum() <= 0):
            raise ConfigError(f"fusion weights must be non-negative with a positive sum, got {weights!r}")
        self.normal_: Optional[np.ndarray] = None  # [N, M] sorted per column

    def fit(self, normal_scores) -> "ScoreFusion":
        """``normal_scores [N, M]``: scores of N normal rows under M members (N >= 2)."""
        s = np.asarray(normal_scores, dtype=np.float64)
        if s.ndim != 2 or s.shape[0] < 2 or s.shape[1] < 1:
            raise DataError(f"score fusion needs normal scores [N >= 2, M >= 1], got shape {s.shape}")
        if not np.all(np.isfinite(s)):
            raise DataError("score fusion: the normal scores contain NaN or Inf")
        if self.weights is not None and len(self.weights) != s.shape[1]:
            raise ConfigError(f"fusion has {len(self.weights)} weights for {s.shape[1]} members")
        self.normal_ = np.sort(s, axis=0)
        return self

    def _spread(self) -> np.ndarray:
        assert self.normal_ is not None
        sd = self.normal_.std(axis=0, ddof=1)
        scale = np.abs(self.normal_).max(axis=0)
        return np.maximum(sd, 1e-12 * np.maximum(scale, 1.0))

    def normalise(self, scores) -> np.ndarray:
        """``scores [Q, M]`` -> each member on its normal scale, ``[Q, M]``."""
        if self.normal_ is None:
            raise ConfigError("score fusion: fit() before normalise()")
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != self.normal_.shape[1]:
            raise DataError(f"score fusion was fitted on {self.normal_.shape[1]} members, got scores of shape {s.shape}")
        sd = self._spread()
        if self.method == "z":
            return (s - self.normal_.mean(axis=0)) / sd
        n = self.normal_.shape[0]
        out = np.empty_like(s)
        for m in range(s.shape[1]):
            ref = self.normal_[:, m]
            lo = np.searchsorted(ref, s[:, m], side="left")
            hi = np.searchsorted(ref, s[:, m], side="right")
            f = (lo + (hi - lo) / 2.0) / n
            f = np.where(s[:, m] > ref[-1], 1.0 + (s[:, m] - ref[-1]) / sd[m], f)
            f = np.where(s[:, m] < ref[0], (s[:, m] - ref[0]) / sd[m], f)
            out[:, m] = f
        return out

    def fuse(self, scores) -> np.ndarray:
        """Fused score per row of ``scores [Q, M]`` (higher = more anomalous)."""
        z = self.normalise(scores)
        w = np.ones(z.shape[1]) if self.weights is None else self.weights
        return z @ (w / w.sum())

    def state(self) -> dict[str, np.ndarray]:
        if self.normal_ is None:
            raise ConfigError("score fusion: nothing to save, fit() first")
        return {"normal": self.normal_}

    @classmethod
    def from_state(cls, method: str, state: dict[str, np.ndarray], weights: Optional[Sequence[float]] = None
                   ) -> "ScoreFusion":
        f = cls(method, weights)
        f.normal_ = np.sort(np.asarray(state["normal"], dtype=np.float64), axis=0)
        return f


DEFAULT_MEMBERS: list[dict[str, Any]] = [
    {"name": "knn_norm", "normalize": "local"},
    {"name": "selective_mahalanobis"},
]


@BACKENDS.register(
    "ensemble",
    defaults={"members": DEFAULT_MEMBERS, "fusion": "z"},
    description="several back-ends on the same embeddings, fused by z-score or rank against their leave-one-out normal scores",
)
class EnsembleBackend(Backend):
    """Members that score differently, fused per group.

    Per group: every member is fitted on the group's rows (as one group); its leave-one-out (or
    ``folds``-fold) scores on those rows are the normal reference of :class:`ScoreFusion`; a new
    row's score is the fusion of the members' scores.

    Args:
        members: ``[{"name": backend, **params}, ...]`` (at least one; nested ensembles are not
            allowed; ``group_by`` is the ensemble's).
        fusion: ``"z"`` or ``"rank"``.
        weights: optional weight per member.
        folds: ``None`` = leave-one-out reference scores; an integer = that many folds (faster
            for large groups).
        seed: fold assignment seed.
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "ensemble"
    min_fit_rows = 3

    def __init__(self, members: Optional[Sequence[dict[str, Any]]] = None, fusion: str = "z",
                 weights: Optional[Sequence[float]] = None, folds: Optional[int] = None, seed: int = 0,
                 group_by: Optional[str] = "section"):
        super().__init__(group_by)
        members = [dict(m) for m in (DEFAULT_MEMBERS if members is None else members)]
        if not members:
            raise ConfigError("ensemble: give at least one member")
        for m in members:
            if not isinstance(m.get("name"), str) or m["name"] not in BACKENDS:
                raise ConfigError(f"ensemble: member {m!r} needs a 'name' of a registered back-end ({', '.join(BACKENDS.names())})")
            if m["name"] == "ensemble":
                raise ConfigError("ensemble: members cannot be ensembles")
            if "group_by" in m:
                raise ConfigError("ensemble: members are fitted per the ensemble's group; drop 'group_by' from the member")
        if fusion not in FUSIONS:
            raise ConfigError(f"ensemble: fusion must be one of {FUSIONS}, got {fusion!r}")
        ScoreFusion(fusion, weights)  # validates weights
        if weights is not None and len(weights) != len(members):
            raise ConfigError(f"ensemble: {len(weights)} weights for {len(members)} members")
        self.members, self.fusion, self.folds, self.seed = members, fusion, folds, int(seed)
        self.weights = None if weights is None else [float(w) for w in weights]
        self._set_params(members=members, fusion=fusion, weights=self.weights, folds=folds, seed=self.seed)

    def _member(self, i: int) -> Backend:
        spec = dict(self.members[i])
        return BACKENDS.build(spec.pop("name"), group_by=None, **spec)

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        from .loo import cross_fit_scores

        state: dict[str, np.ndarray] = {}
        normal = []
        for i in range(len(self.members)):
            be = self._member(i)
            normal.append(cross_fit_scores(be, x, meta, folds=self.folds, seed=self.seed))
            be.fit(x, meta)
            for name, arr in be.groups_[()].items():
                state[f"m{i}/{name}"] = arr
        fusion = ScoreFusion(self.fusion, self.weights).fit(np.stack(normal, axis=1))
        state["fusion/normal"] = fusion.state()["normal"]
        return state

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        cols = []
        for i in range(len(self.members)):
            be = self._member(i)
            pre = f"m{i}/"
            be.groups_ = {(): {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)}}
            be.dim_ = x.shape[1]
            be._cache = self._cache.setdefault(("member", i, key), {})
            cols.append(be.score(x, meta))
        fusion = ScoreFusion.from_state(self.fusion, {"normal": state["fusion/normal"]}, self.weights)
        return fusion.fuse(np.stack(cols, axis=1))
