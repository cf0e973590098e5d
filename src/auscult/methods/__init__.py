"""Methods: a recipe bound to code that trains on normal clips and scores clips.

``METHODS`` is the registry (``auscult list`` shows it); :class:`Method` and :class:`FitContext`
are the contract (see :mod:`auscult.methods.base`). Every method module or package found below
registers itself; they are imported the first time ``METHODS`` is asked for an entry (they need
torch, ``import auscult.methods`` does not).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import CAPABILITIES, METHODS, AudioSourceLike, FitContext, Method, ScoringGraph, TFMap, methods_with

__all__ = ["METHODS", "Method", "FitContext", "AudioSourceLike", "TFMap", "ScoringGraph", "CAPABILITIES",
           "build_method", "methods_with"]


def _import_methods() -> None:
    """Import every module and sub-package of this package (each registers its method in METHODS)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        importlib.import_module(f"{__name__}.{info.name}")
        if info.ispkg:  # a method package (methods/<name>/) registers in its method.py
            importlib.import_module(f"{__name__}.{info.name}.method")


METHODS.set_loader(_import_methods)


def build_method(name: str, config: dict, context: FitContext | None = None) -> Method:
    """Build a registered method by name with a resolved recipe ``config``."""
    return METHODS.build(name, config=config, context=context)
