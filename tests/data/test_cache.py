"""WaveformCache: decode once, memory-map afterwards, keyed by content and decode config."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf

import auscult.audio as audio
import auscult.data.cache as cache_mod
from auscult.audio import AudioConfig, load_audio
from auscult.data.cache import WaveformCache
from auscult.errors import AudioDecodeError, AudioFileNotFoundError


@pytest.fixture
def wav(tmp_path):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 4000).astype(np.float32)
    p = tmp_path / "a.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    return p, x


def _forbid_decoding(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("decoded although the cache holds the waveform")

    monkeypatch.setattr(cache_mod, "decode_audio", boom)


def test_second_load_never_decodes(tmp_path, wav, monkeypatch):
    p, x = wav
    c = WaveformCache(tmp_path / "cache", AudioConfig())
    np.testing.assert_array_equal(c.load(p), x)
    assert (c.hits, c.misses) == (0, 1)
    _forbid_decoding(monkeypatch)
    y = c.load(p)
    np.testing.assert_array_equal(y, x)
    assert (c.hits, c.misses) == (1, 1)
    assert y.flags.writeable and y.dtype == np.float32
    assert isinstance(c.decoded(p), np.memmap)
    # a new cache object (a new process, a new epoch) on the same folder: still no decode
    c2 = WaveformCache(tmp_path / "cache", AudioConfig())
    np.testing.assert_array_equal(c2.load(p), x)
    assert (c2.hits, c2.misses) == (1, 0)


def test_matches_load_audio_for_every_length_policy(tmp_path, wav):
    p, _ = wav
    for cfg in (AudioConfig(), AudioConfig(length="tile", duration=0.6), AudioConfig(length="crop", duration=0.1),
                AudioConfig(length="crop", duration=0.1, offset="center"),
                AudioConfig(sample_rate=8000, length="crop", duration=0.1, offset="random", seed=4)):
        c = WaveformCache(tmp_path / "cache", cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", audio.ResampleWarning)
            expect = load_audio(p, cfg)
            for _ in range(2):
                np.testing.assert_array_equal(c.load(p), expect)


def test_key_changes_with_content_and_decode_config(tmp_path, wav):
    p, x = wav
    c = WaveformCache(tmp_path / "cache")
    c.load(p)
    # edit the file in place: a new entry, never the stale one
    sf.write(p, x * 0.5, 16000, subtype="FLOAT")
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    np.testing.assert_array_equal(c.load(p), x * 0.5)
    assert c.misses == 2
    # another decode config (channel) is another entry; another length policy is not
    c_len = WaveformCache(tmp_path / "cache", AudioConfig(length="tile", duration=1.0))
    c_len.load(p)
    assert (c_len.hits, c_len.misses) == (1, 0)
    c_ch = WaveformCache(tmp_path / "cache", AudioConfig(channel=0))
    c_ch.load(p)
    assert c_ch.misses == 1


def test_copies_share_an_entry(tmp_path, wav):
    p, x = wav
    q = tmp_path / "copy.wav"
    shutil.copy(p, q)
    c = WaveformCache(tmp_path / "cache")
    c.load(p)
    c.load(q)
    assert (c.hits, c.misses) == (1, 1)
    assert c.entry_path(p) == c.entry_path(q)


def test_corrupt_entry_is_rebuilt(tmp_path, wav):
    p, x = wav
    c = WaveformCache(tmp_path / "cache")
    c.load(p)
    e = c.entry_path(p)
    e.write_bytes(b"garbage")
    np.testing.assert_array_equal(c.load(p), x)
    assert c.misses == 2
    np.testing.assert_array_equal(np.load(e), x)


def test_errors_name_the_file(tmp_path):
    c = WaveformCache(tmp_path / "cache")
    with pytest.raises(AudioFileNotFoundError, match="missing.wav"):
        c.load(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioDecodeError, match="bad.wav"):
        c.load(bad)
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing cached for failures


def test_no_temp_files_left(tmp_path, wav):
    p, _ = wav
    c = WaveformCache(tmp_path / "cache")
    c.load(p)
    assert [f for f in (tmp_path / "cache").rglob("*") if f.name.endswith(".tmp")] == []


def _worker(args):
    cache_dir, path, n = args
    c = WaveformCache(cache_dir)
    out = []
    for _ in range(n):
        out.append(float(c.load(path).sum()))
    return out, c.misses


def test_two_processes_fill_the_same_cache(tmp_path):
    files = []
    for i in range(6):
        x = np.random.default_rng(i).uniform(-0.5, 0.5, 20000).astype(np.float32)
        f = tmp_path / f"f{i}.wav"
        sf.write(f, x, 16000, subtype="FLOAT")
        files.append((f, float(x.sum())))
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        jobs = [(str(tmp_path / "cache"), str(f), 3) for f, _ in files for _ in range(2)]
        res = pool.map(_worker, jobs)
    for (f, s), r in zip([fs for fs in files for _ in range(2)], res):
        assert r[0] == pytest.approx([s] * 3, rel=1e-5)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(files)
    assert [f for f in (tmp_path / "cache").rglob("*") if f.name.endswith(".tmp")] == []


def test_audio_does_not_import_the_cache():
    """audio.py is the lower layer: the cache builds on it, never the other way round (no cycle)."""
    import subprocess
    import sys

    code = "import sys, auscult.audio; print('auscult.data.cache' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert not hasattr(audio, "WaveformCache") and WaveformCache.__module__ == "auscult.data.cache"
