"""A tiny but complete training set-up for the engine tests.

Conv net with BatchNorm + dropout, a shuffling loader whose dataset draws numpy/python random
augmentation, an EMA, a cosine schedule with warm-up and a fake memory bank whose contents feed the
loss - so a resume that forgets any of them ends with different weights.

Also runnable as a script (used by the SIGKILL test):
    python _engine_toy.py RUN_DIR EPOCHS KILL_AT_STEP RESUME(0/1)
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from auscult.engine import ModelEMA, RunDir, TrainConfig, Trainer, build_optimizer, build_scheduler  # noqa: E402


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n: int = 24, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, 8, 12, generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        gain = 1.0 + 0.1 * float(np.random.randn()) + 0.05 * random.random()
        return self.x[i] * gain, self.y[i], i


class ToyNet(nn.Module):
    def __init__(self, width: int = 6):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Dropout(0.3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        z = self.body(x)
        return self.head(z), z


class MemoryBank:
    """Fake memory bank: one slot per item plus a write counter."""

    def __init__(self, n: int, dim: int):
        self.bank = torch.zeros(n, dim)
        self.writes = 0

    def state_dict(self):
        return {"bank": self.bank.clone(), "writes": self.writes}

    def load_state_dict(self, s):
        self.bank = s["bank"].clone()
        self.writes = int(s["writes"])


def step_fn(batch, model, state):
    x, y, idx = batch
    logits, z = model(x)
    bank = state.extra["bank"]
    pull = ((z - bank.bank[idx].to(z.device)) ** 2).mean()
    bank.bank[idx] = z.detach().cpu()
    bank.writes += 1
    loss = nn.functional.cross_entropy(logits, y) + 0.1 * pull
    return {"loss": loss, "pull": pull.detach()}


class Interrupt(Exception):
    pass


class StopAt:
    """Callback: raise (or SIGKILL the process) after global step ``k``."""

    def __init__(self, k: int, kill: bool = False):
        self.k, self.kill = k, kill

    def on_step_end(self, trainer, outputs):
        if trainer.state.step == self.k:
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise Interrupt(f"stopped at step {self.k}")


def make(run_dir, epochs=3, resume=False, callbacks=(), checkpoint_every_steps=None, bank=True,
         seed=0, val=True, num_workers=0, **cfg):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    data = ToyData()
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, num_workers=num_workers,
                                         multiprocessing_context="fork" if num_workers else None)
    model = ToyNet()
    opt = build_optimizer(model, name="adamw", lr=0.05, weight_decay=0.01)
    sched = build_scheduler(opt, schedule="cosine", warmup_steps=2, eta_min=1e-3,
                            total_steps=epochs * len(loader))
    ema = ModelEMA(model, decay=0.9)
    mb = MemoryBank(len(data), 6)
    hold = ToyData(n=8, seed=1)

    def val_fn(m, state):
        logits, _ = m(hold.x)
        return {"val_loss": nn.functional.cross_entropy(logits, hold.y)}

    config = TrainConfig(epochs=epochs, seed=seed, device="cpu", log_every=1, resume=resume,
                         checkpoint_every_steps=checkpoint_every_steps, quiet=True, **cfg)
    trainer = Trainer(model, step_fn, loader, opt, sched, config, run_dir=RunDir(run_dir),
                      val_fn=val_fn if val else None, ema=ema,
                      extra_state={"bank": mb} if bank else {}, callbacks=callbacks)
    # the bank is always used by step_fn, registered or not
    trainer.state.extra["bank"] = mb
    return trainer


def final_state(trainer):
    out = {f"model.{k}": v.clone() for k, v in trainer.raw_model.state_dict().items()}
    out.update({f"ema.{k}": v.clone() for k, v in trainer.ema.module.state_dict().items()})
    out["bank"] = trainer.state.extra["bank"].bank.clone()
    for i, (k, st) in enumerate(trainer.optimizer.state_dict()["state"].items()):
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                out[f"opt.{k}.{name}"] = v.clone()
    return out


if __name__ == "__main__":
    run_dir, epochs, kill_at, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    torch.set_num_threads(1)
    cbs = [StopAt(kill_at, kill=True)] if kill_at > 0 else []
    t = make(run_dir, epochs=epochs, resume=resume, callbacks=cbs, checkpoint_every_steps=4)
    t.fit()
    torch.save(final_state(t), Path(run_dir) / "final_state.pt")
