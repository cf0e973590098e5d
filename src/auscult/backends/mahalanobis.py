"""Mahalanobis distances: to class/attribute prototypes (shared covariance) and selective
(separate source and target covariances, score = the minimum)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ConfigError, DataError
from .base import BACKENDS, Backend, BackendMeta, GroupKey, describe_group

SHRINKAGE = ("ledoit-wolf", "none")


def estimate_covariance(x: np.ndarray, shrinkage: str = "ledoit-wolf", assume_centered: bool = False) -> np.ndarray:
    """Covariance of the rows of ``x``: Ledoit-Wolf shrinkage or the plain (ddof=1) estimate."""
    if shrinkage == "ledoit-wolf":
        from sklearn.covariance import ledoit_wolf

        cov, _ = ledoit_wolf(x, assume_centered=assume_centered)
        return cov
    if shrinkage == "none":
        xc = x if assume_centered else x - x.mean(0, keepdims=True)
        return xc.T @ xc / max(len(x) - (0 if assume_centered else 1), 1)
    raise ConfigError(f"shrinkage must be one of {SHRINKAGE}, got {shrinkage!r}")


def precision_matrix(cov: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric covariance matrix (pseudo-inverse if it is singular)."""
    try:
        np.linalg.cholesky(cov)  # positive definite: the plain inverse is well defined
        prec = np.linalg.inv(cov)
        return (prec + prec.T) / 2.0
    except np.linalg.LinAlgError:
        from scipy.linalg import pinvh

        return pinvh(cov)


def mahalanobis_sq(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance ``(x - mean)^T P (x - mean)`` per row."""
    d = x - mean[None, :]
    return np.maximum(((d @ precision) * d).sum(axis=1), 0.0)


def _finish(d2: np.ndarray, squared: bool) -> np.ndarray:
    return d2 if squared else np.sqrt(d2)


@BACKENDS.register(
    "mahalanobis",
    defaults={},
    description="Mahalanobis distance to class/attribute prototypes, shared Ledoit-Wolf covariance",
)
class MahalanobisBackend(Backend):
    """Distance to the nearest (or the row's own) prototype under one shared covariance.

    Prototypes are the per-class means of the training rows of a group. ``prototypes`` picks the
    class: ``"class"`` (``meta.class_id``), ``"attribute"`` (``meta.attribute``), ``"domain"``,
    ``"none"`` (one mean) or ``"auto"`` (class if given, else attribute, else none). The shared
    covariance is estimated from the rows centred on their own prototype, with Ledoit-Wolf
    shrinkage by default.

    Args:
        prototypes: see above.
        assign: ``"min"`` (nearest prototype, needs no labels at test time) or ``"own"`` (the
            row's own prototype; the test rows need the same class information).
        shrinkage: ``"ledoit-wolf"`` or ``"none"``.
        squared: return squared distances (True) or distances.
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "mahalanobis"
    min_fit_rows = 2

    def __init__(self, prototypes: str = "auto", assign: str = "min", shrinkage: str = "ledoit-wolf", squared: bool = True, group_by: Optional[str] = "section"):
        super().__init__(group_by)
        if prototypes not in ("auto", "class", "attribute", "domain", "none"):
            raise ConfigError(f"mahalanobis: prototypes must be auto|class|attribute|domain|none, got {prototypes!r}")
        if assign not in ("min", "own"):
            raise ConfigError(f"mahalanobis: assign must be 'min' or 'own', got {assign!r}")
        if shrinkage not in SHRINKAGE:
            raise ConfigError(f"mahalanobis: shrinkage must be one of {SHRINKAGE}, got {shrinkage!r}")
        self.prototypes, self.assign, self.shrinkage, self.squared = prototypes, assign, shrinkage, bool(squared)
        self._set_params(prototypes=prototypes, assign=assign, shrinkage=shrinkage, squared=bool(squared))

    def _labels(self, meta: BackendMeta, kind: str, key: GroupKey, fitting: bool) -> np.ndarray:
        if kind == "none":
            return np.full(meta.n, "all", dtype=object)
        if kind == "class":
            src = meta.class_id
        elif kind == "attribute":
            src = meta.attribute
        else:
            src = None if meta.domain is None else np.array([d or "source" for d in meta.domain], dtype=object)
        if src is None or any(v is None for v in src):
            where = "training" if fitting else "scored"
            raise DataError(
                f"mahalanobis: prototypes={kind!r} needs meta.{'class_id' if kind == 'class' else kind} for every "
                f"{where} row of {describe_group(key, self.group_by)} (or use prototypes='none')"
            )
        return np.array([str(v) for v in src], dtype=object)

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        kind = self.prototypes
        if kind == "auto":
            kind = "class" if meta.class_id is not None else ("attribute" if meta.attribute is not None and all(a is not None for a in meta.attribute) else "none")
        labels = self._labels(meta, kind, key, fitting=True)
        names = sorted(set(labels))
        means = np.stack([x[labels == n].mean(0) for n in names])
        pos = {n: i for i, n in enumerate(names)}
        residual = x - means[np.array([pos[l] for l in labels], dtype=np.int64)]
        cov = estimate_covariance(residual, self.shrinkage, assume_centered=True)
        return {"kind": np.array(kind), "names": np.array(names, dtype=str), "means": means, "precision": precision_matrix(cov)}

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        means, prec = state["means"], state["precision"]
        d2 = np.stack([mahalanobis_sq(x, m, prec) for m in means], axis=1)
        if self.assign == "min":
            return _finish(d2.min(1), self.squared)
        names = [str(n) for n in state["names"]]
        labels = self._labels(meta, str(state["kind"]), key, fitting=False)
        pos = {n: i for i, n in enumerate(names)}
        unseen = sorted(set(labels) - set(pos))
        if unseen:
            raise DataError(
                f"mahalanobis: {str(state['kind'])} {unseen} of {describe_group(key, self.group_by)} were not seen in fit "
                f"(fitted: {names}); use assign='min'"
            )
        idx = np.array([pos[l] for l in labels], dtype=np.int64)
        return _finish(d2[np.arange(len(x)), idx], self.squared)


@BACKENDS.register(
    "selective_mahalanobis",
    defaults={},
    description="min of Mahalanobis distances under separate source and target covariances",
)
class SelectiveMahalanobisBackend(Backend):
    """Selective Mahalanobis (DCASE 2022 autoencoder baseline style).

    Source (and domain-less) rows and target rows of a group each get their own mean and
    covariance; the score is the minimum of the two squared distances (only the source one when
    a group has no target rows, only the target one when it has no source rows). ``center=False`` measures from the origin instead of the domain
    mean (what the baseline does with mean reconstruction-residual blocks); the covariance is
    always estimated around the domain mean.

    Args:
        shrinkage: ``"ledoit-wolf"`` (default; target sets are small) or ``"none"`` (plain
            covariance, pseudo-inverted).
        center: measure from the domain mean (True) or from the origin (False).
        squared: return squared distances (True) or distances.
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "selective_mahalanobis"
    min_fit_rows = 2

    def __init__(self, shrinkage: str = "ledoit-wolf", center: bool = True, squared: bool = True, group_by: Optional[str] = "section"):
        super().__init__(group_by)
        if shrinkage not in SHRINKAGE:
            raise ConfigError(f"selective_mahalanobis: shrinkage must be one of {SHRINKAGE}, got {shrinkage!r}")
        self.shrinkage, self.center, self.squared = shrinkage, bool(center), bool(squared)
        self._set_params(shrinkage=shrinkage, center=bool(center), squared=bool(squared))

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        tgt = meta.is_target()
        state: dict[str, np.ndarray] = {}
        for dom, rows in (("source", x[~tgt]), ("target", x[tgt])):
            if len(rows) == 0:  # a group may have one domain only (fit() never passes an empty group)
                continue
            if len(rows) < 2:
                raise DataError(
                    f"selective_mahalanobis: {describe_group(key, self.group_by)} has {len(rows)} {dom} training "
                    f"embedding(s); a covariance needs at least 2 (add clips or use a coarser group_by)"
                )
            mean = rows.mean(0) if self.center else np.zeros(rows.shape[1])
            state[f"{dom}_mean"] = mean
            state[f"{dom}_precision"] = precision_matrix(estimate_covariance(rows, self.shrinkage))
        return state

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        d2 = [mahalanobis_sq(x, state[f"{d}_mean"], state[f"{d}_precision"]) for d in ("source", "target") if f"{d}_mean" in state]
        return _finish(np.minimum.reduce(d2), self.squared)
