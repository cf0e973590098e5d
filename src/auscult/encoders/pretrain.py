"""Pre-train the CNN clip encoder on simulated machines (a feasibility run on the current simulator).

::

    python -m auscult.encoders.pretrain --out runs/encoder --units-per-type 8 --clips-per-unit 48 --epochs 20

1. **Data.** For every machine type of the simulator, ``units_per_type`` physical units
   (``unit_for(machine, "p<u>", 1000 + seed)``: sections named ``p00``, ``p01``... so no unit of a
   benchmark's section ``"00"`` is ever seen), ``clips_per_unit`` normal clips of ``clip_s``
   seconds each, the domain (operating range and background) drawn per clip, a random gain of
   +-10 dB. Each unit's log-mels are one shard file (``shards/<machine>-<unit>.npz``), written
   atomically and skipped when present: a killed run re-renders only the missing shards.
2. **Objective.** Classify the unit (machine type x unit) with sub-cluster AdaCos
   (:class:`auscult.losses.adacos.SubClusterAdaCos`) on random crops, with statistics exchange
   (:mod:`auscult.augment.exchange`): half of each batch gets the per-frequency temporal statistics
   of another clip and the extra "exchanged" classes -- the net must tell a unit by its sound's
   fine structure, not only by its long-term spectrum.
3. **Resumable.** A checkpoint (:mod:`auscult.engine.checkpoint`) after every epoch; re-running
   the same command continues from it.
4. **Export.** ``encoder.json`` + ``encoder.npz`` (:func:`auscult.encoders.cnn.save_encoder`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

__all__ = ["PretrainConfig", "pretrain", "main"]

DEFAULT_FEATURES = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 64}


class PretrainConfig:
    def __init__(self, out: str, machines: Optional[Sequence[str]] = None, units_per_type: int = 8,
                 clips_per_unit: int = 48, clip_s: float = 4.0, crop_s: float = 2.0, epochs: int = 20,
                 batch_size: int = 32, lr: float = 1e-3, n_subclusters: int = 4, statex: bool = True,
                 emb_dim: int = 128, width: int = 128, seed: int = 0, threads: int = 1):
        from ..data.synth import MACHINES

        self.out = str(out)
        self.machines = list(machines or sorted(MACHINES))
        self.units_per_type, self.clips_per_unit = int(units_per_type), int(clips_per_unit)
        self.clip_s, self.crop_s, self.epochs, self.batch_size = float(clip_s), float(crop_s), int(epochs), int(batch_size)
        self.lr, self.n_subclusters, self.statex = float(lr), int(n_subclusters), bool(statex)
        self.emb_dim, self.width, self.seed, self.threads = int(emb_dim), int(width), int(seed), int(threads)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _render_shard(cfg: PretrainConfig, machine: str, unit: int, path: Path) -> None:
    from ..data.synth import render_clip, unit_for
    from ..data.synth.render import seed_sequence
    from ..features import FeatureConfig, LogMel
    from ..fileio import atomic_write

    fe = LogMel(FeatureConfig(**DEFAULT_FEATURES))
    u = unit_for(machine, f"p{unit:02d}", 1000 + cfg.seed)
    rng = np.random.default_rng(seed_sequence(cfg.seed, "pretrain", machine, unit))
    mels = []
    for i in range(cfg.clips_per_unit):
        dom = "target" if rng.random() < 0.3 else "source"
        x = render_clip(machine, seed=int(rng.integers(2**31)), domain=dom, unit=u, duration=cfg.clip_s,
                        sample_rate=DEFAULT_FEATURES["sample_rate"])
        x = x * np.float32(10 ** (rng.uniform(-10, 10) / 20))
        with torch.no_grad():
            mels.append(fe(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))[None].numpy()[0])
    arr = np.stack(mels).astype(np.float16)
    atomic_write(path, lambda fh: np.savez(fh, logmel=arr))


def _shards(cfg: PretrainConfig, log) -> tuple[np.ndarray, np.ndarray, list[str]]:
    d = Path(cfg.out) / "shards"
    d.mkdir(parents=True, exist_ok=True)
    xs, ys, names = [], [], []
    for m in cfg.machines:
        for u in range(cfg.units_per_type):
            p = d / f"{m}-p{u:02d}-n{cfg.clips_per_unit}-{cfg.clip_s:g}s-seed{cfg.seed}.npz"
            if not p.is_file():
                t0 = time.perf_counter()
                _render_shard(cfg, m, u, p)
                log(f"rendered {p.name} ({time.perf_counter() - t0:.0f} s)")
            with np.load(p, allow_pickle=False) as z:
                xs.append(z["logmel"])
            ys.append(np.full(len(xs[-1]), len(names)))
            names.append(f"{m}/p{u:02d}")
    return np.concatenate(xs), np.concatenate(ys), names


def _command(cfg: PretrainConfig) -> str:
    """The command line that reproduces ``cfg``."""
    parts = ["python -m auscult.encoders.pretrain"]
    for k, v in cfg.to_dict().items():
        if k == "machines":
            parts.append("--machines " + " ".join(v))
        elif k == "statex":
            if not v:
                parts.append("--no-statex")
        else:
            parts.append(f"--{k.replace('_', '-')} {v}")
    return " ".join(parts)


def pretrain(cfg: PretrainConfig, log=print) -> Path:
    """Run (or resume) the pre-training; returns the exported ``encoder.json``."""
    from ..augment.exchange import with_statistics_exchange
    from ..engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
    from ..losses.adacos import SubClusterAdaCos
    from .cnn import build_net, save_encoder

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    x_all, y_all, names = _shards(cfg, log)
    n_classes = len(names)
    hop = DEFAULT_FEATURES["hop_length"]
    crop = 1 + int(round(cfg.crop_s * DEFAULT_FEATURES["sample_rate"])) // hop
    torch.manual_seed(cfg.seed)
    net = build_net(DEFAULT_FEATURES["n_mels"], crop, emb_dim=cfg.emb_dim, width=cfg.width)
    head = SubClusterAdaCos(cfg.emb_dim, n_classes * (3 if cfg.statex else 1), cfg.n_subclusters, seed=cfg.seed)
    opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=cfg.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(x_all) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.1)
    ck = out / "checkpoint.pt"
    start, history = 0, []
    if ck.is_file():
        state = load_checkpoint(ck)
        if state.get("config") != cfg.to_dict():
            raise SystemExit(f"{ck} was written with another configuration; use another --out or delete it")
        net.load_state_dict(state["model"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
        start, history = int(state["epoch"]), list(state["history"])
        log(f"resumed after epoch {start}")
    rng = np.random.default_rng(cfg.seed + 7919 * start)
    for epoch in range(start, cfg.epochs):
        net.train()
        head.train()
        t0 = time.perf_counter()
        order = rng.permutation(len(x_all))
        tot, correct, seen = 0.0, 0, 0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            if len(idx) < 2:
                continue
            offs = rng.integers(0, x_all.shape[-1] - crop + 1, size=len(idx))
            xb = torch.from_numpy(np.stack([x_all[i, :, o:o + crop] for i, o in zip(idx, offs)]).astype(np.float32))
            xb = xb - xb.mean(dim=(1, 2), keepdim=True)
            yb = torch.from_numpy(y_all[idx])
            if cfg.statex:
                xb, yb = with_statistics_exchange(xb, yb, n_classes=n_classes, p=0.5)
            emb = net(xb[:, None])
            loss = head(emb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            seen += len(idx)
            with torch.no_grad():
                pred = head.class_log_probs(emb).argmax(1)
                tgt = yb.argmax(1) if yb.dim() == 2 else yb
                correct += int((pred == tgt).sum())
        rec = {"epoch": epoch + 1, "loss": tot / max(seen, 1), "train_acc": correct / max(seen, 1),
               "seconds": time.perf_counter() - t0}
        history.append(rec)
        save_checkpoint(ck, {"model": net.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "rng": capture_rng_state(), "epoch": epoch + 1,
                             "history": history, "config": cfg.to_dict()})
        log(json.dumps(rec))
    net.eval()
    config = {"features": DEFAULT_FEATURES, "crop_frames": crop, "window_hop": max(1, crop // 2),
              "net": {"emb_dim": cfg.emb_dim, "width": cfg.width},
              "training": {"config": cfg.to_dict(), "classes": names, "history": history,
                           "clips": int(len(x_all)), "command": _command(cfg)}}
    return save_encoder(out / "encoder", net, config)


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description="pre-train the CNN clip encoder on simulated machines")
    ap.add_argument("--out", required=True)
    ap.add_argument("--machines", nargs="+", default=None)
    ap.add_argument("--units-per-type", type=int, default=8)
    ap.add_argument("--clips-per-unit", type=int, default=48)
    ap.add_argument("--clip-s", type=float, default=4.0)
    ap.add_argument("--crop-s", type=float, default=2.0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-subclusters", type=int, default=4)
    ap.add_argument("--no-statex", action="store_true")
    ap.add_argument("--emb-dim", type=int, default=128)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    cfg = PretrainConfig(a.out, a.machines, a.units_per_type, a.clips_per_unit, a.clip_s, a.crop_s, a.epochs,
                         a.batch_size, a.lr, a.n_subclusters, not a.no_statex, a.emb_dim, a.width, a.seed, a.threads)
    print(pretrain(cfg, log=lambda m: print(m, flush=True)))


if __name__ == "__main__":
    main()
