"""Scores of the training rows from models that did not see them (leave-one-out / K-fold).

A threshold set on the scores of the rows a back-end was fitted on is too low (a k-NN scores
its own training rows 0); holding a quarter of a small folder out for calibration costs a quarter
of the data. Cross-fitting gives every training row an honest score and keeps all rows for the
final model::

    from auscult.backends import BACKENDS
    from auscult.backends.loo import cross_fit_scores

    be = BACKENDS.build("knn_norm", group_by=None)
    normal_scores = cross_fit_scores(be, train_x)          # leave-one-out: one refit per row
    be.fit(train_x)                                         # the model that is deployed

Each held-out row's score comes from a model fitted on ``n - 1`` rows (leave-one-out) or
``n (K - 1) / K`` rows (K folds), so it is a slightly pessimistic (higher) sample of what a model
fitted on all ``n`` rows gives new normal clips: thresholds set on it err on the side of fewer
false alarms.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ConfigError, DataError
from .base import BACKENDS, Backend, BackendMeta, check_embeddings

__all__ = ["cross_fit_scores", "fold_indices"]


def fold_indices(n: int, folds: Optional[int] = None, seed: int = 0) -> list[np.ndarray]:
    """Row indices of each held-out fold: ``n`` singletons (``folds=None``, leave-one-out) or
    ``folds`` near-equal parts of a seeded permutation."""
    if folds is None or folds >= n:
        return [np.array([i]) for i in range(n)]
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"folds must be None (leave-one-out) or an integer >= 2, got {folds!r}")
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(p) for p in np.array_split(perm, int(folds))]


def cross_fit_scores(backend: Backend, embeddings, meta: Optional[BackendMeta] = None, folds: Optional[int] = None,
                     seed: int = 0) -> np.ndarray:
    """Every row's score from a fresh copy of ``backend`` (same name and parameters) fitted on the
    other rows; ``folds=None`` is leave-one-out, an integer K uses K seeded folds.

    ``backend`` itself is not modified (fitted or not). A row that is the only training row of
    its group (section) or domain set cannot be scored without it: ``DataError`` naming it.
    """
    x = check_embeddings(embeddings)
    n = len(x)
    if n < 2:
        raise DataError(f"cross-fitted scores need at least 2 training rows, got {n}")
    if meta is None:
        meta = BackendMeta(n=n)
    elif meta.n != n:
        raise DataError(f"meta describes {meta.n} rows but there are {n} embeddings")
    out = np.empty(n, dtype=np.float64)
    for held in fold_indices(n, folds, seed):
        keep = np.setdiff1d(np.arange(n), held)
        fresh = BACKENDS.build(backend.name, **backend.params)
        try:
            fresh.fit(x[keep], meta.subset(keep))
            out[held] = fresh.score(x[held], meta.subset(held))
        except DataError as exc:
            raise DataError(f"cross-fitted scores: without training row(s) {held[:5].tolist()} the back-end "
                            f"cannot be fitted or cannot score them ({exc}); use fewer folds or more clips") from None
    return out
