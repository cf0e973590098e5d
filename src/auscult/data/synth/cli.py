"""``auscult synth``: generate a synthetic DCASE-layout dataset, or render preview spectrograms."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the dataset (or previews) into."),
    preset: str = typer.Option("small", "--preset", help="demo, small, dcase2020, dcase2022, dcase2023 or dcase2026 (stereo)."),
    seed: int = typer.Option(0, "--seed", help="The only source of randomness."),
    machines: Optional[str] = typer.Option(None, "--machines", help="Comma-separated machine types."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply every clip count."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Clip length in seconds."),
    sample_rate: int = typer.Option(16000, "--sample-rate"),
    subtype: str = typer.Option("PCM_16", "--subtype", help="PCM_16, PCM_24, PCM_32 or FLOAT."),
    severity: str = typer.Option("0.1,1.0", "--severity", help="Severity range lo,hi in [0, 1]."),
    eval_names: bool = typer.Option(False, "--eval-names", help="Anonymised eval-style test names."),
    background: bool = typer.Option(True, "--background/--no-background"),
    workers: int = typer.Option(0, "--workers", help="Processes (0: all CPU cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in --out."),
    preview: bool = typer.Option(False, "--preview", help="Render spectrogram PNGs instead of a dataset."),
    from_config: Optional[Path] = typer.Option(
        None, "--from-config", help="Regenerate the dataset described by a synth_config.json."),
) -> None:
    """Generate a synthetic machine-sound dataset in a DCASE layout (or --preview spectrograms)."""
    import os
    import time

    from ...errors import ConfigError

    mach = [m.strip() for m in machines.split(",") if m.strip()] if machines else None
    if preview:
        from .preview import render_previews

        paths = render_previews(out, machines=mach, seed=seed, sample_rate=sample_rate,
                                duration=duration or 4.0)
        for p in paths:
            typer.echo(str(p))
        return
    try:
        lo, hi = (float(v) for v in severity.split(","))
    except ValueError:
        raise ConfigError(f"--severity must be 'lo,hi' (e.g. 0.1,1.0), got {severity!r}") from None
    from .writer import generate_dataset, regenerate

    n_workers = workers or (os.cpu_count() or 1)
    t0 = time.perf_counter()
    if from_config is not None:
        root = regenerate(from_config, out, workers=n_workers, overwrite=overwrite)
        typer.echo(f"wrote {root} in {time.perf_counter() - t0:.1f} s (card: {root / 'README.md'})")
        return
    root = generate_dataset(preset, out, seed=seed, machines=mach, scale=scale, duration=duration,
                            sample_rate=sample_rate, subtype=subtype, severity_range=(lo, hi),
                            eval_names=eval_names, background=background, workers=n_workers,
                            overwrite=overwrite)
    typer.echo(f"wrote {root} in {time.perf_counter() - t0:.1f} s (card: {root / 'README.md'})")


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
