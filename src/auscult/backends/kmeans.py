"""k-means with cosine distance: source means plus every target training embedding as a centre."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ConfigError
from .base import BACKENDS, Backend, BackendMeta, GroupKey, l2_normalize


@BACKENDS.register(
    "kmeans",
    defaults={"n_clusters": 16},
    description="min cosine distance to k-means centres of source + every target embedding",
)
class KMeansBackend(Backend):
    """Minimum cosine distance to a set of centres.

    The centres are ``n_clusters`` k-means means of the (L2-normalised) source training
    embeddings plus every target training embedding as a centre of its own (target data is
    scarce in DCASE, so each clip is kept). With fewer source rows than ``n_clusters``, every
    source row is its own centre. Rows with no domain count as source.

    Args:
        n_clusters: number of source means (k).
        n_init: k-means restarts (best inertia kept).
        seed: random seed of the k-means initialisation.
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "kmeans"

    def __init__(self, n_clusters: int = 16, n_init: int = 10, seed: int = 0, group_by: Optional[str] = "section"):
        super().__init__(group_by)
        if not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
            raise ConfigError(f"kmeans: n_clusters must be a positive integer, got {n_clusters!r}")
        if not isinstance(n_init, (int, np.integer)) or n_init < 1:
            raise ConfigError(f"kmeans: n_init must be a positive integer, got {n_init!r}")
        self.n_clusters, self.n_init, self.seed = int(n_clusters), int(n_init), int(seed)
        self._set_params(n_clusters=self.n_clusters, n_init=self.n_init, seed=self.seed)

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        xn = l2_normalize(x)
        tgt = meta.is_target()
        src = xn[~tgt]
        if len(src) <= self.n_clusters:
            means = src
        else:
            from sklearn.cluster import KMeans

            km = KMeans(n_clusters=self.n_clusters, n_init=self.n_init, random_state=self.seed)
            # on unit vectors, squared L2 = 2 - 2 cos: Euclidean k-means approximates cosine k-means
            means = l2_normalize(km.fit(src).cluster_centers_)
        return {"source_centres": means, "target_centres": xn[tgt]}

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        centres = np.concatenate([state["source_centres"], state["target_centres"]], axis=0)
        sims = l2_normalize(x) @ centres.T
        return np.clip(1.0 - sims.max(axis=1), 0.0, 2.0)
