"""Tests that walk the net registry: shapes for 10/12/18 s, backward, determinism, ONNX export,
parameter counts derived from the architectures, and family-specific properties."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from auscult.errors import ConfigError
from auscult.nets import NETS, ClipGeometry, StaticAdaptiveMaxPool1d, build_for_clip, input_kwargs
from auscult.nets.layers import ScaleBatchNorm

torch.set_num_threads(2)
NAMES = NETS.names()
BATCH = 2


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# Backward, determinism and ONNX checks do not depend on the clip length, so they run on nets
# built for a small geometry (4.5 s, the shortest clip the dual-branch spectrum convs accept;
# 64 mels, hop 1024; same code paths, every size still computed from the geometry) to keep
# the file inside its time budget on 2 cores.
SMALL = ClipGeometry(duration=4.5, n_mels=64, hop_length=1024)


@pytest.fixture(scope="module")
def nets10() -> dict[str, nn.Module]:
    """Every registered net built once with its 10 s defaults."""
    torch.manual_seed(0)
    return {name: NETS.build(name) for name in NAMES}


@pytest.fixture(scope="module")
def nets_small() -> dict[str, nn.Module]:
    """Every registered net built once for a 4.5 s clip."""
    torch.manual_seed(0)
    return {name: build_for_clip(name, SMALL) for name in NAMES}


def test_registry_lists_every_family():
    expected = {"mobilefacenet", "tgram", "tfgram", "stgram_mfn", "tfstgram_mfn", "mobilenetv2",
                "mobilenetv2_050", "resnet18_tfap", "resnet50", "dualbranch", "autoencoder"}
    assert expected <= set(NAMES)
    for e in NETS.entries():
        assert e.description


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_10s(nets10, name):
    net = nets10[name].eval()
    xs = net.example_inputs(BATCH)
    assert len(xs) == len(net.input_names)
    with torch.no_grad():
        y = net(*xs)
    assert tuple(y.shape) == (BATCH, *net.output_shape)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("duration", [12.0, 18.0])
@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_other_durations(name, duration):
    geo = ClipGeometry(duration=duration)
    torch.manual_seed(0)
    net = build_for_clip(name, geo).eval()
    kw = input_kwargs(name, geo)
    # the shapes the net was built for follow the geometry, not 10 s constants
    if "input_shape" in kw and kw["input_shape"][-1] != 64:  # resnet18_tfap is built for 64-frame crops
        assert net.input_shapes[0][-1] == geo.frames
    if "n_samples" in kw:
        assert net.input_shapes[0] == (geo.n_samples,)
    if "spectrum_len" in kw:
        assert net.input_shapes == ((geo.n_samples // 2,), (geo.n_freq, geo.frames))
    with torch.no_grad():
        y = net(*net.example_inputs(1))
    assert tuple(y.shape) == (1, *net.output_shape)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_backward_gives_finite_grads_on_all_params(nets_small, name):
    net = nets_small[name].train()
    net.zero_grad(set_to_none=True)
    xs = net.example_inputs(BATCH, seed=1)
    y = net(*xs)
    target = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    ((y - target) ** 2).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    bad = [n for n, p in net.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())
    net.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic_and_seeded_builds_match(nets_small, name):
    net = nets_small[name].eval()
    xs = net.example_inputs(BATCH, seed=3)
    with torch.no_grad():
        a, b = net(*xs), net(*xs)
    assert torch.equal(a, b)
    # eval output does not depend on the other clips of the batch
    with torch.no_grad():
        single = net(*(x[:1] for x in xs))
    torch.testing.assert_close(single, a[:1], rtol=1e-4, atol=1e-5)
    # same seed -> same weights -> same output
    if n_params(net) < 5_000_000:
        torch.manual_seed(7)
        n1 = build_for_clip(name, SMALL).eval()
        torch.manual_seed(7)
        n2 = build_for_clip(name, SMALL).eval()
        with torch.no_grad():
            assert torch.equal(n1(*xs), n2(*xs))


# ---- ONNX export readiness ------------------------------------------------------------------

def _export_and_run(net: nn.Module, xs: tuple[torch.Tensor, ...]) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    names = list(net.input_names)
    buf = io.BytesIO()
    torch.onnx.export(
        net, xs, buf, dynamo=False, input_names=names, output_names=["out"],
        dynamic_axes={**{n: {0: "batch"} for n in names}, "out": {0: "batch"}}, opset_version=17,
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    # run at a batch size other than the one used for export (dynamic batch axis)
    xs3 = tuple(torch.cat([x, x[:1]]) for x in xs)
    feed = {n: x.numpy() for n, x in zip(names, xs3)}
    got = sess.run(None, feed)[0]
    with torch.no_grad():
        ref = net(*xs3).numpy()
    return got, ref


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_matches_torch(nets_small, name):
    net = nets_small[name].eval()
    got, ref = _export_and_run(net, net.example_inputs(BATCH, seed=4))
    assert got.shape == ref.shape == (BATCH + 1, *net.output_shape)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


# ---- parameter counts derived from the architectures ---------------------------------------

def _bn(c):
    return 2 * c


def mobilefacenet_params(in_ch: int, map_hw: tuple[int, int], prelu: bool = True) -> int:
    """MobileFaceNet parameter count written out layer by layer from the published design."""
    act = (lambda c: c) if prelu else (lambda c: 0)
    total = in_ch * 64 * 9 + _bn(64) + act(64)  # stem
    total += 64 * 9 + _bn(64) + act(64)  # depthwise
    cin = 64
    for t, c, n, _ in ((2, 128, 2, 2), (4, 128, 2, 2), (4, 128, 2, 2)):
        for _ in range(n):
            e = cin * t
            total += cin * e + _bn(e) + act(e) + e * 9 + _bn(e) + act(e) + e * c + _bn(c)
            cin = c
    total += cin * 512 + _bn(512) + act(512)  # 1x1 to 512
    total += 512 * map_hw[0] * map_hw[1] + _bn(512)  # linear global depthwise conv
    total += 512 * 128 + _bn(128)  # linear 1x1 to the embedding
    return total


def test_mobilefacenet_param_count_and_gdconv_kernel(nets10):
    net = nets10["mobilefacenet"]
    # 128 x 313 -> stem/2 and three stride-2 stages: ceil-halving four times
    h, w = 128, 313
    for _ in range(4):
        h, w = (h + 1) // 2, (w + 1) // 2
    assert net.map_size == (h, w)
    assert net.gdconv[0].kernel_size == (h, w)
    with torch.no_grad():
        assert tuple(net.forward_features(net.example_inputs(1)[0]).shape[-2:]) == (h, w)
    count = n_params(net)
    assert count == mobilefacenet_params(1, (h, w))
    assert 0.8e6 < count < 1.2e6  # "about 1M"
    # 2 and 3 input channels (log-mel + Tgram [+ TFgram]) only change the stem
    for c in (2, 3):
        m = NETS.build("mobilefacenet", input_shape=(c, 128, 313))
        assert n_params(m) == mobilefacenet_params(c, (h, w))
    relu = NETS.build("mobilefacenet", activation="relu")
    assert n_params(relu) == mobilefacenet_params(1, (h, w), prelu=False)
    assert not any(isinstance(m, nn.PReLU) for m in relu.modules())


@pytest.mark.parametrize("duration", [10.0, 12.0, 18.0])
def test_mobilefacenet_map_size_follows_input(duration):
    geo = ClipGeometry(duration=duration)
    net = build_for_clip("mobilefacenet", geo, activation="relu").eval()
    with torch.no_grad():
        fmap = net.forward_features(torch.zeros(1, 1, geo.n_mels, geo.frames))
    assert tuple(fmap.shape[-2:]) == net.map_size == net.gdconv[0].kernel_size


def test_reference_param_counts(nets10):
    # torchvision-style reference counts (1000-class heads, 3-channel stems) adjusted to a
    # 1-channel stem and our embedding layers
    tv_resnet18, tv_resnet50, tv_mbv2 = 11_689_512, 25_557_032, 3_504_872
    stem = lambda c: 2 * c  # noqa: E731  per-channel kernel weights dropped (3 -> 1 input channel)
    r18 = tv_resnet18 - (512 * 1000 + 1000) - stem(64 * 49) + 2 * (512 + 1) + (1024 * 128 + 128)
    assert n_params(nets10["resnet18_tfap"]) == r18
    r50 = tv_resnet50 - (2048 * 1000 + 1000) - stem(64 * 49)
    assert n_params(nets10["resnet50"]) == r50
    mb = tv_mbv2 - (1280 * 1000 + 1000) - stem(32 * 9) + (1280 * 128 + 128)
    assert n_params(nets10["mobilenetv2"]) == mb
    assert n_params(nets10["mobilenetv2_050"]) < 0.5 * n_params(nets10["mobilenetv2"])


def test_autoencoder_matches_dcase_baseline(nets10):
    ae = nets10["autoencoder"]
    dims = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
    expected = sum(a * b + b + _bn(b) for a, b in zip(dims[:-1], dims[1:])) + 128 * 640 + 640
    assert n_params(ae) == expected
    ae.eval()
    x = ae.example_inputs(3)[0]
    with torch.no_grad():
        assert ae.encode(x).shape == (3, 8)
        torch.testing.assert_close(ae.reconstruction_error(x), ((ae(x) - x) ** 2).mean(-1))


# ---- Tgram / TFgram ----------------------------------------------------------------------------

@pytest.mark.parametrize("n_samples", [160000, 192000, 288000, 16001])
def test_tgram_frames_match_centered_stft(n_samples):
    net = NETS.build("tgram", n_samples=n_samples).eval()
    wave = torch.randn(1, n_samples)
    ref_frames = torch.stft(wave, 1024, 512, window=torch.hann_window(1024), center=True,
                            return_complex=True).shape[-1]
    with torch.no_grad():
        out = net(wave)
    assert out.shape == (1, 128, ref_frames)
    ln = [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
    assert len(ln) == 3 and all(m.normalized_shape == (ref_frames,) for m in ln)


@pytest.mark.parametrize("in_len,out_len", [(8000, 626), (626, 313), (10, 10), (7, 3), (100, 37)])
def test_static_adaptive_max_pool_equals_torch(in_len, out_len):
    x = torch.randn(2, 3, in_len)
    torch.testing.assert_close(StaticAdaptiveMaxPool1d(in_len, out_len)(x),
                               nn.functional.adaptive_max_pool1d(x, out_len), rtol=0, atol=0)


def test_combiners_stack_the_requested_channels(nets10):
    for name, chans in (("stgram_mfn", 2), ("tfstgram_mfn", 3)):
        net = nets10[name].eval()
        wave, logmel = net.example_inputs(1)
        with torch.no_grad():
            maps = net.forward_maps(wave, logmel)
        assert maps.shape == (1, chans, 128, 313)
        torch.testing.assert_close(maps[:, 0], logmel)
        assert net.mfn.input_shapes[0][0] == chans
    solo = NETS.build("stgram_mfn", channels=("logmel",))
    assert solo.tgram is None and solo.mfn.input_shapes[0][0] == 1
    with pytest.raises(ConfigError):
        NETS.build("stgram_mfn", channels=("logmel", "cqt"))


# ---- dual-branch ------------------------------------------------------------------------------

def test_dualbranch_has_no_bias_terms(nets10):
    net = nets10["dualbranch"]
    assert not [n for n, _ in net.named_parameters() if n.endswith("bias")]
    for m in net.modules():
        assert getattr(m, "bias", None) is None, type(m)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert not m.affine
    # with no bias anywhere and fresh running statistics, silence maps exactly to the origin
    fresh = NETS.build("dualbranch").eval()
    zeros = tuple(torch.zeros(2, *s) for s in fresh.input_shapes)
    with torch.no_grad():
        assert torch.equal(fresh(*zeros), torch.zeros(2, 256))
    assert any(isinstance(m, ScaleBatchNorm) for m in net.modules())


def test_dualbranch_branches_are_separately_addressable(nets_small):
    net = nets_small["dualbranch"].eval()
    xs = net.example_inputs(3, seed=5)
    with torch.no_grad():
        a, b = net.forward_branches(*xs)
        full = net(*xs)
    assert a.shape == b.shape == (3, 128)
    torch.testing.assert_close(full, torch.cat([a, b], 1))
    perm = torch.tensor([2, 0, 1])
    swapped = net.combine(a, b[perm])  # feature exchange: spectrogram half from a partner
    torch.testing.assert_close(swapped[:, :128], a)
    torch.testing.assert_close(swapped[:, 128:], b[perm])
    # the spectrogram branch is invariant to a constant offset per frequency (temporal mean norm)
    spec, stft = xs
    with torch.no_grad():
        shifted = net.forward_branches(spec, stft + torch.rand(3, stft.shape[1], 1))[1]
    torch.testing.assert_close(shifted, b, rtol=1e-4, atol=1e-4)


def test_dualbranch_published_layout_options():
    """The published network's options: pre-activation blocks (asdkit layout), optional bin range,
    no temporal normalisation, SE ratio 16, and the spectrum branch's 'same' padding (ceil lengths),
    4 dense layers, no conv batch norm; shapes follow the geometry."""
    geo = ClipGeometry(duration=18.0)
    net = build_for_clip("dualbranch", geo, layout="asdkit", norm="affine", se_reduction=16, spectrum_dense=4,
                         spectrum_conv_norm=False, spectrum_padding="same")
    n = geo.n_samples // 2
    for _, s in ((256, 64), (64, 32), (16, 4)):
        n = -(-n // s)
    assert net.spectrum.out_len == n == 18
    assert sum(isinstance(m, nn.Linear) for m in net.spectrum.dense) == 5
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.spectrum.conv)
    assert net.spectrogram.map_size == (16, 18)  # 513 bins x 563 centred frames, unpadded stem
    assert all(m.affine for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    crop = build_for_clip("dualbranch", ClipGeometry(duration=10.0), layout="asdkit", norm="none",
                          se_reduction=16, temporal_norm=False, freq_bins=(13, 513))
    assert crop.spectrogram.freq_norm.num_features == 500 and crop.spectrogram.map_size == (16, 10)
    x = crop.example_inputs(2)
    with torch.no_grad():
        assert crop.eval()(*x).shape == (2, 256)
    with pytest.raises(ConfigError, match="freq_bins"):
        build_for_clip("dualbranch", geo, freq_bins=(10, 9000))
    with pytest.raises(ConfigError, match="layout"):
        build_for_clip("dualbranch", geo, layout="resnet")


@pytest.mark.parametrize("duration", [10.0, 12.0, 18.0])
def test_dualbranch_spectrum_lengths(duration):
    geo = ClipGeometry(duration=duration)
    net = build_for_clip("dualbranch", geo)
    n = geo.n_samples // 2
    for k, s in ((256, 64), (64, 32), (16, 4)):
        n = (n - k) // s + 1
    assert net.spectrum.out_len == n >= 1


def test_scale_batch_norm_normalises_without_shift():
    m = ScaleBatchNorm(6)
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    for shape in [(8, 6), (8, 6, 5), (8, 6, 3, 5)]:
        x = torch.randn(*shape) * 3 + 2
        y = m.train()(x)
        dims = [0, *range(2, len(shape))]
        torch.testing.assert_close(y.mean(dims), torch.zeros(6), atol=1e-5, rtol=0)
        torch.testing.assert_close(y.var(dims, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)


# ---- errors -----------------------------------------------------------------------------------

def test_bad_configuration_raises_config_error():
    with pytest.raises(ConfigError, match="activation"):
        NETS.build("mobilefacenet", activation="swishy")
    with pytest.raises(ConfigError, match="too small"):
        NETS.build("mobilefacenet", input_shape=(1, 0, 10))
    with pytest.raises(ConfigError, match="input_shape"):
        NETS.build("mobilenetv2", input_shape=(128,))
    with pytest.raises(ConfigError, match="too short"):
        NETS.build("dualbranch", spectrum_len=1000, stft_shape=(513, 10))
    with pytest.raises(ConfigError):
        NETS.build("tfgram", n_samples=4000, hop_length=16)
    with pytest.raises(ConfigError, match="unknown net"):
        NETS.build("vgg99")
    net = NETS.build("tfgram")
    with pytest.raises(ConfigError, match="built for length"):
        net.pool3(torch.zeros(1, 128, 100))


def test_input_kwargs_follow_geometry_overrides():
    assert input_kwargs("mobilefacenet", duration=12.0) == {"input_shape": (1, 128, 1 + 192000 // 512)}
    assert input_kwargs("dualbranch", duration=18.0, n_fft=2048) == {
        "spectrum_len": 144000, "stft_shape": (1025, 1 + 288000 // 512)}
    assert input_kwargs("autoencoder", n_mels=64) == {"input_dim": 320}
    with pytest.raises(ConfigError):
        input_kwargs("nope")


def test_resnet18_tfap_attention_weights_are_distributions(nets_small):
    net = nets_small["resnet18_tfap"].eval()
    with torch.no_grad():
        fmap = net.forward_features(net.example_inputs(3)[0])
        wt, wf = net.pool.weights(fmap)
    assert wt.shape == (3, fmap.shape[3]) and wf.shape == (3, fmap.shape[2])
    torch.testing.assert_close(wt.sum(-1), torch.ones(3))
    torch.testing.assert_close(wf.sum(-1), torch.ones(3))
    # pooled time vector is a convex combination: it lies within the per-frame min/max
    pooled = net.pool(fmap)[:, : fmap.shape[1]]
    per_frame = fmap.mean(2)
    assert (pooled <= per_frame.amax(-1) + 1e-5).all() and (pooled >= per_frame.amin(-1) - 1e-5).all()
