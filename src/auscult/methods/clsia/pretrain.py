"""CLSIA pre-training: instance discrimination (MoCo) on any folder of unlabelled audio.

The CLSIA paper pre-trains on AudioSet before fine-tuning DCASE 2022 classifiers; auscult takes
any folder instead (every audio file below it: :func:`auscult.data.naming.find_audio_files`)::

    auscult pretrain /data/unlabelled --out runs/pretrain/resnet50.pt --net resnet50 --epochs 100

    from auscult.methods.clsia import pretrain, load_pretrained
    path = pretrain("/data/unlabelled", "runs/pretrain/mfn.pt", net="mobilefacenet", epochs=5)

Each file is one instance: two CLSIA views of a clip (pre-norm with statistics learned during a
warm-up, log-mixup-exp against a FIFO bank, random resized crop, post-norm) are a positive pair,
every other key in the batch and in the MoCo queue a negative (:func:`~auscult.methods.clsia.model.moco_step`
with one label per file). Training goes through the engine's Trainer: checkpoints live in
``<out stem>_run/checkpoints`` and ``resume=True`` continues a killed run.

The output file holds the encoder's weights (not the projection head), the net's name and
arguments, the front-end settings and the pre-normalisation statistics, as plain tensors and
Python values (``torch.load(..., weights_only=True)`` reads it). Fine-tune with
``clsia: {mode: finetune, pretrained: PATH}``; the fine-tuned net must be the same architecture
(and, for nets whose layer sizes depend on the input, such as MobileFaceNet's global depthwise
conv, the same clip length and front-end).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional

from ...errors import CheckpointError, ConfigError, DataError

log = logging.getLogger("auscult.methods.clsia.pretrain")

FORMAT = "auscult-clsia-pretrain"


def find_audio(folder: str | os.PathLike) -> list[Path]:
    """Every audio file below ``folder`` (:func:`auscult.data.naming.find_audio_files`), sorted; files
    of formats auscult does not read are logged, not silently dropped."""
    from ...data.naming import AUDIO_EXTENSIONS, find_audio_files

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass a folder of audio files to pre-train on")
    files, skipped = find_audio_files(root)
    for p, why in skipped:
        log.warning("%s: left out: %s", p, why)
    if len(files) < 2:
        raise DataError(f"{root}: found {len(files)} audio file(s) ({', '.join(AUDIO_EXTENSIONS)})"
                        + (f" and {len(skipped)} in other formats (convert them to .wav or .flac)" if skipped else "")
                        + "; instance discrimination needs at least 2")
    return files


def pretrain(folder: str | os.PathLike, out: str | os.PathLike, *, net: str = "resnet50",
             net_kwargs: Optional[Mapping[str, Any]] = None, features: Optional[Mapping[str, Any]] = None,
             duration: float = 10.0, sample_rate: int = 16000, epochs: int = 100, batch_size: int = 32,
             optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.99,
             queue_size: int = 4096, temperature: float = 0.07, proj_dim: int = 128, proj_hidden: int = 512,
             augment: Optional[Mapping[str, Any]] = None, prenorm_warmup: int = 50, seed: int = 0,
             device: str = "auto", cache_dir: str | os.PathLike | None = None, resume: bool = False,
             quiet: bool = False) -> Path:
    """Pre-train ``net`` by instance discrimination on the audio below ``folder``; write ``out``.

    Clips are tiled/cropped to ``duration`` seconds at ``sample_rate``. Returns the path written.
    """
    import torch

    from ...audio import AudioConfig
    from ...data.source import AudioSource
    from ...engine.optim import OptimConfig, build_optimizer, build_scheduler
    from ...engine.runtime import resolve_device, seed_everything
    from ...engine.rundir import RunDir
    from ...engine.trainer import Trainer, TrainConfig
    from ...losses.heads import ProjectionMLP
    from ...nets import NETS
    from ...registry import merge_section
    from .. import _neural as nu
    from .model import AUGMENT_DEFAULTS, AnchorNegativeDataset, CLSIAViews, LabelledKeyQueue, MoCo, collate_views, moco_step

    files = find_audio(folder)
    out = Path(out)
    if out.suffix == "":
        raise ConfigError(f"--out {out}: give a file name for the weights, e.g. {out}/encoder.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    NETS.get(net)
    seed_everything(int(seed))
    dev = resolve_device(device)
    audio = AudioSource(AudioConfig(sample_rate=sample_rate, length="tile", duration=float(duration)),
                        cache_dir=cache_dir)
    feats = dict(features or {})
    frontend = nu.build_frontend_from_recipe(feats).to(dev)
    n_mels, frames = frontend.output_shape(audio.n_samples)
    kwargs = dict(net_kwargs or {})
    encoder = nu.build_net(net, kwargs, nu.geometry({"audio": audio.config.to_dict()}, frontend, audio.n_samples))
    dim = int(encoder.output_shape[0])
    model = MoCo(encoder, ProjectionMLP(dim, proj_hidden, proj_dim, n_layers=2), momentum)
    aug = merge_section(AUGMENT_DEFAULTS, augment, "augment")
    lme, rrc = aug["logmixupexp"], aug["rrc"]
    views = CLSIAViews(alpha=float(lme["alpha"]), bank_size=int(lme["bank_size"]), freq_scale=rrc["freq_scale"],
                       time_scale=rrc["time_scale"], canvas_scale=rrc["canvas_scale"],
                       warmup_batches=int(prenorm_warmup)).to(dev)
    queue = LabelledKeyQueue(proj_dim, int(queue_size), float(temperature), seed=int(seed)).to(dev)
    ds = AnchorNegativeDataset(files, list(range(len(files))), audio, seed=int(seed))
    bs = min(int(batch_size), len(files))
    loader = nu.loader_for(ds, bs, shuffle=True, drop_last=len(files) > bs or len(files) % bs == 1,
                           collate_fn=collate_views)
    ocfg = OptimConfig(name=optimizer, lr=lr, weight_decay=weight_decay)
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], ocfg)
    sched = build_scheduler(opt, ocfg, total_steps=max(1, epochs * len(loader)))
    run = RunDir(out.parent / f"{out.stem}_run")
    (run.path / "checkpoints").mkdir(parents=True, exist_ok=True)
    tcfg = TrainConfig(epochs=int(epochs), seed=int(seed), device=str(dev), resume=bool(resume),
                       quiet=True if quiet else None)

    def step_fn(batch, m, state):
        return {"loss": moco_step(getattr(m, "module", m), views, queue, frontend, batch)}

    log.info("pre-training %s on %d files from %s", net, len(files), folder)
    history = Trainer(model, step_fn, loader, opt, sched, tcfg, run_dir=run,
                      extra_state={"views": views, "queue": queue}).fit()
    state = {
        "format": FORMAT, "version": 1, "net": net, "net_kwargs": kwargs,
        "input_shape": [1, int(n_mels), int(frames)], "features": feats,
        "audio": {"sample_rate": int(sample_rate), "duration": float(duration)},
        "prenorm": [float(views.prenorm.mean), float(views.prenorm.var.sqrt())],
        "encoder": {k: v.detach().cpu().clone() for k, v in model.encoder.state_dict().items()},
        "files": len(files), "epochs": int(epochs),
        "final_loss": float(history[-1]["train_loss"]) if history and history[-1].get("train_loss") is not None else None,
    }
    tmp = out.with_name(out.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out)
    return out


def load_pretrained(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :func:`pretrain` (``CheckpointError`` naming the file otherwise)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: pre-trained weights not found; run `auscult pretrain FOLDER --out {p}` first")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CheckpointError(f"{p}: cannot read pre-trained weights ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a CLSIA pre-training file (expected format {FORMAT!r})")
    if int(state.get("version", 0)) > 1:
        raise CheckpointError(f"{p}: written by a newer auscult (format version {state.get('version')}); upgrade")
    return state
