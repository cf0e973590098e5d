"""``benchmarks/curve_epochs.py`` replays the stop rule on a recorded held-out curve (to say which epoch
the recipe would keep without retraining). The replay must agree with the Trainer it stands for."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from auscult.engine import RunDir, TrainConfig, Trainer, build_optimizer

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "curve_epochs.py"


def _trainer(tmp_path, vals, **cfg):
    """A tiny linear fit whose held-out loss after epoch e is ``vals[e]``."""
    torch.manual_seed(0)
    x = torch.randn(16, 3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1)), batch_size=8)
    model = nn.Linear(3, 1)

    def step_fn(batch, m, state):
        xb, yb = batch
        return {"loss": ((m(xb).squeeze(-1) - yb) ** 2).mean()}

    return Trainer(model, step_fn, loader, build_optimizer(model, name="sgd", lr=0.01), None,
                   TrainConfig(device="cpu", quiet=True, log_every=0, **cfg), run_dir=RunDir(tmp_path),
                   val_fn=lambda m, state: {"val_loss": vals[state.epoch]})


def _replay():
    spec = importlib.util.spec_from_file_location("curve_epochs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.replay_rule


@pytest.mark.parametrize("vals, patience, min_delta", [
    ([5.0, 3.0, 4.0, 3.5, 1.0, 0.5], 2, 0.0),       # stops after epoch 4 (index 3)
    ([5.0, 3.0, 4.0, 3.5, 1.0, 0.5], None, 0.0),    # no patience: runs to the end, keeps the last
    ([2.0, 1.95, 1.9, 1.85, 1.8, 1.0], 2, 0.1),     # small improvements do not count
    ([2.0, float("nan"), 1.5, 1.6, 1.7, 1.8], 3, 0.0),
    ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 1, 0.0),       # a flat curve: epoch 0 kept, stop after epoch 1
])
def test_replay_matches_the_trainer(tmp_path, vals, patience, min_delta):
    t = _trainer(tmp_path, vals, epochs=len(vals), patience=patience, min_delta=min_delta)
    hist = t.fit()
    got = _replay()(vals, patience, min_delta)
    assert got["kept"] == t.best_epoch
    ran = len(hist)
    assert got["stopped_after"] == (ran - 1 if hist[-1].get("stopped_early") else None)
