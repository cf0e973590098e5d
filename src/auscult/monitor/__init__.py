"""Monitoring your own machines (the engineer's door): fit a model bundle with any method, turn a
research run into one, score, explain, watch a stream, serve, export.

::

    from auscult.monitor import fit_bundle, load_bundle
    bundle, report = fit_bundle("recordings/", "model.auscult")   # auscult fit recordings/ --out model.auscult
    bundle = load_bundle("model.auscult")
    result = bundle.score_file("new.wav")                          # score, decision, threshold, ...
    expl = bundle.explain_waveform(wave, 16000)                    # times, frame_scores, freqs, tf_map

Names are imported lazily so ``import auscult.monitor`` stays light (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Bundle": "bundle", "MachineModel": "bundle", "ScoreResult": "bundle", "Explanation": "bundle",
    "load_bundle": "bundle", "save_bundle": "bundle", "cut_windows": "bundle",
    "bundle_from_run": "bundle",
    "FitConfig": "fit", "FitReport": "fit", "fit_bundle": "fit", "discover_recordings": "fit",
    "plot_explanation": "explain",
    "export_onnx": "export", "OnnxScorer": "export",
    "WatchConfig": "stream", "watch": "stream",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
