"""``auscult train / score / run / evaluate / list / demo``: a thin layer over :mod:`auscult.pipeline`.

Heavy imports (torch, numpy, the pipeline) happen inside the commands so ``auscult --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ConfigError

_SET_HELP = "Override a recipe value, YAML-typed: --set train.epochs=5 (repeatable)."


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _progress(console):
    def cb(msg: str, done: int, total: int) -> None:
        console.print(f"[dim][{done}/{total}][/dim] {msg}")

    return cb


def _headline(console, result) -> None:
    from ..eval.report import print_result

    print_result(result, console, sections=False)


def train_cmd(
    recipe: str = typer.Argument(..., help="Recipe name (<dataset>/<method>, see 'auscult list') or a .yaml path."),
    data: Path = typer.Option(..., "--data", help="Dataset root (DCASE layout, own folders, or a manifest CSV)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=_SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<recipe>-<time>)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N] | mps"),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run in --out from its checkpoints."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train a recipe's models (one per model_per group) on the training normals under --data."""
    from .run import train

    console = _console()
    rd = train(recipe, data, out, overrides=set_ or [], device=device, resume=resume, quiet=quiet,
               progress=_progress(console))
    console.print(f"trained -> {rd}")
    typer.echo(str(rd))


def score_cmd(
    target: Path = typer.Argument(..., help="A run directory, or a model bundle file ending in .auscult."),
    files: Optional[List[Path]] = typer.Argument(None, help="With a .auscult bundle: the audio files to score."),
    data: Optional[Path] = typer.Option(None, "--data", help="Run form: dataset root with the test clips (default: the run's data)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N] | mps"),
    machine: Optional[str] = typer.Option(None, "--machine", help="Bundle form: the machine type, when the bundle holds several."),
    json_out: bool = typer.Option(False, "--json", help="Bundle form: print JSON."),
    csv_out: bool = typer.Option(False, "--csv", help="Bundle form: print CSV."),
) -> None:
    """Score test clips with a trained run (official CSVs + decisions), or files with a model bundle."""
    if target.suffix == ".auscult":
        if json_out and csv_out:
            raise ConfigError("choose one of --json and --csv")
        if not files:
            raise ConfigError(f"{target}: give the audio files to score after the bundle")
        try:
            from ..monitor.cli import score_files
        except ImportError as exc:
            raise ConfigError(f"scoring with a model bundle needs auscult.monitor.cli.score_files, which is not "
                              f"available in this installation ({exc})") from None
        raise typer.Exit(score_files(target, list(files), machine=machine,
                                     output="json" if json_out else "csv" if csv_out else "table"))
    if files:
        raise ConfigError(f"{target}: extra arguments {[str(f) for f in files]}; a run directory is scored with "
                          f"--data ROOT (file lists go with a .auscult bundle)")
    from .run import score

    console = _console()
    sub = score(target, data, device=device, progress=_progress(console))
    console.print(f"submission files -> {sub}")
    typer.echo(str(sub))


def run_cmd(
    recipe: str = typer.Argument(..., help="Recipe name (<dataset>/<method>) or a .yaml path."),
    data: Path = typer.Option(..., "--data", help="Dataset root."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=_SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<recipe>-<time>)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N] | mps"),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run in --out."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Official ground-truth folder (evaluation data)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train, score and evaluate: the run directory ends with the submission files and report.html."""
    from .run import run

    console = _console()
    rd, result = run(recipe, data, out, overrides=set_ or [], device=device, resume=resume, quiet=quiet,
                     ground_truth=ground_truth, progress=_progress(console))
    _headline(console, result)
    if result is None:
        console.print("no labels for the test clips: scored only (pass --ground-truth DIR to evaluate)")
    else:
        console.print(f"report -> {Path(rd) / 'report.html'}")
    typer.echo(str(rd))


#: the registries a user composes recipes from: (title, module, attribute)
REGISTRIES = (("methods", "auscult.methods", "METHODS"), ("nets", "auscult.nets", "NETS"),
              ("losses", "auscult.losses", "LOSSES"), ("backends", "auscult.backends", "BACKENDS"),
              ("frontends", "auscult.features", "FRONTENDS"), ("augmentations", "auscult.augment", "AUGMENTATIONS"))


def registry_listing() -> dict[str, list[dict[str, str]]]:
    """Every registry :data:`REGISTRIES` names plus the recipes, each entry with a one-line description
    (methods also list their capabilities)."""
    import importlib

    from .recipe import list_recipes

    sections: dict[str, list[dict[str, str]]] = {}
    for title, module, attr in REGISTRIES:
        reg = getattr(importlib.import_module(module), attr)
        rows = []
        for e in reg.entries():
            row = {"name": e.name, "description": e.description}
            if title == "methods":
                row["capabilities"] = ", ".join(sorted(getattr(e.factory, "capabilities", ()))) or "-"
            rows.append(row)
        sections[title] = rows
    sections["recipes"] = [{"name": r["name"], "description": r["description"]} for r in list_recipes()]
    return sections


def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List methods, nets, losses, back-ends, front-ends, augmentations and recipes (walks the registries)."""
    import json

    sections = registry_listing()
    if json_out:
        typer.echo(json.dumps(sections, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for title, rows in sections.items():
        t = Table(title=f"{title} ({len(rows)})", title_justify="left")
        t.add_column("name")
        t.add_column("description")
        if title == "methods":
            t.add_column("capabilities")
        for r in rows:
            t.add_row(r["name"], r["description"] or "", *([r["capabilities"]] if title == "methods" else []))
        console.print(t)


def evaluate_cmd(
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
    """Print the per-section table and the official score of a scored run or a submission folder."""
    import json

    from ..data.groundtruth import detect_year
    from ..eval.report import print_result, run_provenance, write_report, write_tables
    from ..eval.submission import evaluate_submission

    if ground_truth is not None and not ground_truth.exists():  # before any guessing from its layout
        raise ConfigError(f"{ground_truth}: ground-truth folder not found (pass the folder holding "
                          f"ground_truth_data/, or eval_data_list.csv for 2020)")
    if run is not None:
        if scores is not None:
            raise ConfigError("give either a RUN directory or --scores DIR, not both")
        from .run import evaluate as evaluate_run, resolve_run

        resolve_run(run, ground_truth)  # clear error before any work
        result = evaluate_run(run, ground_truth, year)
        if json_out:
            typer.echo(json.dumps(result.to_dict(), indent=2))
        else:
            print_result(result)
        typer.secho(f"report -> {Path(run) / 'report.html'}; tables -> {Path(run) / 'report'}", err=True)
    else:
        if scores is None or ground_truth is None:
            raise ConfigError("give both --scores DIR and --ground-truth DIR")
        if year is None:
            year = detect_year(ground_truth)
            if year is None:
                raise ConfigError(f"{ground_truth}: cannot tell the year from the ground-truth layout; pass --year")
            typer.secho(f"year not given: using the {year if year < 2022 else '2022-2026'} protocol (from file names)",
                        err=True)
        result = evaluate_submission(scores, ground_truth, year)
        if json_out:
            typer.echo(json.dumps(result.to_dict(), indent=2))
        else:
            print_result(result)
    if out is not None:
        write_tables(result, out)
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        typer.secho(f"tables -> {out}", err=True)
    if report is not None:
        provenance = (run_provenance(run) if run is not None else
                      {"scores": str(scores.resolve()), "ground_truth": f"{ground_truth.resolve()} (protocol {year})"})
        write_report(result, report, provenance=provenance)
        typer.secho(f"report -> {report}", err=True)


def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the dataset and the run go."),
    seed: int = typer.Option(0, "--seed"),
    epochs: int = typer.Option(30, "--epochs", help="Autoencoder epochs."),
    workers: int = typer.Option(2, "--workers", help="Processes for generating the dataset."),
    overwrite: bool = typer.Option(True, "--overwrite/--keep", help="Replace an earlier demo in --out."),
) -> None:
    """Generate a small synthetic dataset, train the autoencoder baseline, score, evaluate, write the report."""
    from .demo import demo as run_demo

    run_demo(out, seed=seed, epochs=epochs, workers=workers, overwrite=overwrite)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``score``, ``run``, ``evaluate``, ``list`` and ``demo`` to the root app."""
    app.command("train")(train_cmd)
    app.command("score")(score_cmd)
    app.command("run")(run_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("list")(list_cmd)
    app.command("demo")(demo_cmd)
