"""Audio sources: files (AudioSource) and waveforms in memory (WaveformSource) behind one protocol."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from auscult.audio import AudioConfig
from auscult.data.source import AudioSource, AudioSourceLike, WaveformSource
from auscult.errors import ConfigError, DataError, EmptyAudioError


def test_both_sources_follow_the_protocol():
    assert isinstance(AudioSource(), AudioSourceLike)
    assert isinstance(WaveformSource(), AudioSourceLike)
    assert not isinstance(object(), AudioSourceLike)


def test_waveforms_in_memory_are_real_clips_with_the_length_policy():
    src = WaveformSource(AudioConfig(sample_rate=8000, length="tile", duration=0.5))
    a = src.add(np.arange(3000, dtype=np.float32), "press-7", section="01", split="train", label="normal")
    b = src.add(np.ones(4000, dtype=np.float32), "press-7", name="upload.wav")
    assert (a.machine, a.section, a.split, a.label, a.layout) == ("press-7", "01", "train", "normal", "memory")
    assert b.name == "upload.wav" and str(b.path).startswith("memory:/") and a.path != b.path
    assert src.n_samples == 4000 and src.sample_rate == 8000 and len(src) == 2
    x = src.load(a)
    assert x.shape == (4000,) and np.array_equal(x[3000:], np.arange(1000, dtype=np.float32))  # tiled
    xb = src.batch([a, b])
    assert tuple(xb.shape) == (2, 4000)
    assert [sl for sl, _ in src.iter_batches([a, b, a], 2)] == [slice(0, 2), slice(2, 3)]
    keep = WaveformSource({"sample_rate": 8000})
    c, d = keep.add_many([np.zeros(10, np.float32), np.zeros(20, np.float32)], "m")
    assert [w.shape[0] for w in keep.load_many([c, d])] == [10, 20]
    with pytest.raises(ConfigError, match="different lengths"):
        keep.batch([c, d])


def test_clips_of_another_source_and_bad_waveforms_are_refused():
    one, two = WaveformSource(), WaveformSource()
    clip = one.add(np.zeros(100, np.float32), "m")
    assert two.add(np.zeros(100, np.float32), "m").path != clip.path
    with pytest.raises(DataError, match="not a waveform of this source"):
        two.load(clip)
    with pytest.raises(DataError, match="mono"):
        one.add(np.zeros((2, 100), np.float32), "m")
    with pytest.raises(EmptyAudioError):
        one.add(np.zeros(0, np.float32), "m")


def test_memory_paths_differ_across_processes():
    """A method may remember its training clips' paths (leave-one-out scoring): a clip made by a new
    process must never carry the path of a clip from the fitting process."""
    code = ("import numpy as np; from auscult.data.source import WaveformSource; "
            "print(WaveformSource().add(np.zeros(4, np.float32), 'm').path)")
    paths = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
             for _ in range(2)}
    assert len(paths) == 2
