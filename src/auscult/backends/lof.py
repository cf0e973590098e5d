"""Local outlier factor (scikit-learn ``LocalOutlierFactor`` with ``novelty=True``)."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..errors import ConfigError
from .base import BACKENDS, Backend, BackendMeta, GroupKey, domain_sets


@BACKENDS.register(
    "lof",
    defaults={"n_neighbors": 20, "metric": "euclidean"},
    description="local outlier factor w.r.t. source and target training rows, score = min",
)
class LOFBackend(Backend):
    """Score = local outlier factor (about 1 for inliers, larger for outliers).

    As for kNN, source (and domain-less) and target training rows are separate reference sets
    and the score is the minimum of the two factors: a target set of ten clips would otherwise
    be swamped by the source neighbours. The training rows are what gets saved; the
    (deterministic) neighbour structure is rebuilt from them on load. ``n_neighbors`` is
    clipped to the size of a reference set minus one.

    Args:
        n_neighbors: neighbourhood size.
        metric: ``"euclidean"`` or ``"cosine"``.
        separate_domains: keep source and target apart (True) or pool them (False).
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "lof"
    min_fit_rows = 2

    def __init__(self, n_neighbors: int = 20, metric: str = "euclidean", separate_domains: bool = True, group_by: Optional[str] = "section"):
        super().__init__(group_by)
        if not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 1:
            raise ConfigError(f"lof: n_neighbors must be a positive integer, got {n_neighbors!r}")
        if metric not in ("euclidean", "cosine"):
            raise ConfigError(f"lof: metric must be 'euclidean' or 'cosine', got {metric!r}")
        self.n_neighbors, self.metric, self.separate_domains = int(n_neighbors), metric, bool(separate_domains)
        self._set_params(n_neighbors=self.n_neighbors, metric=metric, separate_domains=self.separate_domains)

    def _model(self, train: np.ndarray, cache_key: tuple):
        lof = self._cache.get(cache_key)
        if lof is None:
            from sklearn.neighbors import LocalOutlierFactor

            lof = LocalOutlierFactor(n_neighbors=min(self.n_neighbors, len(train) - 1), metric=self.metric,
                                     algorithm="brute", novelty=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # duplicate points
                lof.fit(train)
            self._cache[cache_key] = lof
        return lof

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        sets = domain_sets(x, meta, self.separate_domains, key, self.name, self.group_by)
        for dom, rows in sets.items():
            self._model(rows, (key, dom))
        return {f"{dom}_train": rows for dom, rows in sets.items()}

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        scores = [-self._model(rows, (key, name[: -len("_train")])).score_samples(x) for name, rows in sorted(state.items())]
        return np.minimum.reduce(scores)
