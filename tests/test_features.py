"""Feature front-ends: librosa parity, exact definitions, shapes, export path and errors.

librosa is the test oracle only (never imported by src/). Real clips come through the
``shared_data`` fixture; generated signals cover the rest.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from auscult.errors import ConfigError
from auscult.features import (
    FRONTENDS,
    ClipSpectrum,
    FeatureConfig,
    FeatureInputError,
    FrameStack,
    LinearSpectrogram,
    LogMel,
    Spectrogram,
    build_frontend,
    hann_window,
    mel_center_frequencies,
    mel_filterbank,
    n_frames,
    output_shape,
)

librosa = pytest.importorskip("librosa")

TOL_DB = 1e-3


def librosa_logmel(y: np.ndarray, c: FeatureConfig) -> np.ndarray:
    """The reference: librosa.feature.melspectrogram + 10*log10(max(x, eps))."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
        window="hann", center=c.center, pad_mode=c.pad_mode, power=c.power, n_mels=c.n_mels,
        fmin=c.fmin, fmax=c.fmax, htk=(c.mel_scale == "htk"), norm=c.norm,
    )
    return librosa.power_to_db(mel, ref=1.0, amin=c.eps, top_db=None)


def ours(module: torch.nn.Module, y: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(y))).numpy()


def generated_clips(sr: int = 16000, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Sines, a chirp, a quiet noise floor and an impulse train: wide dynamic range."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    sines = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3150.5 * t)
    chirp = 0.3 * np.sin(2 * np.pi * (50 * t + (sr / 2 - 100) / (2 * seconds) * t**2))
    noise = 1e-3 * rng.standard_normal(t.size)
    clicks = np.zeros(t.size)
    clicks[:: sr // 7] = 0.9
    return np.stack([sines + noise, chirp, noise, clicks + noise]).astype(np.float32)


def recorded_like_clips(sr: int = 16000, seconds: float = 3.0, seed: int = 1) -> np.ndarray:
    """Machine-like sounds with a broadband floor ~40 dB down, as real recordings have:
    harmonic hum, amplitude-modulated noise, a chirp, clicks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    hum = sum(0.2 / k * np.sin(2 * np.pi * 120 * k * t + k) for k in range(1, 9))
    noise = 0.02 * rng.standard_normal((4, t.size))
    swell = 1 + 0.5 * np.sin(2 * np.pi * 0.7 * t)
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + 1200 * t**2))
    clicks = np.zeros(t.size)
    clicks[:: sr // 5] = 0.5
    return np.stack([hum + noise[0], swell * noise[1], chirp + noise[2], clicks + noise[3]]).astype(np.float32)


PARITY_CONFIGS = [
    FeatureConfig(),  # the DCASE setting: 1024 / 512 / 128, power 2, Slaney
    FeatureConfig(power=1.0, mel_scale="htk", norm=None),
    FeatureConfig(power=1.0, mel_scale="slaney", norm="slaney", n_mels=64, fmin=50.0, fmax=7800.0),
    FeatureConfig(n_fft=2048, hop_length=256, n_mels=256, mel_scale="htk", pad_mode="reflect"),
    FeatureConfig(n_fft=512, win_length=400, hop_length=160, n_mels=40, fmin=20.0),
    FeatureConfig(stft_impl="conv", pad_mode="reflect", power=1.0),
]
PARITY_IDS = ["default", "p1-htk-nonorm", "p1-64-band", "2048-256-htk-reflect", "win400", "conv-reflect-p1"]


@pytest.fixture(scope="module")
def real_clips(shared_data) -> list[np.ndarray]:
    """Two gearbox clips (10 s) and a 2023 toy clip (can be 11-12 s), float32 mono."""
    gear = sorted((shared_data / "dcase2021-gearbox-s00").rglob("*.wav"))
    toy = sorted((shared_data / "dcase2023-mini").rglob("ToyTrain/**/*.wav"))
    paths = [p for p in gear if "anomaly" in p.name][:1] + [p for p in gear if "normal" in p.name][:1] + toy[:1]
    assert len(paths) >= 3, "expected real clips in the shared data folder"
    clips = []
    for p in paths:
        y, sr = sf.read(p, dtype="float32", always_2d=True)
        assert sr == 16000
        clips.append(np.ascontiguousarray(y.mean(axis=1)))
    return clips


@pytest.mark.shared_data
@pytest.mark.parametrize("config", PARITY_CONFIGS, ids=PARITY_IDS)
def test_logmel_matches_librosa_on_real_audio(real_clips, config):
    module = LogMel(config)
    for y in real_clips:
        ref = librosa_logmel(y, config)
        got = ours(module, y)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < TOL_DB
    if config != FeatureConfig():
        return
    # a batch of equal-length real clips gives the same as clip by clip
    n = min(len(y) for y in real_clips)
    batch = np.stack([y[:n] for y in real_clips])
    np.testing.assert_allclose(ours(module, batch), librosa_logmel(batch, config), atol=TOL_DB, rtol=0)


@pytest.mark.parametrize("config", PARITY_CONFIGS, ids=PARITY_IDS)
def test_logmel_matches_librosa_on_generated_audio(config):
    clips = recorded_like_clips(seconds=1.5)
    ref = librosa_logmel(clips, config)
    for variant in (config, config.replace(stft_precision="float32"), config.replace(stft_impl="conv")):
        got = ours(LogMel(variant), clips)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < TOL_DB, variant
    # float64 input is computed in float64 and still matches
    got64 = ours(LogMel(config), clips.astype(np.float64))
    assert got64.dtype == np.float64 and np.abs(got64 - ref).max() < TOL_DB


@pytest.mark.parametrize("config", [c for c in PARITY_CONFIGS if c.stft_impl == "torch"],
                         ids=[i for i, c in zip(PARITY_IDS, PARITY_CONFIGS) if c.stft_impl == "torch"])
def test_float64_matches_librosa_over_a_huge_dynamic_range(config):
    """Pure tones and a noiseless chirp put mel bands 120+ dB below the frame's peak (more than
    16-bit audio can hold); ``stft_precision="float64"`` still agrees with librosa there, while
    the float32 default is off in such bands (why the option exists)."""
    assert FeatureConfig().stft_precision == "float32"
    clips = generated_clips(seconds=1.5)
    ref = librosa_logmel(clips, config)
    got = ours(LogMel(config.replace(stft_precision="float64")), clips)
    assert np.abs(got - ref).max() < TOL_DB
    assert np.abs(ours(LogMel(config.replace(stft_precision="float32")), clips) - ref).max() > TOL_DB


@pytest.mark.parametrize("mel_scale", ["slaney", "htk"])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_filterbank_equals_librosa(mel_scale, norm):
    for sr, n_fft, n_mels, fmin, fmax in [(16000, 1024, 128, 0.0, None), (22050, 2048, 80, 30.0, 9000.0)]:
        c = FeatureConfig(sample_rate=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                          mel_scale=mel_scale, norm=norm)
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                  htk=(mel_scale == "htk"), norm=norm, dtype=np.float64)
        fb = mel_filterbank(c)
        assert fb.shape == (n_mels, n_fft // 2 + 1)
        np.testing.assert_allclose(fb, ref, rtol=1e-9, atol=1e-12)
        assert not fb.flags.writeable and mel_filterbank(c) is fb  # cached, read-only


def test_batched_and_single_inputs_agree():
    clips = generated_clips(seconds=2.0)
    module = LogMel()
    batch = ours(module, clips)
    assert batch.shape[0] == len(clips)
    for i, y in enumerate(clips):
        single = ours(module, y)  # [T] -> [n_mels, frames]
        assert single.shape == batch.shape[1:]
        np.testing.assert_allclose(single, batch[i], atol=1e-4)
    channel = ours(module, clips[:, None, :])  # [B, 1, T]
    np.testing.assert_allclose(channel, batch, atol=1e-4)
    frozen = clips.copy()
    frozen.setflags(write=False)  # e.g. a read-only memory-mapped cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(module(frozen).numpy(), batch)


@pytest.mark.parametrize("threads,pool", [(1, False), (2, False), (2, True)])
def test_cpu_fast_path_equals_the_plain_path(monkeypatch, threads, pool):
    """The chunked CPU path (serial or on a thread pool) with the banded mel product computes
    the same numbers as one plain pass with a dense matmul, and restores torch's thread count."""
    from auscult.features import frontends

    monkeypatch.setattr(frontends, "CPU_CHUNK_SAMPLES", 40000)  # 2 s clips: one clip per chunk
    monkeypatch.setattr(frontends, "CPU_THREAD_POOL", pool)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        clips = torch.from_numpy(recorded_like_clips(seconds=2.0))
        calls = []
        module_forward = LogMel._forward
        monkeypatch.setattr(LogMel, "_forward",
                            lambda self, x: calls.append((len(x), torch.get_num_threads())) or module_forward(self, x))
        module = LogMel(FeatureConfig(n_mels=96, mel_scale="htk"))
        with torch.no_grad():
            fast = module(clips)
        assert torch.get_num_threads() == threads
        plain_input = clips.clone().requires_grad_(True)  # grad mode takes one pass
        plain = module(plain_input)
        # chunks run with one intra-op thread each
        assert calls == [(1, 1)] * 4 + [(4, threads)]
        np.testing.assert_allclose(fast.numpy(), plain.detach().numpy(), atol=1e-4)
        dense = 10 * torch.log10(torch.clamp(
            module.filterbank @ module.spectrogram(clips), min=module.config.eps))
        np.testing.assert_allclose(fast.numpy(), dense.numpy(), atol=1e-4)
        plain.sum().backward()  # and it is differentiable
        assert plain_input.grad is not None and torch.isfinite(plain_input.grad).all()
    finally:
        torch.set_num_threads(old_threads)


@pytest.mark.parametrize("changes", [
    {}, {"pad_mode": "reflect"}, {"center": False}, {"win_length": 700, "hop_length": 160},
    {"stft_precision": "float64"}, {"power": 1.0}, {"n_fft": 2048, "hop_length": 256},
])
def test_lean_stft_equals_torch_stft(changes):
    """The CPU framing + rfft path gives |torch.stft|**power bin for bin (in float64)."""
    c = FeatureConfig(**changes)
    y = torch.from_numpy(recorded_like_clips(seconds=1.0)).double()
    spec = Spectrogram(c)
    got = spec.frame_spectrum(y)
    window = hann_window(c, torch.float64)
    ref = torch.stft(y, c.n_fft, c.hop_length, window=window, center=c.center, pad_mode=c.pad_mode,
                     return_complex=True).abs() ** c.power
    assert got.shape == ref.transpose(1, 2).shape
    torch.testing.assert_close(got, ref.transpose(1, 2), rtol=1e-9, atol=1e-9 * ref.max().item())
    torch.testing.assert_close(spec(y), ref, rtol=1e-9, atol=1e-9 * ref.max().item())


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize("win_length", [None, 800])
def test_conv_stft_equals_torch_stft(pad_mode, win_length):
    clips = torch.from_numpy(recorded_like_clips(seconds=1.0))
    base = FeatureConfig(pad_mode=pad_mode, win_length=win_length, n_fft=1024, hop_length=320)
    conv = base.replace(stft_impl="conv")
    with torch.no_grad():
        a, b = LogMel(base)(clips), LogMel(conv)(clips)
        assert (a - b).abs().max().item() < TOL_DB
        la, lb = LinearSpectrogram(base)(clips), LinearSpectrogram(conv)(clips)
    scale = la.abs().max().item()
    assert (la - lb).abs().max().item() < 1e-5 * scale


def test_onnx_export_of_conv_logmel(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    config = FeatureConfig(stft_impl="conv", pad_mode="reflect", n_mels=64, hop_length=256)
    module = LogMel(config).eval()
    example = torch.from_numpy(recorded_like_clips(seconds=1.0))
    path = tmp_path / "logmel.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=["wave"], output_names=["logmel"],
                          dynamic_axes={"wave": {0: "batch", 1: "samples"}}, opset_version=17, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other = recorded_like_clips(seconds=1.5, seed=3)[:2]  # another batch size and length
    for wave in (example.numpy(), other):
        (got,) = session.run(None, {"wave": wave})
        ref = librosa_logmel(wave, config)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < TOL_DB


def test_inverted_filterbank_is_the_mirror_image():
    for fmin, fmax in [(0.0, None), (100.0, 6000.0)]:
        c = FeatureConfig(n_fft=1024, n_mels=64, fmin=fmin, fmax=fmax)
        inv = mel_filterbank(c.replace(inverted=True))
        nyq = c.sample_rate / 2
        mirrored_range = c.replace(fmin=nyq - c.mel_fmax, fmax=nyq - c.fmin)
        np.testing.assert_array_equal(inv, mel_filterbank(mirrored_range)[::-1, ::-1])
        # the support stays inside [fmin, fmax]
        freqs = np.arange(c.n_freqs) * c.sample_rate / c.n_fft
        support = freqs[inv.max(axis=0) > 0]
        assert support.min() >= c.fmin and support.max() <= c.mel_fmax
    # resolution: band centres ascend; spacing shrinks with frequency (opposite of mel)
    std = mel_center_frequencies(FeatureConfig(n_mels=64))
    inv_c = mel_center_frequencies(FeatureConfig(n_mels=64, inverted=True))
    np.testing.assert_allclose(inv_c, 8000.0 - std[::-1])
    assert np.all(np.diff(inv_c) > 0) and np.all(np.diff(np.diff(inv_c)) < 1e-9)
    assert np.all(np.diff(np.diff(std)) > -1e-9)


def test_inverted_logmel_of_x_is_logmel_of_modulated_x_reversed():
    """(-1)^n x moves every frequency f to sr/2 - f, so inverted(x) == flip(standard((-1)^n x))."""
    clips = generated_clips(seconds=2.0)
    sign = np.where(np.arange(clips.shape[1]) % 2 == 0, 1.0, -1.0).astype(np.float32)
    config = FeatureConfig(n_mels=80, hop_length=256, stft_precision="float64")  # wide range
    inverted = ours(build_frontend("inverted_logmel", config), clips)
    standard = ours(LogMel(config), clips * sign)
    np.testing.assert_allclose(inverted, standard[:, ::-1, :], atol=1e-3)
    # and it differs from the plain log-mel of x (the test above is not vacuous)
    assert np.abs(inverted - ours(LogMel(config), clips)).max() > 1.0


def test_dcase_shape_is_derived_from_the_config():
    c = FeatureConfig(sample_rate=16000, n_fft=1024, hop_length=512, n_mels=128)
    n = 10 * c.sample_rate
    expected = (c.n_mels, 1 + n // c.hop_length)
    assert expected == (128, 313)
    assert output_shape(c, n) == expected == (c.n_mels, n_frames(n, c.hop_length))
    assert tuple(LogMel(c)(torch.zeros(2, n)).shape) == (2, *expected)


@pytest.mark.parametrize("name", FRONTENDS.names())
@pytest.mark.parametrize("n_samples", [16000 * 3, 16000 * 3 + 77, 12345])
def test_every_frontend_shape_matches_output_shape(name, n_samples):
    c = FeatureConfig(n_mels=64, hop_length=320)
    module = build_frontend(name, c)
    wave = torch.randn(3, n_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        out = module(wave)
    assert tuple(out.shape) == (wave.shape[0], *output_shape(c, n_samples, name))
    assert torch.isfinite(out).all() and out.dtype == torch.float32
    assert module.state_dict() == {}  # constants are non-persistent buffers


def test_non_centered_frames():
    c = FeatureConfig(center=False, n_fft=1024, hop_length=256)
    y = generated_clips(seconds=1.0)
    got = ours(LogMel(c.replace(stft_precision="float64")), y)
    assert got.shape[-1] == n_frames(y.shape[1], 256, n_fft=1024, center=False) == 1 + (16000 - 1024) // 256
    assert np.abs(got - librosa_logmel(y, c)).max() < TOL_DB
    real = recorded_like_clips(seconds=1.0)
    assert np.abs(ours(LogMel(c), real) - librosa_logmel(real, c)).max() < TOL_DB
    with pytest.raises(FeatureInputError, match="shorter than one frame"):
        LogMel(c)(torch.zeros(1, 1000))


def test_linear_spectrogram_and_temporal_mean_normalisation():
    y = generated_clips(seconds=2.0)
    c = FeatureConfig(n_fft=512, hop_length=128, stft_precision="float64")  # wide-range clips
    ref = np.abs(librosa.stft(y, n_fft=512, hop_length=128, window="hann", center=True, pad_mode="constant"))
    mag = ours(LinearSpectrogram(c), y)
    np.testing.assert_allclose(mag, ref, atol=1e-5 * ref.max(), rtol=1e-4)
    normed = ours(LinearSpectrogram(c, mean_norm=True), y)
    np.testing.assert_allclose(normed, ref - ref.mean(axis=-1, keepdims=True), atol=1e-4 * ref.max())
    assert np.abs(normed.mean(axis=-1)).max() < 1e-5 * ref.max()
    power = ours(LinearSpectrogram(c, power=None), y)  # None: config.power (2.0)
    np.testing.assert_allclose(power, ref**2, atol=1e-5 * (ref**2).max(), rtol=1e-3)
    logged = ours(LinearSpectrogram(c, log=True, mean_norm=True), y)
    ref_db = 10 * np.log10(np.maximum(ref, c.eps))
    np.testing.assert_allclose(logged, ref_db - ref_db.mean(axis=-1, keepdims=True), atol=1e-3)


def test_clip_spectrum_is_rfft_magnitude_of_the_whole_clip():
    y = generated_clips(seconds=1.0)[:, :9999]  # odd length
    got = ours(ClipSpectrum(), y)
    ref = np.abs(np.fft.rfft(y.astype(np.float64), axis=-1))
    assert got.shape == (4, 9999 // 2 + 1) == (4, *output_shape(FeatureConfig(), 9999, "spectrum"))
    np.testing.assert_allclose(got, ref, atol=1e-5 * ref.max(), rtol=1e-4)
    halved = ours(ClipSpectrum(keep_nyquist=False), y[:, :9998])  # even length: Nyquist bin dropped
    assert halved.shape == (4, 4999)
    np.testing.assert_allclose(halved, np.abs(np.fft.rfft(y[:, :9998].astype(np.float64)))[:, :4999],
                               atol=1e-5 * ref.max(), rtol=1e-4)
    # pure tones put bins 150 dB below the peak: the FFT of float32 input runs in float64,
    # whatever stft_precision says (per-bin float32 rounding is visible even on recordings)
    for config in (FeatureConfig(), FeatureConfig(stft_precision="float32")):
        np.testing.assert_allclose(ours(ClipSpectrum(config, power=2.0, log=True), y),
                                   10 * np.log10(np.maximum(ref**2, 1e-10)), atol=1e-3)


def test_frame_stack_is_time_major_like_the_dcase_baseline():
    c = FeatureConfig()
    y = generated_clips(seconds=10.0)[:2]
    stack = ours(FrameStack(c, context=5), y)
    logmel = ours(LogMel(c), y)
    frames = logmel.shape[-1]
    assert stack.shape == (2, frames - 4, 640) == (2, *output_shape(c, y.shape[1], "framestack"))
    assert stack.shape[1:] == (309, 640)
    # the baseline's definition, written out: block t of vector j is log-mel frame j + t
    for j in (0, 1, 150, frames - 5):
        expected = np.concatenate([logmel[:, :, j + t] for t in range(5)], axis=-1)
        np.testing.assert_array_equal(stack[:, j], expected)
    with pytest.raises(FeatureInputError, match="fewer than the context"):
        FrameStack(c, context=5)(torch.zeros(1, 3 * 512))
    with pytest.raises(ConfigError, match="context"):
        FrameStack(c, context=0)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"sample_rate": 0}, "sample_rate"), ({"n_fft": 1}, "n_fft"), ({"hop_length": -3}, "hop_length"),
        ({"n_mels": 2.5}, "n_mels"), ({"win_length": 2048}, "win_length"), ({"fmin": -1.0}, "fmin"),
        ({"fmax": 9000.0}, "fmax"), ({"fmin": 5000.0, "fmax": 4000.0}, "fmin"), ({"power": 0}, "power"),
        ({"mel_scale": "bark"}, "mel_scale"), ({"norm": "l2"}, "norm"), ({"eps": 0.0}, "eps"),
        ({"pad_mode": "circular"}, "pad_mode"), ({"stft_impl": "fft"}, "stft_impl"),
        ({"inverted": "yes"}, "inverted"), ({"inverted": True, "n_fft": 1023}, "n_fft"),
        ({"center": 1}, "center"), ({"hop_length": True}, "hop_length"),
    ],
)
def test_bad_config_raises_config_error_naming_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        FeatureConfig(**changes)


def test_config_round_trip_and_unknown_keys():
    c = FeatureConfig(n_mels=64, fmax=7000.0, inverted=True)
    assert FeatureConfig.from_dict(c.to_dict()) == c
    assert set(c.to_dict()) == {f.name for f in dataclasses.fields(FeatureConfig)}
    with pytest.raises(ConfigError, match="n_mel"):
        FeatureConfig.from_dict({"n_mel": 64})
    with pytest.raises(ConfigError, match="power"):
        LinearSpectrogram(c, power=0.0)
    assert n_frames(np.int64(160000), np.int64(512)) == 313
    with pytest.raises(ConfigError, match="unknown frontend 'mfcc'"):
        build_frontend("mfcc")
    assert isinstance(build_frontend("logmel", {"n_mels": 32}), LogMel)


@pytest.mark.parametrize(
    "wave, match",
    [
        (torch.zeros(2, 1000, dtype=torch.int16), "convert it to float"),
        (torch.zeros(2, 8, 1000), "8 channels"),
        (torch.zeros(1, 1, 1, 1000), "expected"),
        (torch.zeros(2, 0), "no samples"),
        ([0.0, 1.0], "torch.Tensor or numpy"),
    ],
)
def test_bad_input_raises_feature_input_error(wave, match):
    with pytest.raises(FeatureInputError, match=match):
        LogMel()(wave)


def test_reflect_padding_needs_half_a_frame():
    with pytest.raises(FeatureInputError, match="reflect"):
        LogMel(FeatureConfig(pad_mode="reflect"))(torch.zeros(1, 300))
    short = ours(LogMel(), np.zeros((1, 300), np.float32))  # zero padding accepts any length
    assert short.shape == (1, 128, 1) and np.all(short == -100.0)


def test_empty_mel_bands_warn():
    with pytest.warns(UserWarning, match="cover no STFT bin"):
        mel_filterbank(FeatureConfig(n_fft=256, n_mels=200, sample_rate=16000))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_device_and_buffers_follow_to(device):
    clips = torch.from_numpy(recorded_like_clips(seconds=1.0))
    module = LogMel(FeatureConfig(n_mels=64)).to(device)
    assert module.filterbank.device.type == device and module.state_dict() == {}
    with torch.no_grad():
        out = module(clips.to(device))
    assert out.device.type == device
    ref = librosa_logmel(clips.numpy(), FeatureConfig(n_mels=64))
    assert np.abs(out.cpu().numpy() - ref).max() < TOL_DB
