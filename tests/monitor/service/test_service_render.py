"""Server-side explain PNGs: orientation, shapes, and a frequency axis that matches the bands."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest

from auscult.monitor.service.render import _freq_axis, explanation_png


def _mel_centres(k=64, fmax=8000.0):
    mel = np.linspace(0, 2595 * np.log10(1 + fmax / 700), k + 2)[1:-1]
    return 700 * (10 ** (mel / 2595) - 1)


def _expl(k=64, f=50, spectrogram=True, transpose=False):
    rng = np.random.default_rng(0)
    tf = rng.random((k, f))
    tf[40, 20:30] = 50.0
    return SimpleNamespace(times=np.arange(f) * 0.032, frame_scores=tf.mean(axis=0), freqs=_mel_centres(k),
                           tf_map=tf.T if transpose else tf, spectrogram=rng.random((k, f)) if spectrogram else None,
                           frame_threshold=0.7)


@pytest.mark.parametrize("kw", [{}, {"spectrogram": False}, {"transpose": True}])
def test_png_renders_for_each_layout(kw):
    from matplotlib.image import imread

    png = explanation_png(_expl(**kw), title="m · record 1")
    img = imread(io.BytesIO(png))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and img.shape[1] == 720 and img.std() > 0.05


def test_mismatched_map_is_refused():
    e = _expl()
    e.tf_map = np.zeros((10, 10))
    with pytest.raises(ValueError, match="does not match"):
        explanation_png(e)


def test_frequency_ticks_sit_on_the_band_that_holds_that_frequency():
    from matplotlib.figure import Figure

    freqs = _mel_centres(64)
    ax = Figure().subplots()
    _freq_axis(ax, freqs)
    for pos, label in zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()]):
        hz = float(label[:-1]) * 1000 if label.endswith("k") else float(label)
        band = int(round(pos))
        lo = freqs[max(band - 1, 0)]
        hi = freqs[min(band + 1, len(freqs) - 1)]
        assert lo <= hz <= hi, (label, pos)  # mel rows are uneven in Hz: a linear axis would miss this
    assert ax.get_ylim() == (-0.5, 63.5)
