"""The dataset writer: layouts, names, ground truth, attributes, metadata, determinism, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from auscult.data.synth import PRESETS, generate_dataset, load_metadata
from auscult.errors import ConfigError

DEV_RE = re.compile(r"^section_(\d\d)_(source|target)_(train|test)_(normal|anomaly)_(\d{4})((?:_[A-Za-z0-9.\-]+_[A-Za-z0-9.\-]+)*)\.wav$")
DEV2020_RE = re.compile(r"^(normal|anomaly)_id_(\d\d)_(\d{8})\.wav$")


def _hashes(root: Path, skip=("README.md",)) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


def _gen(tmp_path, name, preset, **kw):
    kw.setdefault("duration", 0.5)
    kw.setdefault("probe", False)
    return generate_dataset(preset, tmp_path / name, **kw)


@pytest.fixture(scope="module")
def ds2023(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "d23"
    return generate_dataset("dcase2023", root, seed=3, machines=["fan", "valve", "ToyCar"], scale=0.04,
                            duration=0.5, workers=2)


def test_dcase2023_layout_names_and_counts(ds2023):
    rows = load_metadata(ds2023)
    p = PRESETS["dcase2023"].scaled(0.04)
    assert (p.train_source, p.train_target, p.test_normal, p.test_anomaly) == (40, 1, 2, 2)
    cnt = Counter((r["machine"], r["split"], r["domain"], r["label"]) for r in rows)
    for m in ("fan", "valve", "ToyCar"):
        assert cnt[(m, "train", "source", "normal")] == 40
        assert cnt[(m, "train", "target", "normal")] == 1
        for d in ("source", "target"):
            assert cnt[(m, "test", d, "normal")] == 2 and cnt[(m, "test", d, "anomaly")] == 2
    files = sorted((ds2023 / "dev_data").rglob("*.wav"))
    assert len(files) == len(rows)
    for r in rows:
        path = ds2023 / r["file"]
        assert path.is_file()
        assert path.parent == ds2023 / "dev_data" / r["machine"] / r["split"]
        m = DEV_RE.match(path.name)
        assert m, path.name
        assert m.groups()[:5] == (r["section"], r["domain"], r["split"], r["label"], f"{int(r['index']):04d}")
        assert m.group(6) == "_" + r["attributes"]
    # a DCASE-style example is produced verbatim
    assert any(re.fullmatch(r"section_00_source_train_normal_0001_car_[A-E]1_spd_(28|31|34)V_mic_[12]\.wav", f.name)
               for f in files)


def test_wav_format_and_levels(ds2023):
    rows = load_metadata(ds2023)
    info = sf.info(str(ds2023 / rows[0]["file"]))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 8000)
    x, _ = sf.read(str(ds2023 / rows[0]["file"]))
    assert 0.01 < np.sqrt(np.mean(x ** 2)) < 0.3


def test_ground_truth_and_attribute_files(ds2023):
    rows = load_metadata(ds2023)
    for m in ("fan", "valve", "ToyCar"):
        test = {r["name"]: r for r in rows if r["machine"] == m and r["split"] == "test"}
        with open(ds2023 / "ground_truth_data" / f"ground_truth_{m}_section_00_test.csv") as fh:
            labels = dict(csv.reader(fh))
        with open(ds2023 / "ground_truth_domain" / f"ground_truth_{m}_section_00_test.csv") as fh:
            domains = dict(csv.reader(fh))
        assert set(labels) == set(domains) == set(test)
        for name, r in test.items():
            assert labels[name] == str(int(r["label"] == "anomaly"))
            assert domains[name] == str(int(r["domain"] == "target"))
        with open(ds2023 / "dev_data" / m / "attributes_00.csv") as fh:
            attr = list(csv.reader(fh))
        assert attr[0][0] == "file_name" and attr[0][1:3] == ["d1p", "d1v"]
        listed = {a[0] for a in attr[1:]}
        assert listed == {f"{m}/{r['split']}/{r['name']}" for r in rows if r["machine"] == m}
        for a in attr[1:]:
            assert "_".join(x for x in a[1:] if x) in a[0]


def test_metadata_records_kind_severity_window_band(ds2023):
    from auscult.data.synth import MACHINES

    rows = load_metadata(ds2023)
    for r in rows:
        if r["label"] == "normal":
            assert r["anomaly_kind"] == "" and float(r["severity"]) == 0.0 and r["band_lo_hz"] == ""
            continue
        kind = MACHINES[r["machine"]].kinds[r["anomaly_kind"]]
        assert 0.1 <= float(r["severity"]) <= 1.0
        assert r["region"] == kind.region
        assert 0 <= float(r["band_lo_hz"]) < float(r["band_hi_hz"]) <= 8000
        if kind.localised and r["onset_s"]:
            assert 0 <= float(r["onset_s"]) < float(r["offset_s"])
        params = json.loads(r["params"])
        assert params  # operating point recorded
    diff = json.loads((ds2023 / "difficulty.json").read_text())
    assert set(diff) == {"fan", "valve", "ToyCar"}
    card = (ds2023 / "README.md").read_text()
    assert "--seed 3" in card and "Difficulty probe" in card and "fan" in card


def test_scans_through_the_data_layer(ds2023):
    from auscult.data.index import DatasetIndex

    rows = load_metadata(ds2023)
    idx = DatasetIndex.scan(ds2023)
    assert not idx.unparsed
    assert len(idx.clips) == len(rows)
    assert sorted(idx.machines()) == ["ToyCar", "fan", "valve"]
    by_name = {(r["machine"], r["name"]): r for r in rows}
    for c in idx.clips:
        r = by_name[(c.machine, c.name)]
        assert (c.section, c.domain, c.split, c.label) == (r["section"], r["domain"], r["split"], r["label"])
    assert len(idx.select(machine="valve", split="test", label="anomaly")) == 4
    from typer.testing import CliRunner

    from auscult.cli import app

    res = CliRunner().invoke(app, ["data", "scan", str(ds2023)])
    assert res.exit_code == 0, res.output
    assert f"{len(rows)} clips, 3 machine types" in res.output


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path):
    a = _gen(tmp_path, "a", "demo", seed=11, scale=0.1, workers=1)
    b = _gen(tmp_path, "b", "demo", seed=11, scale=0.1, workers=2)
    c = _gen(tmp_path, "c", "demo", seed=12, scale=0.1, workers=1)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert ha == hb
    wavs = [k for k in ha if k.endswith(".wav")]
    assert len(wavs) > 20
    assert len({ha[k] for k in wavs}) == len(wavs), "no two clips may be identical"
    assert sum(ha[k] == hc.get(k) for k in wavs) == 0
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("Rendered and written")]  # noqa: E731
    assert strip((a / "README.md").read_text()) == strip((b / "README.md").read_text())


def test_regenerate_from_config_gives_the_same_bytes(tmp_path):
    from auscult.data.synth import regenerate
    from auscult.data.synth.writer import Preset

    custom = Preset("custom", "dcase2023", ("gearbox", "ToyTrain"), ("00", "01"), 3, 1, 1, 2, duration=0.5)
    a = generate_dataset(custom, tmp_path / "a", seed=5, probe=False, eval_names=True)
    assert "--from-config" in (a / "README.md").read_text()
    b = regenerate(a / "synth_config.json", tmp_path / "b")
    ha, hb = _hashes(a, skip=("README.md", "difficulty.json")), _hashes(b, skip=("README.md", "difficulty.json"))
    assert ha == hb and len(ha) > 20
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="synth_config"):
        regenerate(tmp_path / "bad.json", tmp_path / "c")


def test_dcase2022_three_sections_are_different_units(tmp_path):
    root = _gen(tmp_path, "d22", "dcase2022", machines=["gearbox"], scale=0.01)
    rows = load_metadata(root)
    assert sorted({r["section"] for r in rows}) == ["00", "01", "02"]
    for s in ("00", "01", "02"):
        assert (root / "ground_truth_data" / f"ground_truth_gearbox_section_{s}_test.csv").is_file()
        assert (root / "dev_data" / "gearbox" / f"attributes_{s}.csv").is_file()
    card = (root / "README.md").read_text()
    units = re.findall(r"unit of section \d\d: `(.*)`", card)
    assert len(units) == 3 and len(set(units)) == 3


def test_dcase2020_layout_ids_without_domains(tmp_path):
    from auscult.data.index import DatasetIndex

    root = _gen(tmp_path, "d20", "dcase2020", machines=["pump", "slider"], scale=0.02)
    rows = load_metadata(root)
    for r in rows:
        assert DEV2020_RE.match(r["name"]) and r["domain"] == ""
    assert sorted({r["section"] for r in rows}) == ["00", "02", "04", "06"]
    assert (root / "ground_truth_data" / "ground_truth_pump_id_02_test.csv").is_file()
    assert not (root / "ground_truth_domain").exists()
    idx = DatasetIndex.scan(root)
    assert not idx.unparsed and len(idx.clips) == len(rows)
    assert {c.domain for c in idx.clips} == {None}


def test_eval_names_hide_labels_and_ground_truth_joins_them_back(tmp_path):
    from auscult.data.index import DatasetIndex

    root = _gen(tmp_path, "ev", "demo", machines=["bearing"], scale=0.2, eval_names=True)
    rows = load_metadata(root)
    test = [r for r in rows if r["split"] == "test"]
    assert all(re.fullmatch(r"section_00_\d{4}\.wav", r["name"]) for r in test)
    assert all((root / "eval_data" / "bearing" / "test" / r["name"]).is_file() for r in test)
    labels_in_order = [r["label"] for r in test]
    assert labels_in_order != sorted(labels_in_order), "anonymised order must be shuffled"
    idx = DatasetIndex.scan(root).join_ground_truth(root, year=2023)
    got = {c.name: (c.label, c.domain) for c in idx.clips if c.split == "test"}
    assert got == {r["name"]: (r["label"], r["domain"]) for r in test}
    attr = (root / "eval_data" / "bearing" / "attributes_00.csv").read_text()
    assert "section_00_0000.wav" not in attr


def test_refuses_to_mix_datasets_and_checks_arguments(tmp_path):
    _gen(tmp_path, "x", "demo", machines=["fan"], scale=0.05)
    with pytest.raises(ConfigError, match="already holds"):
        _gen(tmp_path, "x", "demo", machines=["fan"], scale=0.05)
    _gen(tmp_path, "x", "demo", machines=["fan"], scale=0.05, overwrite=True)
    with pytest.raises(ConfigError, match="unknown preset"):
        _gen(tmp_path, "y", "dcase2099")
    with pytest.raises(ConfigError, match="unknown machine"):
        _gen(tmp_path, "y", "demo", machines=["blender"])
    with pytest.raises(ConfigError, match="subtype"):
        _gen(tmp_path, "y", "demo", subtype="MP3")
    with pytest.raises(ConfigError, match="severity range"):
        _gen(tmp_path, "y", "demo", severity_range=(0.5, 0.2))


def test_float_subtype_and_sample_rate(tmp_path):
    root = _gen(tmp_path, "f", "demo", machines=["slider"], scale=0.05, subtype="FLOAT", sample_rate=22050)
    wav = next((root / "dev_data").rglob("*.wav"))
    info = sf.info(str(wav))
    assert (info.samplerate, info.subtype, info.frames) == (22050, "FLOAT", 11025)


def test_cli_generates_and_previews(tmp_path):
    from typer.testing import CliRunner

    from auscult.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["synth", "--preset", "demo", "--machines", "valve", "--scale", "0.05",
                              "--duration", "0.5", "--out", str(tmp_path / "cli"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "README.md").is_file()
    res = runner.invoke(app, ["synth", "--preview", "--machines", "fan", "--duration", "1",
                              "--out", str(tmp_path / "prev")])
    assert res.exit_code == 0, res.output
    png = tmp_path / "prev" / "fan.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_deterministic_and_scans_cleanly(tmp_path, preset):
    from auscult.data.index import DatasetIndex

    machine = PRESETS[preset].machines[-1]
    kw = dict(seed=1, machines=[machine], scale=0.005 if preset.startswith("dcase") else 0.05, duration=0.2)
    a = _gen(tmp_path, "a", preset, **kw)
    b = _gen(tmp_path, "b", preset, workers=2, **kw)
    assert _hashes(a) == _hashes(b)
    rows = load_metadata(a)
    idx = DatasetIndex.scan(a)
    assert not idx.unparsed and len(idx.clips) == len(rows)
    assert {r["label"] for r in rows if r["split"] == "test"} == {"normal", "anomaly"}


def test_sections_of_a_dataset_are_units_of_one_product_line(tmp_path):
    """Issue 14: units (sections) of one machine type differ by manufacturing tolerances of one
    product line (same tooth / blade / vane / ball counts), not by design. The writer's units are
    exactly ``unit_for`` (which draws them from ``product_for``); alias types draw the product line of
    their seed name. Regression: from the merge d0b432b until this test, the writer drew every section
    from its own product line (and hall)."""
    from auscult.data.synth.machines import MACHINES
    from auscult.data.synth.render import product_for, unit_for
    from auscult.data.synth.writer import MACHINE_ALIASES, machine_unit

    counts = {"fan": ["blades"], "pump": ["vanes"], "bearing": ["n_balls"], "gearbox": ["z1", "z2"],
              "ToyCar": ["teeth"]}
    for seed in (0, 1, 2):
        for m in MACHINES:
            units = [machine_unit(m, s, seed) for s in ("00", "01", "02")]
            assert units == [unit_for(m, s, seed) for s in ("00", "01", "02")], m
            assert len({json.dumps(u, sort_keys=True, default=str) for u in units}) == 3, m  # three units
            product = product_for(m, seed)
            for key in counts.get(m, []):
                assert [u[key] for u in units] == [product[key]] * 3, (m, key, seed)
        for alias, model in MACHINE_ALIASES.items():
            name = alias if alias == "ToyCarEmu" else model
            assert machine_unit(alias, "00", seed) == unit_for(model, "00", seed, name=name), alias
    # the written dataset: the card lists the three gearbox sections with one pair of tooth counts
    root = _gen(tmp_path, "d22", "dcase2022", machines=["gearbox"], scale=0.01)
    units = [json.loads(u) for u in re.findall(r"unit of section \d\d: `(.*)`", (root / "README.md").read_text())]
    assert len(units) == 3 and len({(u["z1"], u["z2"]) for u in units}) == 1
