"""``auscult demo``: the five-minute tour on a synthetic dataset (generate, train, score, evaluate)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import ConfigError
from .run import evaluate, score, train

__all__ = ["demo"]


def demo(out: Union[str, Path] = "runs/demo", seed: int = 0, epochs: int = 30, workers: int = 2,
         overwrite: bool = True, preset: str = "demo", console=None, scale: float = 1.0,
         machines: Optional[Sequence[str]] = None, cache_dir: Union[str, Path, None] = None):
    """The five-minute tour: generate a small synthetic dataset (``auscult.data.synth``), train the
    autoencoder baseline, score, evaluate and write the HTML report. Returns ``(run_dir, result)``.

    ``scale`` and ``machines`` shrink the generated dataset (tests)."""
    import shutil

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..data.synth import PRESETS, generate_dataset
    from ..eval.report import print_result

    console = console or Console(stderr=True)
    out = Path(out)
    data_dir, run_dir = out / "data", out / "run"
    if out.exists() and overwrite:
        for p in (data_dir, run_dir):
            shutil.rmtree(p, ignore_errors=True)
    elif run_dir.exists():
        raise ConfigError(f"{out}: an earlier demo is here; pass --overwrite or another --out")
    t0 = time.perf_counter()
    p = PRESETS[preset]
    mlist = list(machines) if machines else list(p.machines)
    console.print(f"[bold]1/3[/bold] generating the '{preset}' synthetic dataset: {', '.join(mlist)} "
                  f"({p.duration:g} s clips) -> {data_dir}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("rendering clips", total=None)
        generate_dataset(preset, data_dir, seed=seed, workers=workers, overwrite=True, probe=False, scale=scale,
                         machines=mlist, progress=lambda d, n: bar.update(task, completed=d, total=n))
    console.print(f"    done in {time.perf_counter() - t0:.0f} s")
    console.print(f"[bold]2/3[/bold] training the autoencoder baseline (one model per machine, {epochs} epochs)")
    t1 = time.perf_counter()

    def prog(msg: str, done: int, total: int) -> None:
        console.print(f"    [dim][{done}/{total}][/dim] {msg}")

    rd = train("synthetic/autoencoder", data_dir, run_dir, overrides=[f"train.epochs={int(epochs)}", f"seed={int(seed)}"],
               device="auto", quiet=False, progress=prog, cache_dir=cache_dir)
    console.print(f"    done in {time.perf_counter() - t1:.0f} s")
    console.print("[bold]3/3[/bold] scoring the test clips, writing the submission files and the report")
    score(rd, data_dir, progress=prog, cache_dir=cache_dir)
    result = evaluate(rd, title="auscult demo · autoencoder baseline on synthetic machines")
    console.print()
    print_result(result, console, sections=False)
    console.print(f"\nreport:      {Path(rd) / 'report.html'}")
    console.print(f"submission:  {Path(rd) / 'submission'}")
    console.print(f"total time:  {time.perf_counter() - t0:.0f} s")
    return rd, result
