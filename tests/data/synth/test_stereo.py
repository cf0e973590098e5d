"""The two-microphone recording chain (stereo.py) and the ``dcase2026`` preset."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from auscult.data.synth import PRESETS, generate_dataset
from auscult.data.synth.stereo import (CRITICAL_DISTANCE_M, NEAR_DISTANCE_M, NOISE_CONDITIONS, noise_condition,
                                       render_stereo_clip)
from auscult.errors import ConfigError

SR = 16000
NAME_2026 = re.compile(r"^section_00_(source|target)_(train|test)_(normal|anomaly)_\d{4}(_[A-Za-z0-9.]+_[A-Za-z0-9.]+)*"
                       r"_noise_([123])\.wav$")


def _rms(x):
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def _render(seed=5, **kw):
    kw.setdefault("duration", 2.0)
    return render_stereo_clip("fan", seed=seed, domain="source", sample_rate=SR, return_info=True, **kw)


def test_stereo_clip_is_two_channel_deterministic_and_seed_dependent():
    a, (info, st) = _render()
    b, _ = _render()
    c, _ = _render(seed=6)
    assert a.dtype == np.float32 and a.shape == (2 * SR, 2)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)
    assert st.noise in NOISE_CONDITIONS and st.noise == noise_condition(5, "fan")
    assert info.attrs[-1] == ("noise", str(st.noise))


def test_far_mic_hears_the_machine_later_weaker_and_more_reverberant():
    dry, (_, st) = _render(background=False)
    near, far = dry[:, 0].astype(np.float64), dry[:, 1].astype(np.float64)
    # propagation delay: the cross-correlation peaks at the far mic's extra path length
    n = len(near)
    xc = np.fft.irfft(np.fft.rfft(far, 2 * n) * np.conj(np.fft.rfft(near, 2 * n)), 2 * n)
    lag = int(np.argmax(xc[:400]))
    expected = st.delay_ms * SR / 1000.0
    assert abs(lag - expected) <= 1.5, (lag, expected)
    assert 1.5 <= st.far_distance_m <= 3.0
    assert st.delay_ms == pytest.approx((st.far_distance_m - NEAR_DISTANCE_M) / 343.0 * 1000, abs=1e-3)
    # level: direct 1/r plus a distance-independent reverberant field
    g_dir, g_rev = NEAR_DISTANCE_M / st.far_distance_m, NEAR_DISTANCE_M / CRITICAL_DISTANCE_M
    want = np.sqrt((g_dir ** 2 + g_rev ** 2) / (1 + g_rev ** 2))
    # (a tonal machine meets the room's random frequency response, so the reverberant level varies)
    ratio = _rms(far) / _rms(near)
    assert g_dir < ratio < 0.8
    assert ratio == pytest.approx(want, rel=0.3)
    # reverberation: the far mic is less correlated with the dry near signal than the near mic is
    peak = float(np.max(xc)) / (np.linalg.norm(near) * np.linalg.norm(far))
    assert peak < 0.9
    assert st.drr_near_db > 5 > 0 > st.drr_far_db


def test_background_snrs_excess_and_partial_coherence():
    full, (info, st) = _render(seed=11)
    dry, _ = _render(seed=11, background=False)
    assert not info.peak_limited
    bg = full.astype(np.float64) - dry.astype(np.float64)  # the machine part does not depend on the background
    for ch, snr in ((0, st.snr_near_db), (1, st.snr_far_db)):
        assert 20 * np.log10(_rms(dry[:, ch]) / _rms(bg[:, ch])) == pytest.approx(snr, abs=0.05)
    assert st.snr_far_db < st.snr_near_db - 3
    assert 20 * np.log10(_rms(bg[:, 1]) / _rms(bg[:, 0])) == pytest.approx(st.far_excess_db, abs=0.05)
    # partly coherent: the normalised cross-correlation at its peak is the shared power fraction
    a, b = bg[:, 0], bg[:, 1]
    n = len(a)
    xc = np.fft.irfft(np.fft.rfft(b, 2 * n) * np.conj(np.fft.rfft(a, 2 * n)), 2 * n)
    xc = np.concatenate([xc[-200:], xc[:200]]) / (np.linalg.norm(a) * np.linalg.norm(b))
    rho = float(np.max(np.abs(xc)))
    assert 0.3 - 0.12 <= rho <= 0.6 + 0.12
    assert rho == pytest.approx(st.coherence, abs=0.12)


def test_noise_condition_sets_the_background_level():
    _, (_, s1) = _render(seed=4, noise=1)
    _, (_, s3) = _render(seed=4, noise=3)
    assert s1.snr_near_db - s3.snr_near_db == pytest.approx(NOISE_CONDITIONS[3] - NOISE_CONDITIONS[1], abs=0.01)
    with pytest.raises(ConfigError, match="noise condition"):
        _render(noise=7)


@pytest.fixture(scope="module")
def ds2026(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth26")
    kw = dict(seed=2, machines=["fan", "valve"], scale=0.04, duration=0.5, workers=1, probe=False)
    return generate_dataset("dcase2026", root / "a", **kw), generate_dataset("dcase2026", root / "b", **kw)


def test_dcase2026_preset_writes_stereo_clips_in_the_2026_grammar(ds2026):
    root, other = ds2026
    assert PRESETS["dcase2026"].layout == "dcase2026"
    wavs = sorted(root.rglob("*.wav"))
    assert wavs
    with open(root / "metadata.csv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    for w in wavs:
        m = NAME_2026.match(w.name)
        assert m, w.name
        info = sf.info(str(w))
        assert info.channels == 2 and info.samplerate == SR
        r = rows[w.name]
        assert r["noise"] == m.group(5) and r["attributes"].endswith(f"noise_{r['noise']}")
        assert float(r["snr_far_db"]) < float(r["snr_near_db"]) == pytest.approx(float(r["snr_db"]))
    # same seed -> identical bytes (every file but the card, which records timings)
    def hashes(d: Path):
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(d.rglob("*")) if p.is_file() and p.name != "README.md"}
    assert hashes(root) == hashes(other)
    # the attribute files carry the noise attribute as the last pair
    att = (root / "dev_data" / "fan" / "attributes_00.csv").read_text().splitlines()
    assert all(",noise," in line for line in att[1:])


def test_dcase2026_tree_scans_as_2026_with_two_channels(ds2026):
    from auscult.data.index import DatasetIndex

    idx = DatasetIndex.scan(ds2026[0] / "dev_data")
    clips = list(idx.clips)
    assert clips and all(c.year == 2026 and c.channels == 2 for c in clips)
    assert all(c.attributes.get("noise") in {"1", "2", "3"} for c in clips)


def test_dcase2026_preset_writes_the_challenges_machine_types_through_aliases(tmp_path):
    """The preset's types are the 2026 development types (ToyCarEmu, bearingEmu, ...), rendered by the
    simulator's models through the one alias table; an alias renders exactly its model's clips, while
    ToyCarEmu is a second toy car (its own draws), and the tree scans as the 2026 types."""
    from dataclasses import replace

    from auscult.data.index import DatasetIndex
    from auscult.data.naming import DCASE2026_DEV_MACHINE_TYPES
    from auscult.data.synth import MACHINE_ALIASES, machine_model
    from auscult.data.synth.machines import MACHINES

    assert set(PRESETS["dcase2026"].machines) == set(DCASE2026_DEV_MACHINE_TYPES)
    assert all(machine_model(m) in MACHINES for m in PRESETS["dcase2026"].machines)
    assert machine_model("bearingEmu") == "bearing" and machine_model("ToyCarEmu") == "ToyCar"
    assert machine_model("fan") == "fan" and set(MACHINE_ALIASES.values()) <= set(MACHINES)
    with pytest.raises(ConfigError, match="unknown machine type 'pumpEmu'"):
        generate_dataset("dcase2026", tmp_path / "x", machines=["pumpEmu"], probe=False)

    p = replace(PRESETS["dcase2026"], train_source=2, train_target=1, test_normal=1, test_anomaly=1, duration=0.5)
    kw = dict(seed=3, workers=1, probe=False)
    new = generate_dataset(p, tmp_path / "new", machines=["bearingEmu", "ToyCar", "ToyCarEmu"], **kw)
    old = generate_dataset(p, tmp_path / "old", machines=["bearing"], **kw)

    def audio(root: Path, machine: str) -> dict[str, bytes]:
        return {w.name: w.read_bytes() for w in sorted((root / "dev_data" / machine).rglob("*.wav"))}

    assert audio(new, "bearingEmu") == audio(old, "bearing")  # same names, same bytes
    car, emu = audio(new, "ToyCar"), audio(new, "ToyCarEmu")
    assert len(car) == len(emu) == 7 and not set(car.values()) & set(emu.values())
    with open(new / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["machine"] for r in rows} == {"bearingEmu", "ToyCar", "ToyCarEmu"}
    # the anomaly kinds (and regions) are the model's
    assert {r["region"] for r in rows if r["machine"] == "bearingEmu" and r["label"] == "anomaly"} <= \
        {k.region for k in MACHINES["bearing"].kinds.values()}
    card = (new / "README.md").read_text()
    assert "### bearingEmu (rendered by the simulator's bearing model)" in card
    clips = list(DatasetIndex.scan(new / "dev_data").clips)
    assert {c.machine for c in clips} == {"bearingEmu", "ToyCar", "ToyCarEmu"}
    assert all(c.year == 2026 and c.channels == 2 for c in clips)


def test_previews_take_the_2026_type_names(tmp_path, monkeypatch):
    """``auscult synth --preview --machines bearingEmu`` draws the type's model (bearing) with the unit
    the dataset writer gives that type, saved under the type's name; an unknown type is a ConfigError."""
    pytest.importorskip("matplotlib")
    from auscult.data.synth import preview, writer
    from auscult.errors import ConfigError

    calls = []
    real = preview.render_clip

    def spy(name, **kw):
        calls.append((name, kw["unit"]))
        return real(name, **kw)

    monkeypatch.setattr(preview, "render_clip", spy)
    paths = preview.render_previews(tmp_path, machines=["bearingEmu", "ToyCarEmu"], duration=0.5, dpi=20)
    assert [p.name for p in paths] == ["bearingEmu.png", "ToyCarEmu.png"] and all(p.stat().st_size for p in paths)
    assert {n for n, _ in calls} == {"bearing", "ToyCar"}
    assert all(u == writer.machine_unit("bearingEmu", "00", 0) for n, u in calls if n == "bearing")
    assert all(u == writer.machine_unit("ToyCarEmu", "00", 0) for n, u in calls if n == "ToyCar")
    with pytest.raises(ConfigError):
        preview.render_previews(tmp_path, machines=["pumpEmu"], duration=0.5)
