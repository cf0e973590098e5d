"""Fixtures for the monitoring tests: simulated fan recordings and bundles fitted on them (built once).
The helpers live in monitor_testlib.py."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from monitor_testlib import N_RECORDINGS, WINDOW_S, render, write_wav  # noqa: E402


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
    """(bundle, report, path): logmel_knn (named: ``auto`` picks ``bandstats`` for few windows, see
    test_fit.py), its threshold on a held-out quarter of the recordings."""
    out = tmp_path_factory.mktemp("bundles") / "fan_knn.auscult"
    b, rep = _fit(fan_dir, out, method="logmel_knn")
    return b, rep, out


@pytest.fixture(scope="session")
def ae_fit(fan_dir, tmp_path_factory):
    """(bundle, report, path): the autoencoder baseline, forced, few epochs."""
    out = tmp_path_factory.mktemp("bundles") / "fan_ae.auscult"
    b, rep = _fit(fan_dir, out, method="autoencoder", epochs=100)
    return b, rep, out


@pytest.fixture(scope="session")
def quiet_fan_dir(tmp_path_factory) -> Path:
    """The same fan's normal recordings in a quiet room (no factory background): the localisation
    tests' reference (see tests/monitor/test_explain.py)."""
    d = tmp_path_factory.mktemp("quiet_recordings") / "fan"
    for i in range(N_RECORDINGS):
        write_wav(d / f"rec_{i:03d}.wav", render(100 + i, background=False))
    return d


@pytest.fixture(scope="session")
def quiet_fits(quiet_fan_dir, tmp_path_factory):
    """``{"knn": (bundle, report, path), "ae": ...}`` fitted on :func:`quiet_fan_dir`, as
    :func:`knn_fit` / :func:`ae_fit` are on the factory recordings."""
    out = tmp_path_factory.mktemp("quiet_bundles")
    fits = {}
    for which, kw in (("knn", {"method": "logmel_knn"}), ("ae", {"method": "autoencoder", "epochs": 100})):
        b, rep = _fit(quiet_fan_dir, out / f"fan_{which}.auscult", **kw)
        fits[which] = (b, rep, out / f"fan_{which}.auscult")
    return fits
