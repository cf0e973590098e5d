"""CPU fast paths (``auscult.engine.fastpath``): settings, and that each path computes what the plain
path computes (values and gradients, float rounding apart), including on an AVX2-only CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from auscult.engine import TrainConfig, Trainer, build_optimizer
from auscult.engine import fastpath
from auscult.engine.fastpath import FastPath, overridden
from auscult.errors import ConfigError
from auscult.nets.layers import BatchNorm2d, FastPReLU

SRC = Path(__file__).resolve().parents[2] / "src"


# ---- settings ------------------------------------------------------------------------------------
def test_parse_plain_and_named_settings():
    assert FastPath.parse("") == FastPath()
    plain = FastPath.parse("plain")
    assert not (plain.channels_last or plain.fused_prelu or plain.waveform) and plain.bf16 == "off"
    assert FastPath.parse("plain,fused_prelu=1") == FastPath(channels_last=False, fused_prelu=True, waveform=False,
                                                             bf16="off")
    assert FastPath.parse("channels_last=off, bf16=auto") == FastPath(channels_last=False, bf16="auto")
    assert FastPath.parse("train_channels_last=1") == FastPath(train_channels_last=True)
    assert not FastPath().train_channels_last and not FastPath.plain().train_channels_last
    for bad in ("nope=1", "compile=1", "channels_last", "channels_last=maybe", "bf16=fast"):
        with pytest.raises(ConfigError):
            FastPath.parse(bad)


def test_overridden_restores_the_settings():
    before = fastpath.settings()
    with overridden(channels_last=False, bf16="auto") as s:
        assert s.channels_last is False and fastpath.settings().bf16 == "auto"
    assert fastpath.settings() == before


def test_environment_variable_is_read_at_import():
    code = "from auscult.engine import fastpath; s = fastpath.settings(); print(s.channels_last, s.fused_prelu, s.bf16)"
    env = dict(os.environ, PYTHONPATH=str(SRC), AUSCULT_FASTPATH="plain,fused_prelu=1,bf16=auto")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "auto"]


def test_bf16_detection_can_be_forced(monkeypatch):
    monkeypatch.setenv("AUSCULT_CPU_BF16", "0")
    assert fastpath.cpu_has_native_bf16() is False
    with overridden(bf16="auto"):
        assert fastpath.use_cpu_bf16() is False  # falls back to float32
    with overridden(bf16="on"):
        assert fastpath.use_cpu_bf16() is True
    monkeypatch.setenv("AUSCULT_CPU_BF16", "1")
    assert fastpath.cpu_has_native_bf16() is True
    with overridden(bf16="off"):
        assert fastpath.use_cpu_bf16() is False
        assert fastpath.use_cpu_bf16("bf16") is True  # a recipe's amp: bf16 asks for it


def test_compiled_kernel_falls_back_when_compiling_fails(monkeypatch, caplog):
    import torch._dynamo  # noqa: F401

    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    k = fastpath.CompiledKernel(lambda x: x * 2, lambda x: x + x, "test_kernel")
    with caplog.at_level("WARNING", logger="auscult.engine.fastpath"):
        assert torch.equal(k(torch.ones(3)), torch.full((3,), 2.0))
        assert torch.equal(k(torch.ones(2)), torch.full((2,), 2.0))
    assert k.failed and sum("test_kernel" in r.getMessage() for r in caplog.records) == 1


# ---- nets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_prelu_matches_aten(dtype, channels_last):
    torch.manual_seed(0)
    x = torch.randn(4, 6, 5, 7, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref = nn.PReLU(6).to(dtype)
    with torch.no_grad():
        ref.weight.uniform_(-0.3, 0.5)
    fast = FastPReLU(6).to(dtype)
    fast.load_state_dict(ref.state_dict())
    g = torch.randn_like(x)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ref(xa), fast(xb)
    ya.backward(g)
    yb.backward(g)
    assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-5 if dtype == torch.float32 else 1e-12,
                               atol=0)
    assert list(fast.state_dict()) == ["weight"]


@pytest.mark.parametrize("momentum", [0.1, None])
def test_channels_last_batchnorm_training_matches_float64(momentum):
    """Channels-last training statistics as accurate as the NCHW kernel's (ATen's CL kernel was 16x off)."""
    torch.manual_seed(0)
    x = torch.randn(4, 16, 24, 40) * 3 + 30  # conv outputs with a mean offset
    g = torch.randn_like(x)
    mods = {k: BatchNorm2d(16, momentum=momentum) for k in ("f64", "cl")}
    mods["f64"].double()
    out = {}
    for k, m in mods.items():
        with torch.no_grad():
            m.weight.copy_(torch.linspace(0.5, 1.5, 16))
            m.bias.copy_(torch.linspace(-1, 1, 16))
        xi = (x.double() if k == "f64" else x.contiguous(memory_format=torch.channels_last)).requires_grad_()
        for _ in range(2):  # running statistics over two steps
            y = m.train()(xi)
        y.backward(g.to(y.dtype))
        out[k] = (y.detach().double(), xi.grad.double(), m.weight.grad.double(), m.running_mean.double(),
                  m.running_var.double(), int(m.num_batches_tracked))
    ref, cl = out["f64"], out["cl"]
    assert cl[5] == ref[5] == 2
    assert (cl[0] - ref[0]).abs().max() < 2e-5  # stock channels-last kernel: ~2e-4 here
    for a, b, tol in zip(cl[1:5], ref[1:5], (1e-4, 1e-4, 1e-6, 1e-5)):
        assert ((a - b).abs().max() / b.abs().max()) < tol
    # eval mode and NCHW input take the stock path
    assert torch.equal(mods["cl"].eval()(x), nn.functional.batch_norm(
        x, mods["cl"].running_mean, mods["cl"].running_var, mods["cl"].weight, mods["cl"].bias, False, 0.0, 1e-5))


def test_tfgram_fast_paths_match_the_plain_path():
    from auscult.nets.inference import inference_copy
    from auscult.nets.tgram import TFgramNet

    torch.manual_seed(0)
    net = TFgramNet(16000, 1024, 256, 32, channels=8, mid_channels=16)
    x = torch.randn(3, 16000)
    grads = {}
    for on in (False, True):
        with overridden(waveform=on):
            net.zero_grad()
            y = net.train()(x)
            y.square().mean().backward()
            grads[on] = (y.detach(), [p.grad.clone() for p in net.parameters()])
    assert torch.equal(grads[False][0], grads[True][0])
    for a, b in zip(grads[False][1], grads[True][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    net.eval()
    with torch.no_grad():
        with overridden(waveform=False):
            plain = net(x)
        fast, folded = net(x), inference_copy(net)(x)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-6)
    # a hook on a layer sees that layer run: the plain path
    seen = []
    h = net.pool2.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        net(x)
    h.remove()
    assert seen == [(3, 16, 2 * net.frames)]


def test_trainer_trains_channels_last_when_asked_and_restores_the_layout():
    from auscult.nets import MobileFaceNet

    torch.manual_seed(0)
    net = MobileFaceNet((3, 32, 40), emb_dim=8, activation="prelu")  # stem weight [64, 3, 3, 3]: unambiguous
    x = torch.randn(8, 3, 32, 40)
    seen = []

    def step(batch, model, state):
        w = model.stem[0].weight
        seen.append(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous())
        return {"loss": model(batch).square().mean()}

    def fit(n):
        Trainer(net, step, [x] * n, build_optimizer(net, name="adamw", lr=1e-3), None,
                TrainConfig(device="cpu", epochs=1, quiet=True, log_every=0)).fit()

    assert fastpath.settings().train_channels_last is False  # opt-in (see the module docstring)
    fit(1)
    assert seen == [False]
    seen.clear()
    with overridden(train_channels_last=True):
        fit(2)
    assert seen == [True, True]
    assert all(p.is_contiguous() for p in net.parameters())


def test_logmel_pool_and_paired_mel_match_the_previous_path():
    from auscult.features import FeatureConfig, LogMel, frontends

    torch.manual_seed(0)
    x = torch.randn(5, 16000) * 0.1
    lm = LogMel(FeatureConfig(n_fft=512, hop_length=256, n_mels=40))
    saved = frontends.CPU_PAIRED_MEL, frontends.CPU_THREAD_POOL, frontends.CPU_CHUNK_SAMPLES, torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        frontends.CPU_CHUNK_SAMPLES = 16000  # one clip per chunk
        outs = {}
        for paired, pool in ((False, False), (True, False), (True, True)):
            frontends.CPU_PAIRED_MEL, frontends.CPU_THREAD_POOL = paired, pool
            with torch.no_grad():
                outs[paired, pool] = lm(x)
        assert torch.get_num_threads() == 2  # restored after the pool ran
    finally:
        frontends.CPU_PAIRED_MEL, frontends.CPU_THREAD_POOL, frontends.CPU_CHUNK_SAMPLES, _ = saved
        torch.set_num_threads(saved[3])
    ref = outs[False, False]
    for k, v in outs.items():
        assert v.shape == ref.shape and v.is_contiguous()
        assert (v - ref).abs().max() < 1e-3  # dB
    assert torch.equal(outs[True, False], outs[True, True])


# ---- an AVX2-only CPU ----------------------------------------------------------------------------
_AVX2_SCRIPT = textwrap.dedent("""
    import torch
    from torch import nn
    from auscult.engine import fastpath
    from auscult.nets.layers import BatchNorm2d, FastPReLU
    from auscult.nets.tgram import TFgramNet
    from auscult.features import FeatureConfig, LogMel, frontends
    assert torch.backends.cpu.get_cpu_capability() == "AVX2", torch.backends.cpu.get_cpu_capability()
    assert not fastpath.cpu_has_native_bf16()
    with fastpath.overridden(bf16="auto"):
        assert not fastpath.use_cpu_bf16()
    torch.manual_seed(0)
    x = torch.randn(4, 6, 5, 7).contiguous(memory_format=torch.channels_last)
    a, b = nn.PReLU(6), FastPReLU(6)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a(xa).sum().backward(); b(xb).sum().backward()
    assert torch.equal(xa.grad, xb.grad) and torch.allclose(a.weight.grad, b.weight.grad, rtol=1e-5)
    bn, bn64 = BatchNorm2d(6).train(), BatchNorm2d(6).double().train()
    y, y64 = bn(x * 3 + 30), bn64((x * 3 + 30).double())
    assert (y.double() - y64).abs().max() < 2e-5
    net = TFgramNet(16000, 1024, 256, 32, channels=8, mid_channels=16).eval()
    w = torch.randn(2, 16000)
    with torch.no_grad():
        with fastpath.overridden(waveform=False):
            p = net(w)
        assert torch.allclose(net(w), p, rtol=1e-5, atol=1e-6)
    lm = LogMel(FeatureConfig(n_fft=512, hop_length=256, n_mels=40))
    with torch.no_grad():
        frontends.CPU_PAIRED_MEL = True; m1 = lm(w); frontends.CPU_PAIRED_MEL = False; m0 = lm(w)
    assert (m1 - m0).abs().max() < 1e-3
    print("ok", torch.backends.cpu.get_cpu_capability())
""")


@pytest.mark.skipif(sys.platform != "linux" or not torch.backends.mkldnn.is_available(), reason="x86 Linux only")
def test_fast_paths_on_an_avx2_only_cpu():
    """ATen, oneDNN and inductor's generated code limited to AVX2 and native bf16 reported absent (as on
    the AVX2-only machines): every fast path still computes what the plain path computes."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("not an x86 CPU with AVX2")
    env = dict(os.environ, PYTHONPATH=str(SRC), ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2",
               AUSCULT_CPU_BF16="0", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _AVX2_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ok", "AVX2"]
