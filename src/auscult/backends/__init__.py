"""Scoring back-ends: fit / score / save / load on embeddings, per section or machine type.

Every back-end is registered in ``BACKENDS`` and follows one API::

    from auscult.backends import BACKENDS, BackendMeta, load_backend

    be = BACKENDS.build("knn", k=1, metric="cosine", group_by="section")
    be.fit(train_embeddings, BackendMeta.from_clips(train_clips))
    scores = be.score(test_embeddings, BackendMeta.from_clips(test_clips))  # higher = more anomalous
    be.save("backend.npz"); be = load_backend("backend.npz")

See ``docs/backends.md``.
"""

from .base import (
    BACKENDS,
    FORMAT_VERSION,
    Backend,
    BackendMeta,
    BackendVersionWarning,
    l2_normalize,
    load_backend,
    pairwise_distance,
    set_threads,
)
from .classifier import ClassifierBackend
from .fusion import EnsembleBackend, ScoreFusion
from .gmm import GMMBackend
from .kmeans import KMeansBackend
from .knn import KNNBackend, knn_distance
from .knn_norm import KNNNormBackend, smote
from .lof import LOFBackend
from .loo import cross_fit_scores
from .mahalanobis import MahalanobisBackend, SelectiveMahalanobisBackend

__all__ = [
    "BACKENDS",
    "FORMAT_VERSION",
    "Backend",
    "BackendMeta",
    "BackendVersionWarning",
    "ClassifierBackend",
    "EnsembleBackend",
    "GMMBackend",
    "KMeansBackend",
    "KNNBackend",
    "KNNNormBackend",
    "LOFBackend",
    "MahalanobisBackend",
    "ScoreFusion",
    "SelectiveMahalanobisBackend",
    "cross_fit_scores",
    "knn_distance",
    "l2_normalize",
    "load_backend",
    "pairwise_distance",
    "set_threads",
    "smote",
]
