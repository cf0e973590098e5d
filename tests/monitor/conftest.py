"""Fixtures for the monitoring tests: simulated fan recordings and bundles fitted on them (built once).

Fault-injection clips come from the simulator (``render_clip(..., return_info=True)``), whose
metadata records the fault's time window and frequency band.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

SR = 16000
REC_S = 3.0        # seconds per simulated recording
WINDOW_S = 1.5     # bundle window: 2 windows per recording
N_RECORDINGS = 16


def render(seed: int, anomaly=None, severity: float = 1.0, duration: float = REC_S, info: bool = False):
    from auscult.data.synth import render_clip
    from auscult.data.synth.render import unit_for

    return render_clip("fan", unit=unit_for("fan", "00", 0), seed=seed, duration=duration, anomaly=anomaly,
                       severity=severity, return_info=info)


def write_wav(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr)
    return path


@pytest.fixture(scope="session")
def fan_dir(tmp_path_factory) -> Path:
    """A folder of normal recordings of one simulated fan unit."""
    d = tmp_path_factory.mktemp("recordings") / "fan"
    for i in range(N_RECORDINGS):
        write_wav(d / f"rec_{i:03d}.wav", render(100 + i))
    return d


def _fit(fan_dir: Path, out: Path, **kw):
    from auscult.monitor.fit import FitConfig, fit_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_bundle(fan_dir, out, FitConfig(window_s=WINDOW_S, **kw))


@pytest.fixture(scope="session")
def knn_fit(fan_dir, tmp_path_factory):
    """(bundle, report, path): logmel_knn chosen automatically (few windows)."""
    out = tmp_path_factory.mktemp("bundles") / "fan_knn.auscult"
    b, rep = _fit(fan_dir, out)
    return b, rep, out


@pytest.fixture(scope="session")
def ae_fit(fan_dir, tmp_path_factory):
    """(bundle, report, path): the autoencoder baseline, forced, few epochs."""
    out = tmp_path_factory.mktemp("bundles") / "fan_ae.auscult"
    b, rep = _fit(fan_dir, out, method="autoencoder", epochs=100)
    return b, rep, out
