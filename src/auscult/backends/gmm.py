"""Gaussian mixture negative log-likelihood (scikit-learn ``GaussianMixture``)."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..errors import ConfigError
from .base import BACKENDS, Backend, BackendMeta, GroupKey, describe_group, domain_sets

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_PARTS = ("weights", "means", "covariances", "precisions_cholesky")


@BACKENDS.register(
    "gmm",
    defaults={"n_components": 2, "covariance_type": "diag"},
    description="negative log-likelihood under Gaussian mixtures of source and target rows, score = min",
)
class GMMBackend(Backend):
    """Score = ``-log p(x)`` under a Gaussian mixture; source and target get one mixture each.

    With ``separate_domains`` (default) the source (and domain-less) rows and the target rows
    of a group are fitted separately and the score is the smaller negative log-likelihood.
    ``n_components`` is clipped to the number of rows. The mixtures' fitted parameters
    (weights, means, covariances, precision Cholesky factors) are what gets saved.
    The default diagonal covariance is robust with few rows per component; ``"full"`` needs
    many more rows per component than dimensions (a warning says so when it has too few),
    otherwise a component collapses onto its few points and normal rows score as anomalies.

    Args:
        n_components: mixture components.
        covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
        reg_covar: added to the covariance diagonals (numerical stability).
        n_init: EM restarts.
        max_iter: EM iterations.
        seed: random seed of the initialisation.
        separate_domains: one mixture per domain (True) or one for all rows (False).
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "gmm"
    min_fit_rows = 2

    def __init__(self, n_components: int = 2, covariance_type: str = "diag", reg_covar: float = 1e-6, n_init: int = 1,
                 max_iter: int = 100, seed: int = 0, separate_domains: bool = True, group_by: Optional[str] = "section"):
        super().__init__(group_by)
        if not isinstance(n_components, (int, np.integer)) or n_components < 1:
            raise ConfigError(f"gmm: n_components must be a positive integer, got {n_components!r}")
        if covariance_type not in COVARIANCE_TYPES:
            raise ConfigError(f"gmm: covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
        if not reg_covar >= 0:
            raise ConfigError(f"gmm: reg_covar must be >= 0, got {reg_covar!r}")
        self.n_components, self.covariance_type = int(n_components), covariance_type
        self.reg_covar, self.n_init, self.max_iter, self.seed = float(reg_covar), int(n_init), int(max_iter), int(seed)
        self.separate_domains = bool(separate_domains)
        self._set_params(n_components=self.n_components, covariance_type=covariance_type, reg_covar=self.reg_covar,
                         n_init=self.n_init, max_iter=self.max_iter, seed=self.seed, separate_domains=self.separate_domains)

    def _make(self, n_components: int):
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(n_components=n_components, covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                               n_init=self.n_init, max_iter=self.max_iter, random_state=self.seed)

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {}
        for dom, rows in domain_sets(x, meta, self.separate_domains, key, self.name, self.group_by).items():
            n_comp = min(self.n_components, len(rows))
            if self.covariance_type == "full" and len(rows) < 2 * n_comp * rows.shape[1]:
                warnings.warn(
                    f"gmm: {describe_group(key, self.group_by)} has {len(rows)} {dom} rows for {n_comp} full-covariance "
                    f"components in {rows.shape[1]} dimensions; expect overfitting (use covariance_type='diag' or 'tied')",
                    UserWarning,
                    stacklevel=4,
                )
            gm = self._make(n_comp).fit(rows)
            self._cache[(key, dom)] = gm
            for part in _PARTS:
                state[f"{dom}_{part}"] = getattr(gm, part + "_")
        return state

    def _model(self, state, key, dom):
        gm = self._cache.get((key, dom))
        if gm is None:  # rebuilt from the saved parameters (no pickle)
            gm = self._make(len(state[f"{dom}_weights"]))
            for part in _PARTS:
                setattr(gm, part + "_", np.asarray(state[f"{dom}_{part}"], dtype=np.float64))
            gm.n_features_in_ = gm.means_.shape[1]
            gm.converged_, gm.n_iter_, gm.lower_bound_ = True, 0, float("nan")
            self._cache[(key, dom)] = gm
        return gm

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        doms = sorted({name.split("_", 1)[0] for name in state})
        return np.minimum.reduce([-self._model(state, key, d).score_samples(x) for d in doms])
