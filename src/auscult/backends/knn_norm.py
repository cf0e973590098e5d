"""k-NN with score normalisation for small and unbalanced reference sets (the DCASE 2023-2025
first-shot back-end recipe), and SMOTE-style oversampling of the few target clips.

A plain k-NN distance is not comparable between two reference sets of different density: the
target set of a DCASE section holds ten clips, the source set a thousand, so a normal target
clip lies farther from its nearest target neighbour than a normal source clip from its nearest
source neighbour, and ``min`` over the two sets calls target normals anomalous. Two fixes, both
computed from the training rows alone:

* ``normalize="local"`` (local-density ratio): the score of a query ``q`` against a set ``R`` is
  ``d(q, r_k) / rho_k(r_k)``, where ``r_k`` is the ``k``-th nearest row of ``R`` to ``q`` and
  ``rho_k(r)`` is the distance from ``r`` to its own ``k``-th nearest *other* row of ``R``. A query
  as close to the set as its rows are to each other scores about 1, whatever the set's density.
* ``normalize="domain_z"``: ``(d_k(q, R) - m_R) / s_R``, where ``m_R`` and ``s_R`` are the mean and
  standard deviation of the leave-one-out k-NN distances of ``R``'s own rows (each row against
  ``R`` without itself).

The score is the minimum over the reference sets (source, target), as in ``knn``.

SMOTE (``smote_target=N``): before anything else, the target set is grown to ``N`` rows by
interpolating between a random target row and one of its ``smote_k`` nearest target neighbours
(``a + u * (b - a)``, ``u ~ U(0, 1)``, seeded). The synthetic rows only fill in the reference set:
when a row's own k-NN distance is measured (``local``'s density, ``domain_z``'s statistics) the rows
sharing an original parent with it are left out, so a clip never meets its own interpolations and
an interpolated row is not measured against the two clips it was made from.

``standardize=True`` z-scores every dimension with the group's training mean and spread first
(features such as band statistics have different units; learned embeddings usually do not need
it). Leave-one-out scores of the training rows (for thresholds) come from
:func:`auscult.backends.loo.cross_fit_scores`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ConfigError, DataError
from .base import BACKENDS, Backend, BackendMeta, GroupKey, describe_group, pairwise_distance

NORMALIZE = ("none", "local", "domain_z")


def smote(x: np.ndarray, n_total: int, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grow ``x`` to ``n_total`` rows by SMOTE interpolation (Chawla et al. 2002).

    Each synthetic row is ``x[a] + u * (x[b] - x[a])`` with ``a`` drawn uniformly (cycling over the
    rows so that every row is used about equally), ``b`` one of ``a``'s ``k`` nearest other rows
    (Euclidean) and ``u ~ U(0, 1)``. Returns ``(rows, parents)``: the ``n_total`` rows (the
    originals first) and ``[n_total, 2]`` parent indices (``(i, i)`` for original row ``i``).
    ``n_total <= len(x)`` returns ``x`` unchanged; a single row cannot be interpolated and is
    returned as is.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    parents = np.stack([np.arange(n), np.arange(n)], axis=1)
    if n_total <= n or n < 2:
        return x, parents
    rng = np.random.default_rng(seed)
    d = pairwise_distance(x, x, "euclidean")
    np.fill_diagonal(d, np.inf)
    kk = min(int(k), n - 1)
    near = np.argsort(d, axis=1, kind="stable")[:, :kk]
    n_new = int(n_total) - n
    a = np.concatenate([rng.permutation(n) for _ in range(n_new // n + 1)])[:n_new]
    b = near[a, rng.integers(0, kk, size=n_new)]
    u = rng.random(n_new)[:, None]
    new = x[a] + u * (x[b] - x[a])
    return np.concatenate([x, new]), np.concatenate([parents, np.stack([a, b], axis=1)])


def _kth(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``d``: the ``k``-th smallest value and its column (``k`` clipped to the columns)."""
    k = min(int(k), d.shape[1])
    col = np.argpartition(d, k - 1, axis=1)[:, k - 1]
    return d[np.arange(len(d)), col], col


@BACKENDS.register(
    "knn_norm",
    defaults={"k": 1, "metric": "euclidean", "normalize": "local"},
    description="k-NN with local-density or per-domain z score normalisation, optional SMOTE of target rows",
)
class KNNNormBackend(Backend):
    """Normalised k-NN distance to the training rows of the row's group (see the module docstring).

    Args:
        k: the neighbour whose distance is used (the ``k``-th nearest, >= 1).
        metric: ``"euclidean"`` or ``"cosine"``.
        normalize: ``"local"`` (distance / the neighbour's own k-NN distance), ``"domain_z"``
            (z-score against the set's leave-one-out distances) or ``"none"`` (plain k-th distance).
        standardize: z-score every dimension with the group's training statistics first.
        separate_domains: source and target rows form separate reference sets (score = min).
        smote_target: grow each group's target set to this many rows (0: off).
        smote_k: neighbours SMOTE interpolates towards.
        seed: SMOTE's random seed.
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "knn_norm"
    min_fit_rows = 2

    def __init__(self, k: int = 1, metric: str = "euclidean", normalize: str = "local", standardize: bool = True,
                 separate_domains: bool = True, smote_target: int = 0, smote_k: int = 5, seed: int = 0,
                 group_by: Optional[str] = "section"):
        super().__init__(group_by)
        for name, v, lo in (("k", k, 1), ("smote_target", smote_target, 0), ("smote_k", smote_k, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"knn_norm: {name} must be an integer >= {lo}, got {v!r}")
        if metric not in ("cosine", "euclidean"):
            raise ConfigError(f"knn_norm: metric must be 'cosine' or 'euclidean', got {metric!r}")
        if normalize not in NORMALIZE:
            raise ConfigError(f"knn_norm: normalize must be one of {NORMALIZE}, got {normalize!r}")
        self.k, self.metric, self.normalize = int(k), metric, normalize
        self.standardize, self.separate_domains = bool(standardize), bool(separate_domains)
        self.smote_target, self.smote_k, self.seed = int(smote_target), int(smote_k), int(seed)
        self._set_params(k=self.k, metric=metric, normalize=normalize, standardize=self.standardize,
                         separate_domains=self.separate_domains, smote_target=self.smote_target,
                         smote_k=self.smote_k, seed=self.seed)

    # -- fitting ---------------------------------------------------------------------------
    def _sets(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{set name: (rows, parents)}`` after SMOTE; parents index the set's original rows."""
        if self.separate_domains:
            tgt = meta.is_target()
            raw = {"source": x[~tgt], "target": x[tgt]}
        else:
            raw = {"source": x, "target": x[:0]}
        out = {}
        for name, rows in raw.items():
            if not len(rows):
                continue
            need = 1 if self.normalize == "none" else 2  # a density needs another row to measure against
            if len(rows) < need:
                raise DataError(
                    f"knn_norm: {describe_group(key, self.group_by)} has {len(rows)} {name} training row(s); "
                    f"normalize={self.normalize!r} needs at least {need} (add clips, use separate_domains=False or "
                    f"normalize='none')"
                )
            if name == "target" and self.smote_target > len(rows):
                out[name] = smote(rows, self.smote_target, self.smote_k, self.seed + len(out))
            else:
                out[name] = (rows, np.stack([np.arange(len(rows))] * 2, axis=1))
        return out

    def _own_distances(self, rows: np.ndarray, parents: np.ndarray) -> np.ndarray:
        """Every row's distance to its ``k``-th nearest row of the set among the rows made from other
        original rows: a row never meets itself, its SMOTE parents or anything interpolated from
        them (original row ``i`` has parents ``(i, i)``); ``[len(rows)]``."""
        d = pairwise_distance(rows, rows, self.metric)
        a, b = parents[:, 0], parents[:, 1]
        shared = (a[:, None] == a[None, :]) | (a[:, None] == b[None, :]) | (b[:, None] == a[None, :]) | (b[:, None] == b[None, :])
        d[shared] = np.inf
        free = np.isfinite(d).sum(1)
        if free.min() < 1:
            raise DataError("knn_norm: a reference row has no row of independent origin to measure its density against")
        kth, _ = _kth(d, min(self.k, int(free.min())))
        return kth

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        mu = x.mean(0) if self.standardize else np.zeros(x.shape[1])
        sd = x.std(0) + 1e-8 if self.standardize else np.ones(x.shape[1])
        z = (x - mu) / sd
        state: dict[str, np.ndarray] = {"mu": mu, "sd": sd}
        for name, (rows, parents) in self._sets(z, meta, key).items():
            state[f"{name}_rows"] = rows
            if self.normalize == "local":
                state[f"{name}_rho"] = np.maximum(self._own_distances(rows, parents), 1e-12)
            elif self.normalize == "domain_z":
                orig = parents[:, 0] == parents[:, 1]
                own = self._own_distances(rows, parents)[orig]
                state[f"{name}_stats"] = np.array([own.mean(), max(own.std(ddof=1), 1e-12)])
        return state

    # -- scoring ---------------------------------------------------------------------------
    def _set_score(self, state: dict[str, np.ndarray], name: str, z: np.ndarray) -> np.ndarray:
        rows = state[f"{name}_rows"]
        dk, col = _kth(pairwise_distance(z, rows, self.metric), self.k)
        if self.normalize == "local":
            return dk / state[f"{name}_rho"][col]
        if self.normalize == "domain_z":
            m, s = state[f"{name}_stats"]
            return (dk - m) / s
        return dk

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        z = (x - state["mu"]) / state["sd"]
        names = [n for n in ("source", "target") if f"{n}_rows" in state]
        return np.minimum.reduce([self._set_score(state, n, z) for n in names])
