"""``auscult evaluate``: score a submission folder against ground truth with the official protocol.

Heavy imports (numpy, sklearn, matplotlib) happen inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError


def resolve_run_dir(run_dir: Path, ground_truth: Optional[Path] = None) -> tuple[Path, Path, int]:
    """``auscult evaluate RUN``: map a scored run directory to ``(scores_dir, ground_truth_dir, year)``.

    The submission is the run's ``submission/``; the ground truth is ``ground_truth`` when given,
    else the files the run wrote from the labels in the dev clip names (see :mod:`auscult.pipeline`).
    """
    from ..pipeline import resolve_run

    return resolve_run(run_dir, ground_truth)


def _print_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    from .report import _fmt, _label

    console = Console()
    t = Table(title=f"per section ({result.protocol}; counts, precision and recall in --out tables)")
    cols = [c for c in result.columns if not c.startswith(("n_", "precision", "recall"))]
    for c in cols:
        t.add_column(_label(c), justify="left" if c in ("machine", "section", "domain") else "right")
    for r in result.rows:
        t.add_row(*[_fmt(r.get(c, "")) for c in cols])
    console.print(t)
    m = Table(title="per machine")
    for c in result.machine_columns:
        m.add_column(_label(c), justify="left" if c == "machine" else "right")
    for r in result.machines:
        m.add_row(*[_fmt(r.get(c, "")) for c in result.machine_columns])
    console.print(m)
    for k, v in result.aggregates.items():
        console.print(f"{k}: {v:.4f}  [dim](unofficial)[/dim]")
    if result.official_score is not None:
        console.print(f"[bold]official score: {result.official_score:.4f}[/bold]  [dim]{result.official_definition}[/dim]")
    else:
        console.print(f"[bold]official score: none[/bold]  [dim]{result.official_definition}[/dim]")


def evaluate(
    run: Optional[Path] = typer.Argument(
        None, help="A scored run directory: evaluates its submission/ and writes report/ and report.html in it."
    ),
    scores: Optional[Path] = typer.Option(None, "--scores", help="Submission folder with anomaly_score_*.csv (and decision_result_*.csv)."),
    ground_truth: Optional[Path] = typer.Option(
        None, "--ground-truth", help="Folder holding ground_truth_data/ (and ground_truth_domain/), or eval_data_list.csv for 2020."
    ),
    year: Optional[int] = typer.Option(None, "--year", help="DCASE year 2020-2026 (guessed from the ground-truth layout if omitted)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML report here."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the tables (CSV + Markdown) and result.json into this folder."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON instead of tables."),
) -> None:
    """Print the per-section table and the official score of a submission folder."""
    import json

    from ..data.groundtruth import detect_year
    from .submission import evaluate_submission

    if ground_truth is not None and not ground_truth.exists():  # before any guessing from its layout
        raise ConfigError(f"{ground_truth}: ground-truth folder not found (pass the folder holding "
                          f"ground_truth_data/, or eval_data_list.csv for 2020)")
    if run is not None:
        if scores is not None:
            raise ConfigError("give either a RUN directory or --scores DIR, not both")
        from ..pipeline import evaluate as evaluate_run

        resolve_run_dir(run, ground_truth)  # clear error before any work
        result = evaluate_run(run, ground_truth, year)
        if json_out:
            typer.echo(json.dumps(result.to_dict(), indent=2))
        else:
            _print_result(result)
        typer.secho(f"report -> {Path(run) / 'report.html'}; tables -> {Path(run) / 'report'}", err=True)
        if out is not None:
            from .report import write_tables

            write_tables(result, out)
            (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        if report is not None:
            from .report import run_provenance, write_report

            write_report(result, report, provenance=run_provenance(run))
        return
    if scores is None or ground_truth is None:
        raise ConfigError("give both --scores DIR and --ground-truth DIR")
    if year is None:
        year = detect_year(ground_truth)
        if year is None:
            raise ConfigError(f"{ground_truth}: cannot tell the year from the ground-truth layout; pass --year")
        typer.secho(f"year not given: using the {year if year < 2022 else '2022-2026'} protocol (from file names)", err=True)
    result = evaluate_submission(scores, ground_truth, year)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_result(result)
    if out is not None:
        from .report import write_tables

        write_tables(result, out)
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        typer.secho(f"tables -> {out}", err=True)
    if report is not None:
        from .report import write_report

        write_report(result, report, provenance={"scores": str(scores.resolve()),
                                                 "ground_truth": f"{ground_truth.resolve()} (protocol {year})"})
        typer.secho(f"report -> {report}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``auscult evaluate`` to the root app."""
    app.command("evaluate")(evaluate)
