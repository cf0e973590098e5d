"""Fixtures the method tests share: one torch thread, synthetic sets generated once per worker (and
the easy two-section fan set among them), and an interrupted-then-resumed fit."""

from __future__ import annotations

import shutil

import pytest
import torch

#: sample rate and clip length of the easy set
SR, DUR = 16000, 2.0
#: the easy set's machine type (see ``easy``)
EASY_MACHINE = "pump"


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module (the CI box has 2 cores shared with the other xdist worker)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def synth_once(tmp_path_factory):
    """``synth_once(name, make) -> Path``: the folder ``name`` under the worker's base temp folder,
    filled by ``make(folder)`` (a ``generate_dataset`` call) the first time it is asked for. The set is
    generated into a temporary sibling and renamed, so a half-written set is never reused."""

    def get(name: str, make):
        root = tmp_path_factory.getbasetemp() / name
        if not (root / "synth_config.json").is_file():
            tmp = root.with_name(root.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            make(tmp)
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
        return root

    return get


@pytest.fixture(scope="session")
def easy(synth_once):
    """Pump, two sections (units), 20 source + 4 target training clips and 6 + 6 test clips per domain,
    2 s, no factory background, anomalies at severity 0.9-1.0: ``(train, test, audio)``.

    Generated once per xdist worker (seed 0) and shared by the CLSIA and ProtoASD tests.

    The set was a fan's until issue 14. The old simulator added each fan fault as an extra component
    that moved the fan's time-averaged log-mel by 3-7 dB (blade damage 5-6 dB in mid bands,
    imbalance 5-7 dB in the lowest band, rub 3-4 dB); since issue 14 faults change the fan's own
    mechanism, and at
    severity 0.95 a chipped blade moves the time-averaged 64-band log-mel by at most 0.5-0.9 dB and
    an imbalance raises mainly the 1x line below 40 Hz (1-3 dB in the lowest band; only the rub
    squeal stays large), so "easy anomalies" no longer described the fan set (CLSIA 0.47, ProtoASD
    0.49 mean AUC on it). The pump's faults at that severity move its log-mel by 5-11 dB (cavitation
    5-6, misalignment 8-11, clogging 11 dB), as the old fan's did. Figures from faulty-minus-healthy
    renders of the same seeds (unit_for(machine, "00"/"01", 0), 2 s, no background)."""
    from auscult.audio import AudioConfig
    from auscult.data.index import DatasetIndex
    from auscult.data.source import AudioSource
    from auscult.data.synth import Preset, generate_dataset

    preset = Preset("easy", "dcase2022", (EASY_MACHINE,), ("00", "01"), 20, 4, 6, 6, DUR)
    root = synth_once(f"methods_easy_{EASY_MACHINE}", lambda out: generate_dataset(
        preset, out, seed=0, severity_range=(0.9, 1.0), background=False, probe=False, overwrite=True, workers=2))
    idx = DatasetIndex.scan(root)
    audio = AudioSource(AudioConfig(sample_rate=SR, length="tile", duration=DUR), memory=True)
    return idx.select(split="train"), idx.select(split="test"), audio


@pytest.fixture
def interrupted_fit(tmp_path, monkeypatch):
    """``interrupted_fit(method, cfg, train, module, step_fn, kill_at) -> (reference, resumed)``:
    fits ``method`` once uninterrupted (run dir ``a``), then again in run dir ``b`` with
    ``module.<step_fn>`` raising at its ``kill_at``-th call (after a step checkpoint), then resumes
    ``b``; returns the uninterrupted and the resumed method for the caller to compare."""
    from auscult.methods import FitContext, build_method

    def run(method, cfg, train, audio, module, step_fn: str, kill_at: int):
        ref = build_method(method, cfg, FitContext(seed=0, quiet=True, run_dir=tmp_path / "a"))
        ref.fit(train, [], audio)
        real, calls = getattr(module, step_fn), {"n": 0}

        def dies(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == kill_at:
                raise RuntimeError("killed")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, step_fn, dies)
        with pytest.raises(RuntimeError, match="killed"):
            build_method(method, cfg, FitContext(seed=0, quiet=True, run_dir=tmp_path / "b")).fit(train, [], audio)
        monkeypatch.setattr(module, step_fn, real)
        assert calls["n"] == kill_at
        resumed = build_method(method, cfg, FitContext(seed=0, quiet=True, run_dir=tmp_path / "b", resume=True))
        resumed.fit(train, [], audio)
        return ref, resumed

    return run


@pytest.fixture
def noisy_copies():
    """``noisy_copies(clips, out_dir, kind="add") -> clips``: see :func:`make_noisy_copies`."""
    return make_noisy_copies


def make_noisy_copies(clips, out_dir, kind: str = "add"):
    """Gross anomalies for the methods' reliable-detection tests: each *normal* clip of ``clips``
    plus white noise of the clip's own power (0 dB SNR), written as 16-bit WAV under ``out_dir`` and
    returned as clips of the same machine, section and domain (label ``anomaly``). ``kind="replace"``
    writes the noise alone (same power) instead of clip plus noise.

    ``benchmarks/seed_spread.py --gross`` builds the same clips (same noise seeds) to measure how
    these tests' statistic spreads over training seeds."""
    import dataclasses

    import numpy as np
    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for i, c in enumerate(c for c in clips if c.label == "normal"):
        path = out_dir / f"{c.machine}_{c.section}_{i:03d}.wav"
        x, sr = sf.read(c.path, dtype="float64")
        n = np.random.default_rng(i).standard_normal(x.shape) * np.sqrt(np.mean(x ** 2))
        y = x + n if kind == "add" else n
        sf.write(path, y / max(1.0, np.abs(y).max() / 0.99), sr, subtype="PCM_16")
        made.append(dataclasses.replace(c, path=path, label="anomaly"))
    return made
