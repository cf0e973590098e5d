"""The DCASE Task 2 evaluation protocols, 2020-2026, over in-memory scores.

One entry point, :func:`evaluate_scores`, takes labelled clips and their anomaly scores and
returns a :class:`Result`: the per-section table, the official score of the year, clearly
named unofficial aggregates, a per-machine summary, and the scored data (for plots).

Per year (``p`` = 0.1, pAUC = :func:`~auscult.eval.metrics.pauc_mcclish`):

* **2020** -- per machine ID (our ``section``): AUC and pAUC over that ID's test clips; per
  machine type the arithmetic mean over IDs (and mAUC, the minimum). There is no single official
  score; ``aggregates["unofficial_hmean_auc_pauc"]`` is a clearly unofficial summary.
* **2021** -- per section *and domain*: AUC and pAUC on that domain's own normal and anomalous
  clips (a domain absent from a section, as in a subset, gets no row). Official score = harmonic mean (floored at machine epsilon) of all AUC and pAUC values
  over machine types, sections and domains.
* **2022-2026** -- per section: AUC(source) = source normals vs **all** anomalies of the section,
  AUC(target) = target normals vs all anomalies, pAUC over all clips of the section. Official
  score = harmonic mean over the set of all AUC(source), AUC(target) and pAUC values.
  Precision/recall/F1 per domain on that domain's clips (when decisions are given). DCASE 2026
  (two-channel clips, same metrics as 2023-2025: AUC(source), AUC(target), pAUC and their
  harmonic mean) uses this protocol unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..data.clip import Clip
from ..errors import DataError
from . import metrics as M

__all__ = ["GroupData", "Result", "evaluate_scores", "summarize", "protocol_name", "YEARS"]

YEARS: tuple[int, ...] = (2020, 2021, 2022, 2023, 2024, 2025, 2026)


def protocol_name(year: int) -> str:
    """``"dcase2020"``, ``"dcase2021"`` or ``"dcase2022-2026"`` (one protocol for 2022 to 2026)."""
    year = _check_year(year)
    return {2020: "dcase2020", 2021: "dcase2021"}.get(year, "dcase2022-2026")


def _check_year(year) -> int:
    try:
        y = int(year)
    except (TypeError, ValueError):
        raise DataError(f"year must be one of {YEARS}, got {year!r}") from None
    if y not in YEARS:
        raise DataError(f"year must be one of {YEARS}, got {year}")
    return y


@dataclass
class GroupData:
    """The scored clips of one machine type and section (what the plots need)."""

    machine: str
    section: str
    names: list[str]
    labels: np.ndarray  # 0 normal, 1 anomaly
    domains: list[Optional[str]]
    scores: np.ndarray
    decisions: Optional[np.ndarray] = None
    threshold: Optional[float] = None

    def domain_mask(self, domain: Optional[str]) -> np.ndarray:
        """Boolean mask of the clips in ``domain`` (``None`` = all clips)."""
        if domain is None:
            return np.ones(len(self.names), dtype=bool)
        return np.array([d == domain for d in self.domains], dtype=bool)


@dataclass
class Result:
    """The outcome of one evaluation.

    Attributes:
        year: DCASE year whose protocol was applied.
        protocol: ``protocol_name(year)``.
        rows: the per-section table (per section *and domain* for 2021), one dict per row,
            keys in ``columns`` order.
        columns: column names of ``rows``.
        official_score: the year's official score, or ``None`` (2020 has none).
        official_definition: one sentence saying what ``official_score`` is.
        aggregates: unofficial aggregates, each named for what it computes.
        machines: per-machine summary rows (keys in ``machine_columns``).
        machine_columns: column names of ``machines``.
        groups: the scored data per (machine, section), for plots.
        max_fpr: the p of pAUC.
    """

    year: int
    protocol: str
    rows: list[dict[str, Any]]
    columns: list[str]
    official_score: Optional[float]
    official_definition: str
    aggregates: dict[str, float]
    machines: list[dict[str, Any]]
    machine_columns: list[str]
    groups: list[GroupData] = field(default_factory=list, repr=False)
    max_fpr: float = M.MAX_FPR

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no per-clip data)."""
        return {
            "year": self.year,
            "protocol": self.protocol,
            "official_score": self.official_score,
            "official_definition": self.official_definition,
            "aggregates": dict(self.aggregates),
            "columns": list(self.columns),
            "rows": [dict(r) for r in self.rows],
            "machine_columns": list(self.machine_columns),
            "machines": [dict(m) for m in self.machines],
            "max_fpr": self.max_fpr,
        }


def _group(clips: Sequence[Clip], scores: np.ndarray, decisions: Optional[np.ndarray], year: int):
    groups: dict[tuple[str, str], list[int]] = {}
    seen: dict[tuple[str, str], Clip] = {}
    for i, c in enumerate(clips):
        if c.label not in ("normal", "anomaly"):
            raise DataError(f"{c.path}: clip has no ground-truth label ({c.label!r}); join ground truth first")
        if year >= 2021 and c.domain not in ("source", "target"):
            raise DataError(f"{c.path}: clip has no domain ({c.domain!r}); the {year} protocol needs one")
        key = (c.machine, c.domain, c.name)
        if key in seen:
            raise DataError(f"{c.path}: clip name {c.name!r} of {c.machine} appears twice ({seen[key].path})")
        seen[key] = c
        groups.setdefault((c.machine, c.section), []).append(i)
    out = []
    for (machine, section), idx in sorted(groups.items()):
        out.append(
            GroupData(
                machine=machine,
                section=section,
                names=[clips[i].name for i in idx],
                labels=np.array([1 if clips[i].label == "anomaly" else 0 for i in idx], dtype=np.int64),
                domains=[clips[i].domain for i in idx],
                scores=scores[idx],
                decisions=None if decisions is None else decisions[idx],
            )
        )
    return out


def _in_group(g: GroupData, what: str, fn, *args):
    try:
        return fn(*args)
    except M.MetricInputError as exc:
        raise M.MetricInputError(f"{g.machine} section {g.section}: {what}: {exc}") from None


def _rows_2020(groups: list[GroupData], p: float, with_dec: bool) -> list[dict]:
    rows = []
    for g in groups:
        r = {
            "machine": g.machine,
            "section": g.section,
            "n_normal": int((g.labels == 0).sum()),
            "n_anomaly": int((g.labels == 1).sum()),
            "auc": _in_group(g, "AUC", M.auc, g.labels, g.scores),
            "pauc_mcclish": _in_group(g, "pAUC", M.pauc_mcclish, g.labels, g.scores, p),
        }
        if with_dec:
            r["precision"], r["recall"], r["f1"] = M.precision_recall_f1(g.labels, g.decisions)
        rows.append(r)
    return rows


def _rows_2021(groups: list[GroupData], p: float, with_dec: bool) -> list[dict]:
    rows = []
    for g in groups:
        for dom in ("source", "target"):
            m = g.domain_mask(dom)
            if not m.any():  # a subset without this domain: no row (the official sets have both)
                continue
            y, s = g.labels[m], g.scores[m]
            r = {
                "machine": g.machine,
                "section": g.section,
                "domain": dom,
                "n_normal": int((y == 0).sum()),
                "n_anomaly": int((y == 1).sum()),
                "auc": _in_group(g, f"AUC ({dom})", M.auc, y, s),
                "pauc_mcclish": _in_group(g, f"pAUC ({dom})", M.pauc_mcclish, y, s, p),
            }
            if with_dec:
                r["precision"], r["recall"], r["f1"] = M.precision_recall_f1(y, g.decisions[m])
            rows.append(r)
    return rows


def _rows_2022(groups: list[GroupData], p: float, with_dec: bool) -> list[dict]:
    rows = []
    for g in groups:
        src, tgt = g.domain_mask("source"), g.domain_mask("target")
        r = {
            "machine": g.machine,
            "section": g.section,
            "n_normal_source": int(((g.labels == 0) & src).sum()),
            "n_normal_target": int(((g.labels == 0) & tgt).sum()),
            "n_anomaly_source": int(((g.labels == 1) & src).sum()),
            "n_anomaly_target": int(((g.labels == 1) & tgt).sum()),
            "auc_source_vs_all_anomalies": _in_group(
                g, "AUC (source)", M.auc_source_vs_all_anomalies, g.labels, g.scores, g.domains
            ),
            "auc_target_vs_all_anomalies": _in_group(
                g, "AUC (target)", M.auc_target_vs_all_anomalies, g.labels, g.scores, g.domains
            ),
            "pauc_mcclish": _in_group(g, "pAUC", M.pauc_mcclish, g.labels, g.scores, p),
            "auc_all": _in_group(g, "AUC (all)", M.auc, g.labels, g.scores),
        }
        if with_dec:
            for dom, m in (("source", src), ("target", tgt)):
                pr, rc, f1 = M.precision_recall_f1(g.labels[m], g.decisions[m])
                r[f"precision_{dom}"], r[f"recall_{dom}"], r[f"f1_{dom}"] = pr, rc, f1
        rows.append(r)
    return rows


def _machines_of(rows) -> list[str]:
    out: list[str] = []
    for r in rows:
        if r["machine"] not in out:
            out.append(r["machine"])
    return out


def summarize(rows: Sequence[Mapping[str, Any]], year: int):
    """Aggregate a per-section table into the official score, unofficial aggregates and the
    per-machine summary.

    ``rows`` need only the metric columns of the year's table (see :func:`evaluate_scores`), so
    published per-section numbers can be aggregated directly.

    Returns:
        ``(official_score or None, official_definition, aggregates, machine_rows, machine_columns)``
    """
    year = _check_year(year)
    if not rows:
        raise DataError("nothing to summarise: the per-section table is empty")
    aggregates: dict[str, float] = {}
    machines: list[dict[str, Any]] = []
    has_prf = "f1" in rows[0] or "f1_source" in rows[0]
    if year == 2020:
        mcols = ["machine", "n_sections", "auc_mean", "pauc_mean", "mauc"]
        for m in _machines_of(rows):
            rs = [r for r in rows if r["machine"] == m]
            machines.append(
                {
                    "machine": m,
                    "n_sections": len(rs),
                    "auc_mean": M.arithmetic_mean(r["auc"] for r in rs),
                    "pauc_mean": M.arithmetic_mean(r["pauc_mcclish"] for r in rs),
                    "mauc": M.min_auc(r["auc"] for r in rs),
                }
            )
        aucs = [r["auc"] for r in rows]
        paucs = [r["pauc_mcclish"] for r in rows]
        aggregates["unofficial_mean_auc_over_ids"] = M.arithmetic_mean(aucs)
        aggregates["unofficial_mean_pauc_over_ids"] = M.arithmetic_mean(paucs)
        aggregates["unofficial_mean_of_machine_mean_auc"] = M.arithmetic_mean(x["auc_mean"] for x in machines)
        aggregates["unofficial_hmean_auc_pauc"] = M.harmonic_mean_official(aucs + paucs)
        return (
            None,
            "DCASE 2020 has no single official score: results are the per-machine-type means over IDs",
            aggregates,
            machines,
            mcols,
        )
    if year == 2021:
        mcols = ["machine", "n_sections", "auc_mean", "pauc_mean", "hmean_auc_pauc", "mauc"]
        for m in _machines_of(rows):
            rs = [r for r in rows if r["machine"] == m]
            machines.append(
                {
                    "machine": m,
                    "n_sections": len({r["section"] for r in rs}),
                    "auc_mean": M.arithmetic_mean(r["auc"] for r in rs),
                    "pauc_mean": M.arithmetic_mean(r["pauc_mcclish"] for r in rs),
                    "hmean_auc_pauc": M.harmonic_mean_official([r["auc"] for r in rs] + [r["pauc_mcclish"] for r in rs]),
                    "mauc": M.min_auc(r["auc"] for r in rs),
                }
            )
        aucs = [r["auc"] for r in rows]
        paucs = [r["pauc_mcclish"] for r in rows]
        official = M.harmonic_mean_official(aucs + paucs)
        aggregates["arithmetic_mean_auc_pauc"] = M.arithmetic_mean(aucs + paucs)
        aggregates["hmean_auc"] = M.harmonic_mean_official(aucs)
        aggregates["hmean_pauc"] = M.harmonic_mean_official(paucs)
        for dom in ("source", "target"):
            d = [r for r in rows if r.get("domain") == dom]
            if d:
                aggregates[f"hmean_auc_pauc_{dom}"] = M.harmonic_mean_official(
                    [r["auc"] for r in d] + [r["pauc_mcclish"] for r in d]
                )
        if has_prf:
            aggregates["hmean_f1"] = M.harmonic_mean_official(r["f1"] for r in rows)
        return (
            official,
            "harmonic mean (floored at machine epsilon) of all AUC and pAUC values over machine types, "
            "sections and domains",
            aggregates,
            machines,
            mcols,
        )
    # 2022-2026
    mcols = [
        "machine",
        "n_sections",
        "auc_source_mean",
        "auc_target_mean",
        "pauc_mean",
        "hmean_auc_s_auc_t_pauc",
        "mauc",
    ]
    for m in _machines_of(rows):
        rs = [r for r in rows if r["machine"] == m]
        s_ = [r["auc_source_vs_all_anomalies"] for r in rs]
        t_ = [r["auc_target_vs_all_anomalies"] for r in rs]
        p_ = [r["pauc_mcclish"] for r in rs]
        machines.append(
            {
                "machine": m,
                "n_sections": len(rs),
                "auc_source_mean": M.arithmetic_mean(s_),
                "auc_target_mean": M.arithmetic_mean(t_),
                "pauc_mean": M.arithmetic_mean(p_),
                "hmean_auc_s_auc_t_pauc": M.harmonic_mean_official(s_ + t_ + p_),
                "mauc": M.min_auc(s_ + t_),
            }
        )
    s_all = [r["auc_source_vs_all_anomalies"] for r in rows]
    t_all = [r["auc_target_vs_all_anomalies"] for r in rows]
    p_all = [r["pauc_mcclish"] for r in rows]
    official = M.harmonic_mean_official(s_all + t_all + p_all)
    aggregates["arithmetic_mean_auc_s_auc_t_pauc"] = M.arithmetic_mean(s_all + t_all + p_all)
    aggregates["hmean_auc_source"] = M.harmonic_mean_official(s_all)
    aggregates["hmean_auc_target"] = M.harmonic_mean_official(t_all)
    aggregates["hmean_pauc"] = M.harmonic_mean_official(p_all)
    if all("auc_all" in r for r in rows):
        aggregates["hmean_auc_all_unofficial"] = M.harmonic_mean_official(r["auc_all"] for r in rows)
    if has_prf:
        aggregates["hmean_f1_source"] = M.harmonic_mean_official(r["f1_source"] for r in rows)
        aggregates["hmean_f1_target"] = M.harmonic_mean_official(r["f1_target"] for r in rows)
    return (
        official,
        f"harmonic mean (floored at machine epsilon) of all {3 * len(rows)} values AUC(source), "
        "AUC(target) and pAUC over machine types and sections",
        aggregates,
        machines,
        mcols,
    )


def evaluate_scores(
    clips: Sequence[Clip],
    scores,
    year: int,
    decisions=None,
    thresholds: Optional[Mapping[tuple[str, str], float]] = None,
    max_fpr: float = M.MAX_FPR,
) -> Result:
    """Apply the ``year``'s official protocol to labelled clips and their scores.

    Args:
        clips: test clips with ``label`` (and ``domain`` for 2021-2026) filled in; pairing with
            ``scores`` is by position *in this call* (the caller holds both); names must be
            unique per machine type.
        scores: one anomaly score per clip (higher = more anomalous), finite.
        year: 2020-2026.
        decisions: optional 0/1 decisions per clip (1 = anomaly) -> precision/recall/F1.
        thresholds: optional ``{(machine, section): threshold}``, drawn on the score plots.
        max_fpr: p of pAUC (0.1 officially).

    Raises:
        DataError: a clip without label/domain, a duplicate name, mismatched lengths, non-finite
            scores, or a group where a metric is undefined (e.g. no anomalies) -- naming the group.
    """
    year = _check_year(year)
    clips = list(clips)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size != len(clips):
        raise M.MetricInputError(f"{s.size} scores for {len(clips)} clips")
    if not np.isfinite(s).all():
        bad = [clips[i].name for i in np.flatnonzero(~np.isfinite(s))[:3]]
        raise M.MetricInputError(f"non-finite anomaly scores for {bad} (fix the scorer)")
    dec = None
    if decisions is not None:
        dec = np.asarray(decisions).ravel()
        if dec.size != len(clips):
            raise M.MetricInputError(f"{dec.size} decisions for {len(clips)} clips")
        dec = M._as_labels(dec, "decisions")
    if not clips:
        raise DataError("no clips to evaluate")
    groups = _group(clips, s, dec, year)
    for g in groups:
        if thresholds and (g.machine, g.section) in thresholds:
            g.threshold = float(thresholds[(g.machine, g.section)])
    build = {2020: _rows_2020, 2021: _rows_2021}.get(year, _rows_2022)
    rows = build(groups, max_fpr, dec is not None)
    official, definition, aggregates, machines, mcols = summarize(rows, year)
    return Result(
        year=year,
        protocol=protocol_name(year),
        rows=rows,
        columns=list(rows[0].keys()),
        official_score=official,
        official_definition=definition,
        aggregates=aggregates,
        machines=machines,
        machine_columns=mcols,
        groups=groups,
        max_fpr=max_fpr,
    )
