"""AudioSource, WaveformCache and ClipDataset under the channel policies (DCASE 2026 clips)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from auscult.audio import AudioConfig
from auscult.data import DatasetIndex
from auscult.data.cache import WaveformCache
from auscult.data.datasets import ClipDataset, collate_waveforms
from auscult.data.source import AudioSource
from auscult.errors import ChannelCountError
from auscult.features.frontends import build_frontend
from auscult.features.stft import FeatureInputError
from tests.data.gen2026 import write_clip

NEAR, FAR = 0.25, -0.125  # constant channels: every sample of channel 0 / 1


@pytest.fixture
def tree(tmp_path):
    """A 2026 machine folder (two-channel clips, detected from the headers) and a mono 2023-style one."""
    for i in range(3):
        write_clip(tmp_path / f"fan/train/section_00_source_train_normal_{i:04d}_noise_1.wav", NEAR, FAR, n=100 + i)
        write_clip(tmp_path / f"dcase2023/valve/train/section_00_source_train_normal_{i:04d}_pat_1.wav", 0.5, None)
    ix = DatasetIndex.scan(tmp_path)
    c26 = ix.select(machine="fan")
    c23 = ix.select(machine="valve")
    assert {c.year for c in c26} == {2026} and {c.year for c in c23} == {2023}
    return c26, c23


def test_auto_reads_the_near_mic_of_2026_clips_and_the_mean_elsewhere(tree, tmp_path):
    c26, c23 = tree
    for cache_dir in (None, tmp_path / "cache"):
        audio = AudioSource(cache_dir=cache_dir)  # default policy: auto
        assert audio.config.channel == "auto"
        assert audio.config_for(c26[0]).channel == "near" and audio.config_for(c23[0]).channel == "mean"
        np.testing.assert_array_equal(audio.load(c26[0]), np.full(100, NEAR, np.float32))
        np.testing.assert_array_equal(audio.load(c23[0]), np.full(160, 0.5, np.float32))
        # a plain path carries no year: mean of the channels
        np.testing.assert_allclose(audio.load(c26[0].path), np.full(100, (NEAR + FAR) / 2), atol=1e-7)
        # the same clip marked with another year follows that year
        np.testing.assert_allclose(audio.load(replace(c26[0], year=2025)), np.full(100, (NEAR + FAR) / 2), atol=1e-7)
    far = AudioSource({"channel": "far"})
    np.testing.assert_array_equal(far.load(c26[1]), np.full(101, FAR, np.float32))
    with pytest.raises(ChannelCountError, match=c23[0].name):
        far.load(c23[0])


def test_both_gives_two_channel_batches_through_the_cache(tree, tmp_path):
    c26, _ = tree
    audio = AudioSource({"channel": "both", "length": "tile", "duration": 0.01}, cache_dir=tmp_path / "cache")
    assert audio.n_channels == 2
    xb = audio.batch(c26)
    assert xb.shape == (3, 2, 160) and xb.dtype == torch.float32
    assert torch.equal(xb[:, 0], torch.full((3, 160), NEAR)) and torch.equal(xb[:, 1], torch.full((3, 160), FAR))
    again = AudioSource({"channel": "both", "length": "tile", "duration": 0.01}, cache_dir=tmp_path / "cache")
    assert torch.equal(again.batch(c26), xb)
    assert (again.cache.hits, again.cache.misses) == (3, 0)
    entry = np.load(again.cache.entry_path(c26[0].path), mmap_mode="r")
    assert entry.shape == (2, 100)  # the cache keeps both channels, the length policy comes after
    assert audio.batch([]).shape == (0, 2, 160)
    # near and far are other cache entries than both and than each other
    paths = {AudioSource({"channel": c}, cache_dir=tmp_path / "cache").cache.entry_path(c26[0].path)
             for c in ("near", "far", "both", "mean")}
    assert len(paths) == 4
    # the default policy on 2026 clips uses the near entry
    auto = AudioSource(cache_dir=tmp_path / "cache")
    auto.load_many(c26)
    near = WaveformCache(tmp_path / "cache", AudioConfig(channel="near"))
    assert near.entry_path(c26[0].path).is_file()


def test_both_in_memory_mode_and_in_a_dataset(tree):
    c26, _ = tree
    audio = AudioSource({"channel": "both", "length": "crop", "duration": 0.005}, memory=True)
    ds = ClipDataset(c26, audio, targets=[0, 1, 1])
    x, y, i = collate_waveforms([ds[k] for k in range(3)])
    assert x.shape == (3, 2, 80) and y.tolist() == [0, 1, 1] and i.tolist() == [0, 1, 2]
    assert torch.equal(x[:, 1], torch.full((3, 80), FAR))
    assert len(audio._mem) == 3


def test_single_channel_front_ends_refuse_both_clearly(tree):
    c26, _ = tree
    xb = AudioSource({"channel": "both", "length": "tile", "duration": 0.1}).batch(c26)
    with pytest.raises(FeatureInputError, match="'both' is for methods that take two channels"):
        build_frontend("logmel")(xb)
