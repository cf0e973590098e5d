"""Reports people would rather look at: one self-contained HTML file, PNG figures, CSV and Markdown.

* :func:`write_report` -- one HTML file with everything embedded (PNG as base64): its provenance
  (auscult version, git commit, date; for a run also the resolved recipe, seed and data root, see
  :func:`run_provenance`), headline official score and unofficial aggregates, per-machine
  summary, per-section table, ROC curves with the pAUC region (FPR <= p) shaded, and
  normal-vs-anomalous score distributions per domain with the decision threshold.
* :func:`write_tables` -- the same tables as CSV and Markdown files.
* :func:`roc_figure`, :func:`distribution_figure`, :func:`machine_figure` -- the figures as PNG bytes.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot global state, no display).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .protocols import GroupData, Result

__all__ = [
    "print_result",
    "write_report",
    "write_tables",
    "run_provenance",
    "markdown_table",
    "roc_figure",
    "distribution_figure",
    "machine_figure",
    "group_threshold",
]

# colour-blind-safe pair (Okabe-Ito) plus a neutral
C_NORMAL = "#0072B2"
C_ANOMALY = "#D55E00"
C_SOURCE = "#0072B2"
C_TARGET = "#E69F00"
C_ALL = "#444444"
C_PAUC = "#009E73"

_LABELS = {
    "auc": "AUC",
    "pauc_mcclish": "pAUC",
    "auc_source_vs_all_anomalies": "AUC (source)",
    "auc_target_vs_all_anomalies": "AUC (target)",
    "auc_all": "AUC (all, unofficial)",
    "n_normal": "# normal",
    "n_anomaly": "# anomaly",
    "n_normal_source": "# normal (src)",
    "n_normal_target": "# normal (tgt)",
    "n_anomaly_source": "# anom. (src)",
    "n_anomaly_target": "# anom. (tgt)",
    "auc_mean": "AUC mean",
    "pauc_mean": "pAUC mean",
    "auc_source_mean": "AUC (source) mean",
    "auc_target_mean": "AUC (target) mean",
    "hmean_auc_s_auc_t_pauc": "h-mean",
    "hmean_auc_pauc": "h-mean",
    "mauc": "mAUC",
    "n_sections": "# sections",
    "precision_source": "precision (src)",
    "recall_source": "recall (src)",
    "f1_source": "F1 (src)",
    "precision_target": "precision (tgt)",
    "recall_target": "recall (tgt)",
    "f1_target": "F1 (tgt)",
    "f1": "F1",
}


def _label(col: str) -> str:
    return _LABELS.get(col, col.replace("_", " "))


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else f"{float(v):.4f}"
    return str(v)


def print_result(result: Optional[Result], console: Any = None, sections: bool = True) -> None:
    """The one console table of a result (``auscult evaluate``, ``run``, ``demo``): the per-section
    table (``sections=True``; counts, precision and recall stay in the written tables), the
    per-machine table, the unofficial aggregates and the official score. ``None`` prints nothing."""
    if result is None:
        return
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if sections:
        t = Table(title=f"per section ({result.protocol}; counts, precision and recall in --out tables)",
                  title_justify="left")
        cols = [c for c in result.columns if not c.startswith(("n_", "precision", "recall"))]
        for c in cols:
            t.add_column(_label(c), justify="left" if c in ("machine", "section", "domain") else "right")
        for r in result.rows:
            t.add_row(*[_fmt(r.get(c, "")) for c in cols])
        console.print(t)
    m = Table(title="per machine", title_justify="left")
    for c in result.machine_columns:
        m.add_column(_label(c), justify="left" if c == "machine" else "right")
    for r in result.machines:
        m.add_row(*[_fmt(r.get(c, "")) for c in result.machine_columns])
    console.print(m)
    for k, v in result.aggregates.items():
        console.print(f"{k}: {v:.4f}  [dim](unofficial)[/dim]")
    if result.official_score is not None:
        console.print(f"[bold]official score: {result.official_score:.4f}[/bold]  [dim]({result.official_definition})[/dim]")
    else:
        console.print(f"[bold]official score: none[/bold]  [dim]({result.official_definition})[/dim]")


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table (floats to 4 decimals)."""
    head = "| " + " | ".join(_label(c) for c in columns) + " |"
    sep = "|" + "|".join("---" if c in ("machine", "section", "domain") else "---:" for c in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def _summary_rows(result: Result) -> list[dict]:
    rows = []
    if result.official_score is not None:
        rows.append({"name": "official_score", "value": result.official_score, "definition": result.official_definition})
    else:
        rows.append({"name": "official_score", "value": "", "definition": result.official_definition})
    for k, v in result.aggregates.items():
        rows.append({"name": k, "value": v, "definition": "unofficial aggregate"})
    return rows


def _write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])


def write_tables(result: Result, out_dir: str | Path) -> list[Path]:
    """Write ``sections.{csv,md}``, ``machines.{csv,md}`` and ``summary.{csv,md}`` into ``out_dir``.

    CSV values are full precision; Markdown rounds to 4 decimals.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "sections": (result.rows, result.columns),
        "machines": (result.machines, result.machine_columns),
        "summary": (_summary_rows(result), ["name", "value", "definition"]),
    }
    written = []
    for name, (rows, cols) in tables.items():
        p = out / f"{name}.csv"
        _write_csv(p, rows, cols)
        written.append(p)
        p = out / f"{name}.md"
        p.write_text(markdown_table(rows, cols), encoding="utf-8")
        written.append(p)
    return written


# ----------------------------------------------------------------------------- figures
def _figure(width: float, height: float, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buf.getvalue()


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return int(math.ceil(n / cols)), cols


def _roc(y: np.ndarray, s: np.ndarray):
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr


_CURVE_NOTES = {
    "src": "src = source-domain normals vs all anomalies of the section (AUC source)",
    "tgt": "tgt = target-domain normals vs all anomalies of the section (AUC target)",
    "all": "all = every clip of the section (pAUC is computed on these)",
    "source": "source = source-domain clips only (2021 protocol)",
    "target": "target = target-domain clips only (2021 protocol)",
}


def _roc_sets(result: Result, g: GroupData):
    """(short label, y, s, colour) curves to draw for one group under the year's protocol."""
    y, s = g.labels, g.scores
    out = []
    if result.year == 2020 or all(d is None for d in g.domains):
        out.append(("all", y, s, C_ALL))
        return out
    src, tgt = g.domain_mask("source"), g.domain_mask("target")
    if result.year == 2021:
        for name, m, c in (("source", src, C_SOURCE), ("target", tgt, C_TARGET)):
            out.append((name, y[m], s[m], c))
    else:
        out.append(("src", y[(y == 1) | src], s[(y == 1) | src], C_SOURCE))
        out.append(("tgt", y[(y == 1) | tgt], s[(y == 1) | tgt], C_TARGET))
        out.append(("all", y, s, C_ALL))
    return out


def roc_figure(result: Result, dpi: int = 80) -> bytes:
    """ROC curves, one panel per (machine, section), pAUC region FPR <= p shaded. PNG bytes."""
    from sklearn.metrics import roc_auc_score

    groups = result.groups
    nr, nc = _grid(len(groups))
    fig = _figure(2.9 * nc, 2.9 * nr + 0.5, dpi)
    p = result.max_fpr
    used: list[str] = []
    for i, g in enumerate(groups):
        ax = fig.add_subplot(nr, nc, i + 1)
        ax.axvspan(0, p, color=C_PAUC, alpha=0.15, lw=0)
        ax.plot([0, 1], [0, 1], ls=":", color="#999999", lw=1)
        for name, y, s, colour in _roc_sets(result, g):
            if y.size == 0 or y.min() == y.max():  # domain absent or one class only: no curve
                continue
            fpr, tpr = _roc(y, s)
            a = roc_auc_score(y, s)
            ax.plot(fpr, tpr, color=colour, lw=1.5, label=f"{name} {a:.3f}")
            if name not in used:
                used.append(name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_title(f"{g.machine} · section {g.section}", fontsize=9)
        ax.tick_params(labelsize=7)
        if i % nc == 0:
            ax.set_ylabel("true-positive rate", fontsize=8)
        if i // nc == nr - 1 or i + nc >= len(groups):
            ax.set_xlabel("false-positive rate", fontsize=8)
        ax.legend(fontsize=7, loc="lower right", title="AUC", title_fontsize=7, frameon=True, framealpha=0.85)
    notes = [f"green band = pAUC region (FPR ≤ {p:g})"] + [_CURVE_NOTES[u] for u in used if u in _CURVE_NOTES]
    fig.suptitle(f"ROC curves ({result.protocol})", fontsize=11)
    fig.supxlabel("\n".join(notes), fontsize=7, color="#555555")
    return _png(fig)


def group_threshold(g: GroupData) -> tuple[Optional[float], str]:
    """The decision threshold to draw for a group and where it came from.

    The given threshold if any; otherwise, with decisions that separate the scores cleanly, the
    midpoint between the highest "normal" and the lowest "anomaly" decision; else ``None``.
    """
    if g.threshold is not None:
        return g.threshold, "threshold"
    if g.decisions is not None and 0 < g.decisions.sum() < g.decisions.size:
        hi0 = g.scores[g.decisions == 0].max()
        lo1 = g.scores[g.decisions == 1].min()
        if hi0 < lo1:
            return float((hi0 + lo1) / 2), "boundary of the decisions"
    return None, ""


def distribution_figure(result: Result, dpi: int = 80) -> bytes:
    """Score histograms of normal vs anomalous clips, one panel per (machine, section, domain),
    with the decision threshold when known. PNG bytes."""
    panels: list[tuple[GroupData, Optional[str]]] = []
    for g in result.groups:
        doms = sorted({d for d in g.domains if d is not None})
        if not doms:
            panels.append((g, None))
        else:
            panels += [(g, d) for d in doms]
    nr, nc = _grid(len(panels), max_cols=4)
    fig = _figure(3.2 * nc, 2.3 * nr, dpi)
    for i, (g, dom) in enumerate(panels):
        ax = fig.add_subplot(nr, nc, i + 1)
        m = g.domain_mask(dom)
        s_all = g.scores  # shared bins across domains of a section
        bins = np.histogram_bin_edges(s_all, bins=min(30, max(8, int(np.sqrt(s_all.size)))))
        for lab, name, colour in ((0, "normal", C_NORMAL), (1, "anomaly", C_ANOMALY)):
            sel = m & (g.labels == lab)
            if sel.any():
                ax.hist(g.scores[sel], bins=bins, color=colour, alpha=0.55, label=f"{name} ({int(sel.sum())})")
        thr, how = group_threshold(g)
        if thr is not None:
            ax.axvline(thr, color="black", ls="--", lw=1.2, label="threshold" if how == "threshold" else "decision boundary")
        title = f"{g.machine} · {g.section}" + (f" · {dom}" if dom else "")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        if i + nc >= len(panels):
            ax.set_xlabel("anomaly score", fontsize=8)
        if i % nc == 0:
            ax.set_ylabel("clips", fontsize=8)
        ax.legend(fontsize=6, frameon=False)
    per = ", per domain" if any(d for _, d in panels) else ""
    fig.suptitle(f"Anomaly-score distributions: normal vs anomalous{per}", fontsize=11)
    return _png(fig)


def machine_figure(result: Result, dpi: int = 80) -> bytes:
    """Per-machine bar chart of the summary metrics, with the official score as a line. PNG bytes."""
    cols = [c for c in result.machine_columns if c not in ("machine", "n_sections") and not c.startswith("hmean")]
    machines = [m["machine"] for m in result.machines]
    fig = _figure(max(5.0, 0.9 * len(machines) * max(1, len(cols)) / 2 + 2), 3.4, dpi)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(machines))
    w = 0.8 / max(1, len(cols))
    palette = [C_SOURCE, C_TARGET, C_PAUC, "#CC79A7", "#56B4E9", C_ALL]
    for j, c in enumerate(cols):
        vals = [m[c] for m in result.machines]
        ax.bar(x + (j - (len(cols) - 1) / 2) * w, vals, width=w, color=palette[j % len(palette)], label=_label(c))
    ax.axhline(0.5, color="#999999", ls=":", lw=1)
    if result.official_score is not None:
        ax.axhline(result.official_score, color="black", ls="--", lw=1.2, label=f"official score {result.official_score:.4f}")
    ax.set_xticks(x)
    ax.set_xticklabels(machines, fontsize=8, rotation=20 if len(machines) > 5 else 0)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("score", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, ncol=min(4, len(cols) + 1), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    ax.set_title("Per-machine summary", fontsize=10)
    return _png(fig)


# ----------------------------------------------------------------------------- HTML
def _html_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(_label(c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cls = ' class="num"' if isinstance(v, (int, float, np.integer, np.floating)) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}th,td{padding:.25em .6em;border-bottom:1px solid #eee}
th{background:#f5f5f5;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.score{font-size:2em;font-weight:600}.note{color:#666;font-size:.85em}img{max-width:100%}
table.prov th{background:none;font-weight:normal;color:#555}pre{background:#f7f7f7;padding:.5em;font-size:.8em}
"""


_PROVENANCE_ROWS = (  # (key, label), in display order; recipe_resolved is shown below the table
    ("recipe", "recipe"), ("seed", "seed"), ("data_root", "data root"), ("scored_data", "scored data"),
    ("scores", "scores folder"), ("ground_truth", "ground truth"), ("run_directory", "run directory"),
    ("run_created", "run created"), ("trained_with", "trained with"), ("software", "report written with"),
    ("git_commit", "git commit"), ("report_written", "report written"),
)


def run_provenance(run_dir: str | Path) -> dict[str, Any]:
    """What a run folder says about how it was made (its ``config.yaml`` and ``run.json``), for
    :func:`write_report`: recipe name and resolved recipe, seed, data root, creation date, the
    auscult version and git commit it was trained with. Missing facts read "not recorded"."""
    import json

    run_dir = Path(run_dir)
    meta: dict[str, Any] = {}
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    try:
        resolved = (run_dir / "config.yaml").read_text(encoding="utf-8")
    except OSError:
        resolved = ""
    name = None
    if resolved:
        import yaml

        try:
            cfg = yaml.safe_load(resolved) or {}
            name = cfg.get("name") or cfg.get("method")
        except yaml.YAMLError:
            pass
    missing = "not recorded"
    trained = (meta.get("versions") or {}).get("auscult")
    out = {"recipe": name or missing, "recipe_resolved": resolved or missing, "seed": meta.get("seed", missing),
           "data_root": meta.get("data") or missing, "run_directory": str(run_dir),
           "run_created": meta.get("created") or missing,
           "trained_with": f"auscult {trained}" if trained else missing,
           "git_commit": meta.get("git_commit") or missing}
    if meta.get("scored_data") and meta.get("scored_data") != meta.get("data"):
        out["scored_data"] = meta["scored_data"]
    return out


def _provenance_html(provenance: Optional[Mapping[str, Any]]) -> str:
    from ..fileio import git_commit, now_iso, software

    p = {"software": software(), "git_commit": git_commit() or "not available (not a git checkout)",
         "report_written": now_iso()}
    given = dict(provenance or {})
    if "git_commit" in given and given["git_commit"] != p["git_commit"]:  # the run's commit, and this one's
        current = git_commit()
        if current:
            p["software"] += f" (git {current})"
    p.update({k: v for k, v in given.items() if v is not None})
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(p[key]))}</td></tr>"
                   for key, label in _PROVENANCE_ROWS if key in p)
    recipe = p.get("recipe_resolved")
    details = (f"<details><summary>resolved recipe (config.yaml)</summary><pre>{html.escape(str(recipe))}</pre>"
               f"</details>" if recipe else "")
    return f"<h2>Provenance</h2><table class='prov'>{rows}</table>{details}"


def write_report(result: Result, path: str | Path, title: Optional[str] = None, dpi: int = 80,
                 provenance: Optional[Mapping[str, Any]] = None) -> Path:
    """Write one self-contained HTML report (all images embedded) and return its path.

    ``provenance``: facts about what produced the scores (:func:`run_provenance` for a run
    folder, or any of its keys, e.g. ``scores`` and ``ground_truth`` folders); the auscult
    version, git commit and the date are always added."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = title or f"auscult evaluation · {result.protocol}"
    if result.official_score is not None:
        headline = f'<div class="score">{result.official_score:.4f}</div><div class="note">official score: {html.escape(result.official_definition)}</div>'
    else:
        headline = f'<div class="note">{html.escape(result.official_definition)}</div>'
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        headline,
        _provenance_html(provenance),
        "<h2>Aggregates</h2>",
        _html_table(_summary_rows(result), ["name", "value", "definition"]),
        f"<p class='note'>pAUC is the McClish-standardised partial AUC over FPR ≤ {result.max_fpr:g} "
        "(scikit-learn <code>roc_auc_score(max_fpr=p)</code>, chance 0.5), as the official evaluators compute it.</p>",
        "<h2>Per machine</h2>",
        _html_table(result.machines, result.machine_columns),
        _img(machine_figure(result, dpi), "per-machine summary"),
        "<h2>Per section</h2>",
        _html_table(result.rows, result.columns),
        "<h2>ROC curves</h2>",
        _img(roc_figure(result, dpi), "ROC curves"),
        "<h2>Score distributions</h2>",
        _img(distribution_figure(result, dpi), "score distributions"),
        "</body></html>",
    ]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
