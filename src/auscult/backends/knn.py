"""k-nearest-neighbour distance to the training embeddings, source and target kept apart."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ConfigError
from .base import BACKENDS, Backend, BackendMeta, GroupKey, pairwise_distance

_CHUNK = 2048  # rows of the query scored at once (bounds memory to CHUNK x n_reference)


def knn_distance(query: np.ndarray, reference: np.ndarray, k: int, metric: str, aggregate: str = "mean") -> np.ndarray:
    """Distance of every query row to its ``k`` nearest ``reference`` rows (mean or k-th).

    ``k`` larger than the reference set is clipped to its size.
    """
    k = min(int(k), len(reference))
    out = np.empty(len(query), dtype=np.float64)
    for start in range(0, len(query), _CHUNK):
        d = pairwise_distance(query[start : start + _CHUNK], reference, metric)
        near = np.partition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else d
        out[start : start + _CHUNK] = near.max(1) if aggregate == "kth" else np.sort(near, axis=1).mean(1)
    return out


@BACKENDS.register(
    "knn",
    defaults={"k": 1, "metric": "cosine"},
    description="k-NN distance to training embeddings; separate source/target sets, score = min",
)
class KNNBackend(Backend):
    """kNN distance to the training embeddings of the row's group.

    Source (and domain-less) training rows and target training rows form two reference sets;
    a row's score is the minimum of its kNN distance to each set (just the source distance when
    there are no target training rows). ``aggregate="mean"`` averages the k nearest distances,
    ``"kth"`` takes the k-th. ``k`` is clipped to the size of a small reference set.

    Args:
        k: number of neighbours (>= 1).
        metric: ``"cosine"`` (1 - cosine similarity) or ``"euclidean"``.
        aggregate: ``"mean"`` or ``"kth"``.
        separate_domains: keep source and target apart (True) or pool them (False).
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "knn"

    def __init__(self, k: int = 1, metric: str = "cosine", aggregate: str = "mean", separate_domains: bool = True, group_by: Optional[str] = "section"):
        super().__init__(group_by)
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"knn: k must be a positive integer, got {k!r}")
        if metric not in ("cosine", "euclidean"):
            raise ConfigError(f"knn: metric must be 'cosine' or 'euclidean', got {metric!r}")
        if aggregate not in ("mean", "kth"):
            raise ConfigError(f"knn: aggregate must be 'mean' or 'kth', got {aggregate!r}")
        self.k, self.metric, self.aggregate, self.separate_domains = int(k), metric, aggregate, bool(separate_domains)
        self._set_params(k=int(k), metric=metric, aggregate=aggregate, separate_domains=bool(separate_domains))

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        if not self.separate_domains:
            return {"source": x, "target": x[:0]}
        tgt = meta.is_target()
        return {"source": x[~tgt], "target": x[tgt]}

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        scores = [knn_distance(x, ref, self.k, self.metric, self.aggregate) for ref in (state["source"], state["target"]) if len(ref)]
        return np.minimum.reduce(scores)
