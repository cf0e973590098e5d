"""Worker for the two-process gloo DDP test (imported by torch.multiprocessing in the children)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


class Data(torch.utils.data.Dataset):
    def __init__(self, n: int = 16):
        g = torch.Generator().manual_seed(3)
        self.x = torch.randn(n, 5, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * torch.randn(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def step_fn(batch, model, state):
    x, y = batch
    return {"loss": ((model(x).squeeze(-1) - y) ** 2).mean()}


def train(run_dir: Path, world_size: int, rank: int, batch_size: int, epochs: int = 2):
    from auscult.engine import RunDir, SeededSampler, TrainConfig, Trainer, build_optimizer

    torch.manual_seed(0)
    data = Data()
    sampler = SeededSampler(data, seed=5, world_size=world_size, rank=rank)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=sampler)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = build_optimizer(model, name="sgd", lr=0.05, momentum=0.9)
    cfg = TrainConfig(epochs=epochs, device="cpu", log_every=1, quiet=True, grad_clip=10.0)
    trainer = Trainer(model, step_fn, loader, opt, None, cfg, run_dir=RunDir(run_dir))
    hist = trainer.fit()
    return trainer, hist


def worker(rank: int, world_size: int, port: int, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from auscult.engine import all_reduce_mean, cleanup, init_distributed

    info = init_distributed()
    assert info.backend == "gloo" and info.world_size == world_size and info.rank == rank
    mean = float(all_reduce_mean(torch.tensor(float(rank))))
    run_dir = Path(out) / f"rank{rank}"
    trainer, hist = train(run_dir, world_size, rank, batch_size=4)
    torch.save({"state": trainer.raw_model.state_dict(), "history": hist, "mean": mean,
                "ddp": type(trainer.model).__name__}, Path(out) / f"result{rank}.pt")
    cleanup()
