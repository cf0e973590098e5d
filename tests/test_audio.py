"""auscult.audio: decoding, channel/length policies, resampling and every bad-input case."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf

from auscult.audio import (
    AudioConfig,
    ResampleWarning,
    SilentAudioWarning,
    apply_length,
    audio_info,
    decode_audio,
    load_audio,
)
from auscult.errors import (
    AudioDecodeError,
    AudioError,
    AudioFileNotFoundError,
    ChannelCountError,
    ConfigError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
)


def _write(path, x, sr=16000, **kw):
    sf.write(path, x, sr, **kw)
    return path


@pytest.fixture
def tone(tmp_path):
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return _write(tmp_path / "tone.wav", x, sr, subtype="FLOAT"), x


# ------------------------------------------------------------------ happy paths
def test_load_keep_is_exact_float32_mono(tone):
    path, x = tone
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    np.testing.assert_array_equal(y, x)


def test_flac_and_pcm16(tmp_path):
    x = (np.random.default_rng(0).uniform(-0.5, 0.5, 3000)).astype(np.float32)
    for name, sub in (("a.flac", "PCM_16"), ("b.wav", "PCM_16"), ("c.wav", "PCM_24")):
        p = _write(tmp_path / name, x, subtype=sub)
        y = load_audio(p)
        np.testing.assert_allclose(y, x, atol=2 ** -14)


def test_channel_policy(tmp_path):
    x = np.stack([np.full(100, 0.1), np.full(100, 0.3), np.full(100, -0.2)], axis=1).astype(np.float32)
    p = _write(tmp_path / "three.wav", x, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(p, AudioConfig(channel="mean")), np.full(100, 0.2 / 3), rtol=1e-6)
    np.testing.assert_allclose(load_audio(p, AudioConfig(channel=1)), np.full(100, 0.3), rtol=1e-6)
    with pytest.raises(ConfigError, match="three.wav"):
        load_audio(p, AudioConfig(channel=3))


def test_length_policies(tmp_path):
    x = np.arange(1, 11, dtype=np.float32) / 100  # 10 samples
    p = _write(tmp_path / "short.wav", x, sr=10, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(p, AudioConfig(sample_rate=10, length="tile", duration=2.5)),
                                  np.concatenate([x, x, x[:5]]))
    np.testing.assert_array_equal(load_audio(p, AudioConfig(sample_rate=10, length="crop", duration=1.5)),
                                  np.concatenate([x, np.zeros(5, np.float32)]))
    np.testing.assert_array_equal(load_audio(p, AudioConfig(sample_rate=10, length="crop", duration=0.4)), x[:4])
    np.testing.assert_array_equal(
        load_audio(p, AudioConfig(sample_rate=10, length="crop", duration=0.4, offset="center")), x[3:7])
    np.testing.assert_array_equal(load_audio(p, AudioConfig(sample_rate=10, length="tile", duration=0.4)), x[:4])


def test_random_crop_seeded_and_covers_offsets():
    x = np.arange(100, dtype=np.float32)
    cfg = AudioConfig(sample_rate=10, length="crop", duration=1.0, offset="random", seed=3)
    a, b = apply_length(x, cfg), apply_length(x, cfg)
    np.testing.assert_array_equal(a, b)  # same seed, same crop
    rng = np.random.default_rng(0)
    starts = {int(apply_length(x, cfg, rng=rng)[0]) for _ in range(300)}
    assert min(starts) >= 0 and max(starts) <= 90 and len(starts) > 50
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    assert [apply_length(x, cfg, rng=r1)[0] for _ in range(5)] == [apply_length(x, cfg, rng=r2)[0] for _ in range(5)]


def test_resample_polyphase_with_warning(tmp_path):
    sr_in = 48000
    t = np.arange(sr_in) / sr_in
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    p = _write(tmp_path / "48k.wav", x, sr_in, subtype="FLOAT")
    with pytest.warns(ResampleWarning, match="48000 Hz to 16000 Hz"):
        y = load_audio(p, AudioConfig(sample_rate=16000))
    assert y.shape == (16000,) and y.dtype == np.float32
    ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    # interior samples match the ideal 1 kHz tone (edges carry the filter's transient)
    assert np.abs(y[200:-200] - ref[200:-200]).max() < 1e-2
    with pytest.raises(SampleRateError, match="48k.wav"):
        load_audio(p, AudioConfig(sample_rate=16000, resample=False))


def test_odd_rate_ratio(tmp_path):
    p = _write(tmp_path / "44k.wav", np.zeros(44100, np.float32) + 0.1, 44100, subtype="FLOAT")
    with pytest.warns(ResampleWarning):
        y = load_audio(p, AudioConfig(sample_rate=16000))
    assert y.shape == (16000,)


def test_real_wave_format_extensible_8ch(shared_data):
    p = shared_data / "mimii-raw-8ch" / "fan_normal.wav"
    info = audio_info(p)
    assert info["channels"] == 8 and info["format"] == "WAVEX"
    raw, sr = sf.read(p, dtype="float32", always_2d=True)
    y = load_audio(p)
    assert y.shape == (info["frames"],)
    np.testing.assert_allclose(y, raw.mean(axis=1), atol=1e-7)
    np.testing.assert_array_equal(load_audio(p, AudioConfig(channel=7)), raw[:, 7])
    z = load_audio(p, AudioConfig(length="tile", duration=3.0))
    assert z.shape == (3 * sr,)


def test_real_long_2023_clip_kept_whole(shared_data):
    # some 2023 toy clips are longer than 10 s: "keep" must not cut them
    files = sorted((shared_data / "dcase2023-mini").rglob("*.wav"))
    lengths = {p: sf.info(p).frames for p in files}
    longest = max(lengths, key=lengths.get)
    assert load_audio(longest).shape == (lengths[longest],)


# ------------------------------------------------------------------ bad input
def _expect(exc_type, path, **kw):
    with pytest.raises(exc_type) as ei:
        load_audio(path, **kw)
    assert isinstance(ei.value, AudioError)
    assert ei.value.path == path
    assert str(path) in str(ei.value)
    return ei.value


def test_missing_file(tmp_path):
    e = _expect(AudioFileNotFoundError, tmp_path / "nope.wav")
    assert isinstance(e, FileNotFoundError)


def test_text_saved_as_wav(tmp_path):
    p = tmp_path / "text.wav"
    p.write_text("this is a text file, not audio\n" * 10)
    _expect(AudioDecodeError, p)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "zero.wav"
    p.write_bytes(b"")
    _expect(AudioDecodeError, p)


def test_corrupt_header(tmp_path, tone):
    path, _ = tone
    p = tmp_path / "corrupt.wav"
    b = bytearray(path.read_bytes())
    b[12:36] = b"\xff" * 24  # clobber the fmt chunk
    p.write_bytes(bytes(b))
    _expect(AudioDecodeError, p)


def test_truncated_wav(tmp_path, tone):
    path, _ = tone
    p = tmp_path / "truncated.wav"
    b = path.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    e = _expect(AudioDecodeError, p)
    assert "truncated" in str(e)


def test_truncated_flac(tmp_path):
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 16000).astype(np.float32)
    full = _write(tmp_path / "full.flac", x)
    p = tmp_path / "cut.flac"
    p.write_bytes(full.read_bytes()[:100])
    _expect(AudioDecodeError, p)


def test_zero_length(tmp_path):
    p = _write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    _expect(EmptyAudioError, p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = np.full(100, 0.1, np.float32)
    x[50] = bad
    p = _write(tmp_path / "nonfinite.wav", x, subtype="FLOAT")
    _expect(NonFiniteAudioError, p)
    x2 = np.stack([np.full(100, 0.1, np.float32), x], axis=1)
    p2 = _write(tmp_path / "nonfinite2.wav", x2, subtype="FLOAT")
    _expect(NonFiniteAudioError, p2)  # NaN in channel 1, mean policy
    _expect(NonFiniteAudioError, p2, config=AudioConfig(channel=1))
    np.testing.assert_array_equal(load_audio(p2, AudioConfig(channel=0)), np.full(100, 0.1, np.float32))


def test_silent_clip_warns(tmp_path):
    p = _write(tmp_path / "silent.wav", np.zeros(100, np.float32))
    with pytest.warns(SilentAudioWarning, match="silent.wav"):
        y = load_audio(p)
    assert y.shape == (100,)


def test_folder_is_not_audio(tmp_path):
    d = tmp_path / "folder.wav"
    d.mkdir()
    _expect(AudioDecodeError, d)


def test_good_file_no_warnings(tone):
    path, _ = tone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode_audio(path)


# ------------------------------------------------------------------ config validation
@pytest.mark.parametrize("kw", [
    dict(sample_rate=0), dict(sample_rate=16000.5), dict(sample_rate=True), dict(channel="left"),
    dict(channel=-1), dict(channel="Near"), dict(channel="stereo"), dict(channel=True), dict(length="pad"), dict(length="crop"), dict(length="tile", duration=0),
    dict(length="tile", duration=float("nan")), dict(length="keep", duration=10.0),
    dict(offset="end"), dict(resample="yes"), dict(seed=1.5),
])
def test_config_validation(kw):
    with pytest.raises(ConfigError):
        AudioConfig(**kw)


def test_config_from_dict_and_samples():
    cfg = AudioConfig.from_dict({"sample_rate": 16000, "length": "tile", "duration": 18.0})
    assert cfg.n_samples == 18 * 16000
    assert AudioConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown audio option"):
        AudioConfig.from_dict({"samplerate": 16000})


# ------------------------------------------------------------------ DCASE 2026 channel policies
@pytest.fixture
def stereo(tmp_path):
    """A two-channel clip whose channels differ: a 300 Hz tone (near) and a 1 kHz tone at another level (far)."""
    sr = 16000
    t = np.arange(4000) / sr
    near = (0.4 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    far = (0.1 * np.sin(2 * np.pi * 1000 * t + 0.5)).astype(np.float32)
    return _write(tmp_path / "section_00_source_test_normal_0000_noise_1.wav", np.stack([near, far], 1),
                  sr, subtype="FLOAT"), near, far


def test_2026_policies_pick_the_right_channel(stereo):
    p, near, far = stereo
    np.testing.assert_array_equal(load_audio(p, AudioConfig(channel="near")), near)
    np.testing.assert_array_equal(load_audio(p, AudioConfig(channel="far")), far)
    np.testing.assert_array_equal(load_audio(p, AudioConfig(channel=0)), near)  # near = channel 0 (left)
    both = load_audio(p, AudioConfig(channel="both"))
    assert both.shape == (2, near.size) and both.dtype == np.float32
    np.testing.assert_array_equal(both[0], near)
    np.testing.assert_array_equal(both[1], far)
    mean = (near.astype(np.float64) + far) / 2
    np.testing.assert_allclose(load_audio(p, AudioConfig(channel="mean")), mean, atol=1e-7)
    # a bare path has no dataset year: "auto" reads as "mean"
    np.testing.assert_array_equal(load_audio(p), load_audio(p, AudioConfig(channel="mean")))


def test_auto_resolves_per_year():
    cfg = AudioConfig(length="tile", duration=1.0)
    assert cfg.channel == "auto"
    assert cfg.for_year(2026).channel == "near"
    assert cfg.for_year(2026).n_samples == cfg.n_samples  # only the channel changes
    for y in (2020, 2023, 2025, None):
        assert cfg.for_year(y).channel == "mean"
    for explicit in ("mean", "far", "both", 1):
        assert AudioConfig(channel=explicit).for_year(2026).channel == explicit
    # cache keys: "auto" on a path decodes like "mean" (existing cache entries stay valid)
    assert AudioConfig().decode_key() == AudioConfig(channel="mean").decode_key()
    assert len({AudioConfig(channel=c).decode_key() for c in ("mean", "near", "far", "both", 0)}) == 5
    assert AudioConfig(channel="both").n_channels == 2 and AudioConfig(channel="near").n_channels == 1
    assert AudioConfig.from_dict({"channel": "far"}).channel == "far"


@pytest.mark.parametrize("policy", ["near", "far", "both"])
def test_2026_policies_need_two_channels(tmp_path, policy):
    mono = _write(tmp_path / "section_00_source_train_normal_0000_noise_1.wav", np.full(100, 0.1, np.float32))
    with pytest.raises(ChannelCountError, match="section_00_source_train_normal_0000_noise_1.wav") as ei:
        load_audio(mono, AudioConfig(channel=policy))
    assert "mono" in str(ei.value) and isinstance(ei.value, AudioError)
    three = _write(tmp_path / "three.wav", np.zeros((100, 3), np.float32) + 0.1)
    with pytest.raises(ChannelCountError, match="3 channels"):
        load_audio(three, AudioConfig(channel=policy))


def test_both_keeps_channels_aligned_under_length_policies(stereo):
    p, near, far = stereo
    n = near.size
    x = np.stack([near, far])
    for kw in (dict(length="crop", duration=0.1), dict(length="crop", duration=0.5),
               dict(length="tile", duration=0.6), dict(length="crop", duration=0.1, offset="center")):
        cfg = AudioConfig(channel="both", **kw)
        y = load_audio(p, cfg)
        assert y.shape == (2, cfg.n_samples)
        for ch in range(2):  # each channel equals the mono length policy applied to it alone
            np.testing.assert_array_equal(y[ch], apply_length(x[ch], AudioConfig(**kw)))
    # a random crop takes one offset for both channels: the one a mono crop draws from the same stream
    cfg = AudioConfig(channel="both", length="crop", duration=0.05, offset="random")
    mono = AudioConfig(length="crop", duration=0.05, offset="random")
    assert n > cfg.n_samples
    for seed in range(5):
        y = apply_length(x, cfg, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(y[0], apply_length(near, mono, rng=np.random.default_rng(seed)))
        np.testing.assert_array_equal(y[1], apply_length(far, mono, rng=np.random.default_rng(seed)))
    starts = {int(np.flatnonzero(near == apply_length(x, cfg, rng=np.random.default_rng(s))[0, 0])[0])
              for s in range(20)}
    assert len(starts) > 5  # the offset does vary


def test_both_resamples_each_channel(tmp_path):
    sr_in = 48000
    t = np.arange(sr_in // 2) / sr_in
    x = np.stack([0.5 * np.sin(2 * np.pi * 500 * t), 0.2 * np.sin(2 * np.pi * 1500 * t)], 1).astype(np.float32)
    p = _write(tmp_path / "48k.wav", x, sr_in, subtype="FLOAT")
    with pytest.warns(ResampleWarning):
        y = load_audio(p, AudioConfig(channel="both"))
    with pytest.warns(ResampleWarning):
        far = load_audio(p, AudioConfig(channel="far"))
    assert y.shape == (2, sr_in // 6)
    np.testing.assert_allclose(y[1], far, atol=1e-6)
    ref = 0.2 * np.sin(2 * np.pi * 1500 * np.arange(y.shape[1]) / 16000)
    assert np.abs(y[1, 200:-200] - ref[200:-200]).max() < 1e-2


def test_non_finite_with_2026_policies(tmp_path):
    x = np.stack([np.full(100, 0.1, np.float32), np.full(100, 0.2, np.float32)], 1)
    x[10, 1] = np.nan
    p = _write(tmp_path / "nan_far.wav", x, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(p, AudioConfig(channel="near")), np.full(100, 0.1, np.float32))
    _expect(NonFiniteAudioError, p, config=AudioConfig(channel="far"))
    _expect(NonFiniteAudioError, p, config=AudioConfig(channel="both"))
