"""The loss registry and small helpers shared by the loss families."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..registry import Registry

LOSSES = Registry("loss")


def as_soft_labels(labels: torch.Tensor, n_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return labels as a ``[B, n_classes]`` float tensor.

    Accepts hard labels (integer ``[B]``) or soft labels (float ``[B, n_classes]``, e.g. mixed
    labels from mixup). Hard labels outside ``[0, n_classes)`` raise ``ConfigError``.
    """
    if labels.dim() == 1:
        if labels.dtype.is_floating_point:
            raise ConfigError("hard labels must be an integer tensor [B]; soft labels must be [B, n_classes]")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
            raise ConfigError(
                f"label out of range: got values in [{int(labels.min())}, {int(labels.max())}] "
                f"for a loss built with n_classes={n_classes}; rebuild the loss with the right n_classes"
            )
        return torch.nn.functional.one_hot(labels.long(), n_classes).to(dtype)
    if labels.dim() == 2:
        if labels.shape[1] != n_classes:
            raise ConfigError(
                f"soft labels have {labels.shape[1]} columns but the loss was built with n_classes={n_classes}"
            )
        return labels.to(dtype)
    raise ConfigError(f"labels must be [B] (hard) or [B, C] (soft), got shape {tuple(labels.shape)}")


def check_batch(emb: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    """Raise ``ConfigError`` unless ``emb`` is ``[B, D]`` and ``labels`` has ``B`` rows."""
    if emb.dim() != 2:
        raise ConfigError(f"embeddings must be [B, D], got shape {tuple(emb.shape)}")
    if labels is not None and labels.shape[0] != emb.shape[0]:
        raise ConfigError(f"{emb.shape[0]} embeddings but {labels.shape[0]} labels")
