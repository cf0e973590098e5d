"""CLSIA: contrastive learning with spectrum information augmentation (``method: clsia``).

* :mod:`.model` -- the building blocks (views, MoCo, the labelled key queue, the loss, one step);
* :mod:`.method` -- the registered method (MoCo per section, or fine-tuning a classifier);
* :mod:`.pretrain` -- instance-discrimination pre-training on any folder of audio;
* :mod:`.cli` -- ``auscult pretrain FOLDER``.

Names are imported lazily, so the CLI module beside them does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CLSIA": "method", "CLSIA_DEFAULTS": "method",
    "AUGMENT_DEFAULTS": "model", "CLSIAViews": "model", "MoCo": "model", "LabelledKeyQueue": "model",
    "contrastive_loss": "model", "moco_step": "model", "AnchorNegativeDataset": "model", "collate_views": "model",
    "Classifier": "model",
    "pretrain": "pretrain", "load_pretrained": "pretrain", "find_audio": "pretrain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
