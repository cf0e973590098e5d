"""Trainer behaviour besides resume: selection on held-out normals, early stopping, clipping, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _engine_toy import make
from auscult.engine import ModelEMA, RunDir, TrainConfig, Trainer, build_optimizer, load_checkpoint, load_trained_model
from auscult.errors import CheckpointError, ConfigError


def _linear_setup(tmp_path, val_values=None, **cfg):
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x @ torch.tensor([1.0, 2.0, -1.0])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True)
    model = nn.Linear(3, 1)
    opt = build_optimizer(model, name="sgd", lr=0.05, momentum=0.0)
    calls = []

    def val_fn(m, state):
        calls.append(m.weight.detach().clone())
        return {"val_loss": val_values[state.epoch], "other": 1.0}

    def step_fn(batch, m, state):
        xb, yb = batch
        return {"loss": ((m(xb).squeeze(-1) - yb) ** 2).mean(), "n": xb.shape[0]}

    t = Trainer(model, step_fn, loader, opt, None,
                TrainConfig(device="cpu", quiet=True, log_every=1, **cfg), run_dir=RunDir(tmp_path),
                val_fn=val_fn if val_values else None)
    return t, calls


def test_early_stopping_and_best_checkpoint(tmp_path):
    vals = [5.0, 3.0, 4.0, 3.5, 1.0, 0.5]
    t, _ = _linear_setup(tmp_path, vals, epochs=6, patience=2)
    hist = t.fit()
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]  # no improvement in epochs 2 and 3
    assert hist[-1]["stopped_early"] and t.best == 3.0 and t.best_epoch == 1
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == 2 and best["best"] == 3.0  # saved after epoch index 1
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 4
    # resuming a stopped run does not train further
    t2, _ = _linear_setup(tmp_path, vals, epochs=6, patience=2, resume=True)
    assert len(t2.fit()) == 4
    epochs = [r for r in RunDir(tmp_path).read_metrics() if r["kind"] == "epoch"]
    assert [r["val_loss"] for r in epochs] == vals[:4]


def test_monitor_max_and_min_delta(tmp_path):
    t, _ = _linear_setup(tmp_path, [0.5, 0.55, 0.7], epochs=3, monitor_mode="max", min_delta=0.1)
    t.fit()
    assert t.best == 0.7 and t.best_epoch == 2  # 0.55 is not a big enough improvement
    assert t.bad_epochs == 0


def test_validation_uses_ema_weights(tmp_path):
    torch.set_num_threads(1)
    seen = []
    t = make(tmp_path, epochs=1)
    inner = t.val_fn

    def spy(m, state):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        assert not m.training
        return inner(m, state)

    t.val_fn = spy
    t.fit()
    for k, v in t.ema.module.state_dict().items():
        assert torch.equal(seen[0][k], v), k
    assert any(not torch.equal(seen[0][k], v) for k, v in t.raw_model.state_dict().items())
    # best.pt can be loaded with EMA weights into a fresh model
    fresh = type(t.raw_model)()
    load_trained_model(fresh, tmp_path / "checkpoints" / "best.pt", use_ema=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, t.ema.module.state_dict()[k])


def test_grad_clip_logged_and_applied(tmp_path):
    t, _ = _linear_setup(tmp_path, epochs=1, grad_clip=1e-3)
    w0 = t.raw_model.weight.detach().clone()
    b0 = t.raw_model.bias.detach().clone()
    t.fit()
    steps = [r for r in RunDir(tmp_path).read_metrics() if r["kind"] == "step"]
    assert len(steps) == 4 and all(r["grad_norm"] > 1e-3 for r in steps) and all(r["n"] == 8 for r in steps)
    moved = torch.cat([(t.raw_model.weight - w0).flatten(), t.raw_model.bias - b0]).detach().norm()
    assert float(moved) <= 4 * 0.05 * 1e-3 * 1.001  # 4 SGD steps of lr x clipped norm


def test_errors_are_clear(tmp_path):
    t, _ = _linear_setup(tmp_path, epochs=1)
    t.step_fn = lambda b, m, s: {"loss_total": 1.0}
    with pytest.raises(ConfigError, match="'loss'"):
        t.fit()
    t, _ = _linear_setup(tmp_path / "b", epochs=1)
    t.step_fn = lambda b, m, s: {"loss": m(b[0]).sum() * float("nan")}
    with pytest.raises(FloatingPointError, match="grad_clip"):
        t.fit()
    t, _ = _linear_setup(tmp_path / "c", [1.0], epochs=1, monitor="auc")
    with pytest.raises(ConfigError, match="auc"):
        t.fit()
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="unknown train setting"):
        TrainConfig.from_dict({"epoch": 3})


def test_resume_refuses_corrupt_or_foreign_checkpoints(tmp_path):
    t, _ = _linear_setup(tmp_path, epochs=1, config_hash="aaa")
    t.fit()
    t2, _ = _linear_setup(tmp_path, epochs=2, config_hash="bbb", resume=True)
    with pytest.raises(CheckpointError, match="last.pt.*different config"):
        t2.fit()
    last = tmp_path / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:200])
    t3, _ = _linear_setup(tmp_path, epochs=2, resume=True)
    with pytest.raises(CheckpointError, match="last.pt.*truncated or corrupt"):
        t3.fit()
    # a checkpoint of a different model: lists the mismatched keys
    other_dir = tmp_path / "other"
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 3)), batch_size=4)
    wide = nn.Linear(3, 2)
    Trainer(wide, lambda b, m, s: {"loss": m(b[0]).pow(2).mean()}, loader, build_optimizer(wide, lr=0.1), None,
            TrainConfig(epochs=1, device="cpu", quiet=True), run_dir=RunDir(other_dir)).fit()
    t4, _ = _linear_setup(tmp_path / "x", epochs=1, resume=str(other_dir / "checkpoints" / "last.pt"))
    with pytest.raises(CheckpointError, match=r"weight: checkpoint \(2, 3\) vs model \(1, 3\)"):
        t4.fit()
    t5, _ = _linear_setup(tmp_path / "y", epochs=1, resume=str(tmp_path / "missing.pt"))
    with pytest.raises(CheckpointError, match="missing.pt.*not found"):
        t5.fit()
    # EMA requested but the checkpoint has none
    ema_model = nn.Linear(3, 1)
    t6 = Trainer(ema_model, t.step_fn, t.train_loader, build_optimizer(ema_model, name="sgd", lr=0.05), None,
                 TrainConfig(epochs=2, device="cpu", quiet=True, resume=str(other_dir / "checkpoints" / "last.pt")),
                 ema=ModelEMA(nn.Linear(3, 2)))
    with pytest.raises(CheckpointError):
        t6.fit()


def test_epoch_interval_scheduler(tmp_path):
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 3)), batch_size=4)
    m = nn.Linear(3, 1)
    opt = build_optimizer(m, name="sgd", lr=1.0)
    from auscult.engine import build_scheduler

    sched = build_scheduler(opt, schedule="step", step_size=1, gamma=0.5)
    t = Trainer(m, lambda b, mm, s: {"loss": mm(b[0]).pow(2).mean()}, loader, opt, sched,
                TrainConfig(epochs=3, device="cpu", quiet=True, scheduler_interval="epoch"))
    hist = t.fit()
    assert [h["lr"] for h in hist] == [0.5, 0.25, 0.125]
