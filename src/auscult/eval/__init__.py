"""Evaluation: metrics, the DCASE protocols per year, submission files, thresholds and reports.

The public names below are imported lazily, so ``import auscult.eval`` (and the CLI) stays light.

* metrics: :func:`auc`, :func:`pauc_mcclish`, :func:`pauc_raw`, :func:`auc_source_vs_all_anomalies`,
  :func:`auc_target_vs_all_anomalies`, :func:`precision_recall_f1`, :func:`harmonic_mean_official`, ...
* protocols: :func:`evaluate_scores` (in-memory) -> :class:`Result`; :func:`summarize`.
* submission: :func:`write_submission`, :func:`read_submission_file`, :func:`evaluate_submission`.
* thresholds: :func:`fit_threshold` (the one entry point: gamma | percentile | false_alarm_rate | auto),
  :func:`gamma_threshold`, :func:`percentile_threshold`, :func:`false_alarm_threshold`.
* report: :func:`write_report`, :func:`write_tables`, :func:`print_result` (the one console table).

Nothing here imports the pipeline or the monitor: both build on evaluation, never the other way.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "auc": "metrics",
    "pauc_mcclish": "metrics",
    "pauc_raw": "metrics",
    "mcclish_from_raw": "metrics",
    "raw_from_mcclish": "metrics",
    "auc_source_vs_all_anomalies": "metrics",
    "auc_target_vs_all_anomalies": "metrics",
    "auc_domain_vs_all_anomalies": "metrics",
    "precision_recall_f1": "metrics",
    "arithmetic_mean": "metrics",
    "harmonic_mean_official": "metrics",
    "min_auc": "metrics",
    "MetricInputError": "metrics",
    "Result": "protocols",
    "GroupData": "protocols",
    "evaluate_scores": "protocols",
    "summarize": "protocols",
    "submission_filename": "submission",
    "write_submission": "submission",
    "read_submission_file": "submission",
    "evaluate_submission": "submission",
    "Threshold": "thresholds",
    "fit_threshold": "thresholds",
    "THRESHOLD_METHODS": "thresholds",
    "gamma_threshold": "thresholds",
    "percentile_threshold": "thresholds",
    "false_alarm_threshold": "thresholds",
    "write_report": "report",
    "write_tables": "report",
    "print_result": "report",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'auscult.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{mod}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
