"""``auscult pretrain FOLDER``: CLSIA instance-discrimination pre-training on unlabelled audio.

Heavy imports (torch) happen inside the command so ``auscult --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def pretrain(
    folder: Path = typer.Argument(..., help="Folder of unlabelled audio (.wav/.flac, searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Weights file to write (e.g. runs/pretrain/resnet50.pt)."),
    net: str = typer.Option("resnet50", help="Encoder from `auscult list` (resnet50, mobilefacenet, mobilenetv2, ...)."),
    epochs: int = typer.Option(100, help="Passes over the folder."),
    batch_size: int = typer.Option(32, help="Clips per batch."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    duration: float = typer.Option(10.0, help="Seconds per clip (shorter files are tiled, longer cropped)."),
    n_mels: int = typer.Option(128, help="Mel bands of the log-mel input."),
    queue_size: int = typer.Option(4096, help="MoCo queue length (negative keys)."),
    temperature: float = typer.Option(0.07, help="InfoNCE temperature."),
    momentum: float = typer.Option(0.99, help="Key-encoder momentum."),
    activation: Optional[str] = typer.Option(None, help="Activation for nets that take one (e.g. relu for mobilefacenet on CPU)."),
    cache: Optional[Path] = typer.Option(None, help="Waveform cache folder (decode each file once)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N, mps."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (default: all this process may use; 1 is "
                                                     "often faster on a busy machine)."),
    resume: bool = typer.Option(False, help="Continue a killed run from <out stem>_run/checkpoints/last.pt."),
) -> None:
    """Pre-train an encoder by instance discrimination (MoCo on CLSIA views) on a folder of audio."""
    from ...engine.runtime import setup_runtime
    from .pretrain import pretrain as run_pretrain

    setup_runtime(device, num_threads=threads)
    kwargs = {"activation": activation} if activation else {}
    path = run_pretrain(folder, out, net=net, net_kwargs=kwargs, features={"n_mels": n_mels}, duration=duration,
                        epochs=epochs, batch_size=batch_size, lr=lr, queue_size=queue_size,
                        temperature=temperature, momentum=momentum, cache_dir=cache, device=device, seed=seed,
                        resume=resume)
    typer.echo(f"wrote {path}  (fine-tune with clsia: {{mode: finetune, pretrained: {path}}})")


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
