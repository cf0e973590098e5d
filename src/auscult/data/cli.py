"""``auscult data ...`` commands: inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)


def _fmt(v) -> str:
    return "-" if v is None else str(v)


@data_app.command("scan")
def scan(
    root: Path = typer.Argument(..., help="Dataset folder (DCASE dev/eval tree, own-data folder) or a .csv manifest."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of tables."),
    year: Optional[int] = typer.Option(None, "--year", help="DCASE year (2020-2026), when folder names, machine types and channel counts do not say it."),
    ground_truth: Optional[Path] = typer.Option(
        None, "--ground-truth", help="Folder with ground_truth_data/ (official evaluator layout) to label eval clips."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when any file could not be parsed."),
) -> None:
    """Count clips per machine / section / domain / split / label / year / channels and list every
    unparsed file. Exits with code 1 when a DCASE 2026 tree holds files that are not two-channel."""
    from ..errors import DataError
    from .index import DatasetIndex
    from .naming import AUDIO_EXTENSIONS

    index = DatasetIndex.scan(root, year=year, channel_errors="report")
    if not index.clips and not index.unparsed:
        # nothing to count: a wrong folder, not an empty table with exit code 0
        raise DataError(f"{root}: no audio files ({'/'.join(sorted(AUDIO_EXTENSIONS))}) found"
                        + (f" ({index.other_files} other file(s) skipped)" if index.other_files else "")
                        + "; pass the dataset folder that holds <machine>/<split>/ subfolders, or a .csv manifest")
    if ground_truth is not None:
        index = index.join_ground_truth(ground_truth)
    if json_out:
        typer.echo(index.to_json(indent=2))
    else:
        _print_tables(index)
    if not index.clips:  # audio files, but none understood: say so and fail
        typer.echo(f"none of the {len(index.unparsed)} audio file(s) under {root} could be parsed "
                   f"(reasons above); nothing to use", err=True)
        raise typer.Exit(1)
    if index.errors or (strict and index.unparsed):
        raise typer.Exit(1)


def _print_tables(index) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    t = Table(title=f"{index.root}: {len(index.clips)} clips, {len(index.machines())} machine types")
    for col in ("machine", "section", "domain", "split", "label", "year", "channels", "clips"):
        t.add_column(col, justify="right" if col in ("channels", "clips") else "left")
    for r in index.counts():
        t.add_row(r["machine"], r["section"], _fmt(r["domain"]), r["split"], _fmt(r["label"]),
                  _fmt(r["year"]), _fmt(r["channels"]), str(r["count"]))
    console.print(t)
    n2026 = sum(c.year == 2026 for c in index.clips)
    if n2026:
        console.print(f"{n2026} DCASE 2026 clip(s): two channels, left = near mic, right = far mic. The default "
                      f"channel policy (audio.channel: auto) reads the near mic, as the organisers' baseline "
                      f"does; set audio.channel to far, both or mean to change it.")
    if index.errors:
        e = Table(title=f"{len(index.errors)} error(s): files a DCASE 2026 tree cannot use")
        e.add_column("path", overflow="fold")
        e.add_column("reason", overflow="fold")
        for item in index.errors:
            e.add_row(str(item.path), item.reason)
        console.print(e)
    others = [u for u in index.unparsed if not u.fatal]
    if others:
        u = Table(title=f"{len(others)} file(s) not parsed")
        u.add_column("path", overflow="fold")
        u.add_column("reason", overflow="fold")
        for item in others:
            u.add_row(str(item.path), item.reason)
        console.print(u)
    elif not index.errors:
        console.print("every audio file was parsed")
    if index.other_files:
        console.print(f"{index.other_files} non-audio file(s) skipped (CSV, README, ...)")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
