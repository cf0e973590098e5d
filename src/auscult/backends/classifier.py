"""Scores from an auxiliary classifier's outputs: -log p(own class) and log-odds."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ConfigError, DataError
from .base import BACKENDS, Backend, BackendMeta, GroupKey, describe_group

_EPS = 1e-12


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _logsumexp_others(logits: np.ndarray, own: np.ndarray) -> np.ndarray:
    masked = logits.copy()
    masked[np.arange(len(logits)), own] = -np.inf
    m = masked.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(masked - m).sum(axis=1, keepdims=True)))[:, 0]


@BACKENDS.register(
    "classifier",
    defaults={"mode": "neg_log_prob"},
    description="-log p(own class) or log-odds from classifier logits/probs in meta",
)
class ClassifierBackend(Backend):
    """Anomaly score from a classifier trained on auxiliary labels (section, attributes, ...).

    Each row needs its own class (``meta.class_id``) and the classifier output for that row
    (``meta.logits``, or ``meta.probs`` when no logits are given); the embeddings themselves
    are only checked for shape. Modes:

    - ``"neg_log_prob"``: ``-log p(own class)`` (the MobileNetV2 / ResNet DCASE baselines);
    - ``"log_odds"``: ``log((1 - p) / p)`` of the own class, i.e. minus its log-odds.

    Fitting learns nothing but the number of classes (so that a mismatched classifier is
    caught) and, as every back-end, which groups exist.

    Args:
        mode: ``"neg_log_prob"`` or ``"log_odds"``.
        group_by: ``"section"``, ``"machine"`` or ``None``.
    """

    name = "classifier"

    def __init__(self, mode: str = "neg_log_prob", group_by: Optional[str] = "section"):
        super().__init__(group_by)
        if mode not in ("neg_log_prob", "log_odds"):
            raise ConfigError(f"classifier: mode must be 'neg_log_prob' or 'log_odds', got {mode!r}")
        self.mode = mode
        self._set_params(mode=mode)

    @staticmethod
    def _outputs(meta: BackendMeta) -> Optional[np.ndarray]:
        return meta.logits if meta.logits is not None else meta.probs

    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        out = self._outputs(meta)
        return {"n_classes": np.array(-1 if out is None else out.shape[1], dtype=np.int64)}

    def _score_group(self, state, x, meta, key) -> np.ndarray:
        where = describe_group(key, self.group_by)
        if meta.class_id is None:
            raise DataError(f"classifier: meta.class_id (each row's own class) is needed to score {where}")
        out = self._outputs(meta)
        if out is None:
            raise DataError(f"classifier: meta.logits or meta.probs is needed to score {where}")
        n_classes = int(state["n_classes"])
        if n_classes > 0 and out.shape[1] != n_classes:
            raise DataError(f"classifier: {where} was fitted with {n_classes} classes, got outputs for {out.shape[1]}")
        own = meta.class_id
        if own.size and (own.min() < 0 or own.max() >= out.shape[1]):
            raise DataError(f"classifier: class_id out of range [0, {out.shape[1]}) in {where}")
        rows = np.arange(len(own))
        if meta.logits is not None:
            logp = log_softmax(meta.logits)[rows, own]
            if self.mode == "neg_log_prob":
                return -logp
            return _logsumexp_others(meta.logits, own) - meta.logits[rows, own]
        probs = meta.probs
        if np.any(probs < 0) or not np.allclose(probs.sum(1), 1.0, atol=1e-3):
            raise DataError(f"classifier: meta.probs in {where} are not probabilities (rows must be >= 0 and sum to 1)")
        p = np.clip(probs[rows, own], _EPS, 1.0 - _EPS)
        if self.mode == "neg_log_prob":
            return -np.log(p)
        return np.log1p(-p) - np.log(p)
