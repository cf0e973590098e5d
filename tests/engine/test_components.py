"""EMA, schedules, clipping, allocator tuning, device/precision, run directories, hold-out split."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from auscult.engine import runtime
from auscult.engine.amp import Precision
from auscult.engine.ema import ModelEMA
from auscult.engine.holdout import holdout_split
from auscult.engine.optim import OptimConfig, build_optimizer, build_scheduler, clip_gradients, schedule_factor
from auscult.engine.progress import progress_enabled, track
from auscult.engine.rundir import RunDir
from auscult.errors import ConfigError, DataError


# ---- EMA -------------------------------------------------------------------------------------
def test_ema_tracks_parameters_and_bn_buffers():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ema = ModelEMA(m, decay=0.5)
    p0 = m[0].weight.detach().clone()
    rm0 = m[1].running_mean.clone()
    m.train()
    m(torch.randn(16, 4) + 5)  # moves BN running stats
    with torch.no_grad():
        m[0].weight.add_(1.0)
    ema.update(m)
    e = ema.module
    torch.testing.assert_close(e[0].weight, 0.5 * p0 + 0.5 * m[0].weight)
    torch.testing.assert_close(e[1].running_mean, 0.5 * rm0 + 0.5 * m[1].running_mean)
    assert not torch.equal(e[1].running_mean, rm0)
    assert int(e[1].num_batches_tracked) == int(m[1].num_batches_tracked) == 1
    # copy mode copies buffers instead of averaging them
    ema_c = ModelEMA(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), decay=0.5, buffers="copy")
    ema_c.update(m)
    assert torch.equal(ema_c.module[1].running_mean, m[1].running_mean)


def test_ema_swap_and_state_dict():
    m = nn.Linear(2, 2)
    ema = ModelEMA(m, decay=0.9, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m)
    live = m.weight.detach().clone()
    with ema.swapped(m):
        assert torch.equal(m.weight, ema.module.weight)
        assert not torch.equal(m.weight, live)
    assert torch.equal(m.weight, live)
    other = ModelEMA(nn.Linear(2, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and other.decay == 0.9 and torch.equal(other.module.weight, ema.module.weight)
    with pytest.raises(ConfigError):
        ModelEMA(m, decay=1.0)


def test_ema_shrink_scales_the_trained_model_after_averaging():
    """``shrink`` (the OS-SCL code's WeightEMA: ``param *= 1 - 2e-6`` after each EMA step, BN
    running statistics included): the average uses the weights before the shrink."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ema = ModelEMA(m, decay=0.9, shrink=0.25)
    m.train()
    m(torch.randn(16, 4) + 5)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    e0 = {k: v.clone() for k, v in ema.module.state_dict().items()}
    ema.update(m)
    after, e1 = m.state_dict(), ema.module.state_dict()
    for k, v in before.items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(after[k], 0.75 * v)
            torch.testing.assert_close(e1[k], 0.9 * e0[k] + 0.1 * v)
        else:
            assert torch.equal(after[k], v) and torch.equal(e1[k], v)
    state = ema.state_dict()
    assert state["shrink"] == 0.25
    other = ModelEMA(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)))
    other.load_state_dict(state)
    assert other.shrink == 0.25
    with pytest.raises(ConfigError):
        ModelEMA(m, shrink=1.0)


# ---- optimisers and schedules ------------------------------------------------------------------
@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_build_optimizer(name, cls):
    opt = build_optimizer(nn.Linear(2, 2), OptimConfig(name=name, lr=0.1, weight_decay=1e-4))
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 0.1
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9
    with pytest.raises(ConfigError, match="unknown optimiser"):
        build_optimizer(nn.Linear(2, 2), name="lion")
    with pytest.raises(ConfigError, match="unknown optimiser setting"):
        OptimConfig.from_dict({"lrr": 1})


def _lrs(sched_kw, steps, base=0.1):
    opt = build_optimizer(nn.Linear(2, 2), name="sgd", lr=base)
    sched = build_scheduler(opt, **sched_kw)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_with_eta_min_matches_closed_form():
    T, base, eta = 20, 0.1, 0.01
    got = _lrs(dict(schedule="cosine", total_steps=T, eta_min=eta), T + 3, base)
    for t, lr in enumerate(got):
        want = eta + (base - eta) * (1 + math.cos(math.pi * min(t, T) / T)) / 2
        assert lr == pytest.approx(want, rel=1e-9)
    assert got[0] == pytest.approx(base) and got[-1] == pytest.approx(eta)


def test_warmup_then_cosine_and_step():
    W, T, base = 4, 14, 0.2
    got = _lrs(dict(schedule="cosine", total_steps=T, warmup_steps=W), T, base)
    for t in range(W):
        assert got[t] == pytest.approx(base * (t + 1) / (W + 1))
    for t in range(W, T):
        assert got[t] == pytest.approx(base * (1 + math.cos(math.pi * (t - W) / (T - W))) / 2)
    got = _lrs(dict(schedule="step", step_size=3, gamma=0.5, warmup_steps=2), 10, base)
    for t in range(10):
        warm = (t + 1) / 3 if t < 2 else 1.0
        assert got[t] == pytest.approx(base * warm * 0.5 ** (max(0, t - 2) // 3))
    with pytest.raises(ConfigError):
        schedule_factor("cosine", total_steps=3, warmup_steps=3)
    with pytest.raises(ConfigError):
        schedule_factor("poly", total_steps=3)


def test_clip_gradients():
    m = nn.Linear(3, 1, bias=False)
    m.weight.grad = torch.tensor([[3.0, 4.0, 0.0]])
    assert clip_gradients(m, None) == pytest.approx(5.0)
    assert torch.equal(m.weight.grad, torch.tensor([[3.0, 4.0, 0.0]]))
    assert clip_gradients(m, 1.0) == pytest.approx(5.0)
    assert float(m.weight.grad.norm()) == pytest.approx(1.0, rel=1e-4)
    assert clip_gradients(nn.Linear(2, 2), 1.0) == 0.0  # no grads yet


# ---- runtime -----------------------------------------------------------------------------------
def test_allocator_tuning_safe_everywhere(monkeypatch):
    assert runtime.tune_allocator() in (True, False)
    monkeypatch.setattr(runtime, "_libc", lambda: None)  # e.g. musl / macOS
    assert runtime.tune_allocator() is False
    monkeypatch.setattr(runtime.platform, "system", lambda: "Darwin")
    monkeypatch.undo()
    monkeypatch.setattr(runtime.platform, "system", lambda: "Darwin")
    assert runtime._libc() is None and runtime.tune_allocator() is False
    monkeypatch.undo()
    monkeypatch.setenv("AUSCULT_ALLOCATOR", "default")
    assert runtime.tune_allocator() is False


def test_device_and_precision():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    auto = runtime.resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            runtime.resolve_device("cuda")
    with pytest.raises(ConfigError):
        runtime.resolve_device("tpu9")
    p = Precision("bf16", "cpu")  # falls back to full precision on CPU
    assert p.mode == "fp32" and not p.active and not p.scaler.is_enabled()
    with p.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ConfigError):
        Precision("int4", "cpu")
    info = runtime.setup_runtime("cpu", num_threads=torch.get_num_threads(), tune_malloc=False)
    assert info.device == "cpu" and info.num_threads == torch.get_num_threads()


# ---- run directory ------------------------------------------------------------------------------
def test_run_dir_layout_config_versions_metrics(tmp_path):
    rd = RunDir.create(tmp_path, "r1", config={"train": {"epochs": 2}, "lr": 1e-3}, seed=7)
    for sub in ("checkpoints", "logs", "embeddings", "scores", "submission", "report"):
        assert (rd.path / sub).is_dir()
    assert rd.read_config() == {"train": {"epochs": 2}, "lr": 1e-3}
    meta = rd.read_meta()
    assert meta["seed"] == 7 and {"python", "torch", "numpy", "auscult"} <= set(meta["versions"])
    rd.log_metrics({"step": 1, "loss": torch.tensor(0.5), "x": float("nan")})
    with open(rd.metrics_path, "a") as f:
        f.write('{"step": 2, "lo')  # partial line from a kill
    assert rd.read_metrics() == [{"step": 1, "loss": 0.5, "x": None}]
    with pytest.raises(ConfigError, match="already exists"):
        RunDir.create(tmp_path, "r1")
    assert RunDir.create(tmp_path, "r1", exist_ok=True).path == rd.path
    assert RunDir.open(rd.path).path == rd.path
    with pytest.raises(ConfigError):
        RunDir.open(tmp_path / "nope")


# ---- hold-out split -------------------------------------------------------------------------------
def test_holdout_split_deterministic_stratified_and_refuses_test_clips():
    items = [SimpleNamespace(i=i, split="train", domain="target" if i < 4 else "source") for i in range(40)]
    tr, ho = holdout_split(items, 0.25, seed=1, key=lambda c: c.domain)
    assert len(tr) + len(ho) == 40 and not {x.i for x in tr} & {x.i for x in ho}
    assert sum(x.domain == "target" for x in ho) == 1 and sum(x.domain == "source" for x in ho) == 9
    assert [x.i for x in holdout_split(items, 0.25, seed=1, key=lambda c: c.domain)[1]] == [x.i for x in ho]
    assert [x.i for x in holdout_split(items, 0.25, seed=2)[1]] != [x.i for x in ho]
    bad = items + [SimpleNamespace(i=99, split="test", path="x/test/a.wav")]
    with pytest.raises(DataError, match="a.wav.*test clip"):
        holdout_split(bad, 0.2)
    with pytest.raises(ConfigError):
        holdout_split(items, 1.0)
    with pytest.raises(DataError):
        holdout_split(items[:1], 0.5)


def test_progress_quiet_when_not_a_tty(monkeypatch):
    assert progress_enabled(quiet=True) is False
    monkeypatch.setenv("AUSCULT_QUIET", "1")
    assert progress_enabled() is False
    assert list(track(range(3))) == [0, 1, 2]
