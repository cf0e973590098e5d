"""Methods: a recipe bound to code that trains on normal clips and scores clips.

``METHODS`` is the registry (``auscult list`` shows it); :class:`Method` and :class:`FitContext`
are the contract (see :mod:`auscult.methods.base`). Every method module found below is imported
so that it registers itself; a module that is not there yet is simply not listed.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import METHODS, AudioSourceLike, FitContext, Method

__all__ = ["METHODS", "Method", "FitContext", "AudioSourceLike", "build_method"]


def _import_methods() -> None:
    """Import every module of this package (each registers its method in METHODS)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        importlib.import_module(f"{__name__}.{info.name}")


_import_methods()


def build_method(name: str, config: dict, context: FitContext | None = None) -> Method:
    """Build a registered method by name with a resolved recipe ``config``."""
    return METHODS.build(name, config=config, context=context)
