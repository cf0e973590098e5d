"""DatasetIndex: scans of generated trees and of the real trees in ../shared/data."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from auscult.data import DatasetIndex
from auscult.data.index import read_attributes_csv
from auscult.errors import DataError


def _wav(path: Path, n: int = 64, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(n, 0.1, dtype=np.float32), sr)
    return path


def _tree(root: Path, rels: list[str]) -> list[Path]:
    return [_wav(root / r) for r in rels]


# ------------------------------------------------------------------ generated trees
def test_scan_counts_match_generated_tree(tmp_path):
    rels = []
    for m in ("fan", "valve"):
        for s in ("00", "01"):
            for i in range(3):
                rels.append(f"dev_data/{m}/train/section_{s}_source_train_normal_{i:04d}_a_{i}.wav")
            rels.append(f"dev_data/{m}/train/section_{s}_target_train_normal_0009_a_9.wav")
            for lab, k in (("normal", 2), ("anomaly", 1)):
                for i in range(k):
                    rels.append(f"dev_data/{m}/test/section_{s}_target_test_{lab}_{i:04d}_a_1.wav")
    _tree(tmp_path, rels)
    (tmp_path / "README.md").write_text("hello")
    (tmp_path / "dev_data/fan/notes.txt").write_text("x")
    ix = DatasetIndex.scan(tmp_path)
    assert len(ix) == len(rels)
    assert ix.unparsed == []
    assert ix.other_files == 2
    assert ix.machines() == ["fan", "valve"]
    assert ix.sections("fan") == ["00", "01"]
    assert ix.domains() == ["source", "target"]
    # counts agree with an independent count over the generated names
    expect = Counter()
    for r in rels:
        parts = Path(r).stem.split("_")
        expect[(r.split("/")[1], parts[1], parts[2], parts[3], parts[4])] += 1
    got = {(r["machine"], r["section"], r["domain"], r["split"], r["label"]): r["count"] for r in ix.counts()}
    assert got == dict(expect)
    assert len(ix.select(machine="fan", split="train")) == 8
    assert len(ix.select(machine="fan", section=1, label="anomaly")) == 1
    assert len(ix.select(machine=("fan", "valve"), domain="target", split="test")) == 12
    assert ix.select(label=(None,)) == []


def test_nothing_silently_skipped(tmp_path):
    good = _wav(tmp_path / "fan/train/section_00_source_train_normal_0000_a_1.wav")
    badname = _wav(tmp_path / "fan/train/recording.wav")
    text = tmp_path / "fan/train/section_00_source_train_normal_0001_a_1.wav"
    text.write_text("this is not audio")
    empty = tmp_path / "fan/train/section_00_source_train_normal_0002_a_1.wav"
    empty.write_bytes(b"")
    mp3 = tmp_path / "fan/train/section_00_source_train_normal_0003.mp3"
    mp3.write_bytes(b"ID3")
    loose = _wav(tmp_path / "stray.wav")
    (tmp_path / "fan/attributes_00.csv").write_text("file_name,d1p,d1v\n")
    ix = DatasetIndex.scan(tmp_path)
    assert [c.path for c in ix.clips] == [good]
    reasons = {u.path: u.reason for u in ix.unparsed}
    assert set(reasons) == {badname, text, empty, mp3, loose}
    assert "matches no DCASE name" in reasons[badname]
    assert reasons[text].startswith("not audio")
    assert "empty" in reasons[empty]
    assert "unsupported audio format" in reasons[mp3]
    assert ix.other_files == 1  # the CSV is counted, not listed
    d = json.loads(ix.to_json())
    assert {u["path"] for u in d["unparsed"]} == {str(p) for p in reasons}


def test_symlink_loop_is_reported_not_followed_forever(tmp_path):
    _wav(tmp_path / "fan/train/section_00_source_train_normal_0000_a_1.wav")
    (tmp_path / "fan/train/loop").symlink_to(tmp_path / "fan", target_is_directory=True)
    ix = DatasetIndex.scan(tmp_path)
    assert len(ix) == 1
    assert [u.path for u in ix.unparsed] == [tmp_path / "fan/train/loop"]
    assert "already scanned" in ix.unparsed[0].reason


def test_2021_train_names_marked_2021_by_sibling_test_folders(tmp_path):
    _tree(tmp_path, [
        "dev_data/fan/train/section_00_source_train_normal_0000_strength_1.wav",
        "dev_data/fan/source_test/section_00_source_test_normal_0000.wav",
        "dev_data/pump/train/section_00_source_train_normal_0000_x_1.wav",
        "dev_data/pump/test/section_00_source_test_normal_0000_x_1.wav",
    ])
    ix = DatasetIndex.scan(tmp_path)
    by = {(c.machine, c.split): c for c in ix.clips}
    assert by[("fan", "train")].layout == "dcase2021" and by[("fan", "train")].year == 2021
    assert by[("pump", "train")].layout == "dcase2022" and by[("pump", "train")].year is None


def test_own_data_folders(tmp_path):
    _tree(tmp_path, ["press/normal/a.wav", "press/normal/b.flac", "press/anomaly/c.wav",
                     "pump2/normal/x.wav"])
    ix = DatasetIndex.scan(tmp_path)
    assert ix.machines() == ["press", "pump2"]
    assert len(ix.select(machine="press", split="train", label="normal")) == 2
    assert len(ix.select(machine="press", split="test", label="anomaly")) == 1
    # a single machine folder scanned directly: machine = the folder's name
    ix1 = DatasetIndex.scan(tmp_path / "press")
    assert ix1.unparsed == [] and ix1.machines() == ["press"] and len(ix1) == 3


def test_attribute_csv_fills_anonymised_names(tmp_path):
    _tree(tmp_path, ["fan/train/section_00_source_train_normal_0000_m-n_W.wav",
                     "fan/test/section_00_0000.wav", "fan/test/section_00_0001.wav"])
    (tmp_path / "fan/attributes_00.csv").write_text(
        "file_name,d1p,d1v,d2p,d2v\n"
        "fan/train/section_00_source_train_normal_0000_m-n_W.wav,m-n,W,,\n"
        "fan/test/section_00_0000.wav,m-n,X,snr,-6\n"
        "fan/test/section_00_9999.wav,m-n,Y,,\n")
    ix = DatasetIndex.scan(tmp_path)
    by = {c.name: c for c in ix.clips}
    assert by["section_00_0000.wav"].attributes == {"m-n": "X", "snr": "-6"}
    assert by["section_00_0000.wav"].attributes_raw == "m-n_X_snr_-6"
    assert by["section_00_0001.wav"].attributes == {}  # not listed: left as it is
    assert by["section_00_source_train_normal_0000_m-n_W.wav"].attributes == {"m-n": "W"}
    assert by["section_00_source_train_normal_0000_m-n_W.wav"].attributes_raw == "m-n_W"


def test_attribute_csv_malformed_names_file(tmp_path):
    p = tmp_path / "attributes_00.csv"
    p.write_text("name,d1p\nx.wav,a\n")
    with pytest.raises(DataError, match="attributes_00.csv"):
        read_attributes_csv(p)
    p.write_text("file_name,d1p,d1v\nx.wav,a,1,extra,cells\n,a,1\n")
    with pytest.raises(DataError, match=r"\[2, 3\]"):
        read_attributes_csv(p)


def test_scan_missing_root():
    with pytest.raises(DataError, match="not found"):
        DatasetIndex.scan("/no/such/folder")


# ------------------------------------------------------------------ ground truth join
def _eval_tree(root: Path) -> None:
    _tree(root, ["eval_data/fan/test/section_03_0000.wav", "eval_data/fan/test/section_03_0001.wav",
                 "eval_data/fan/train/section_03_source_train_normal_0000_a_1.wav",
                 "eval_data/pump/test/section_03_0000.wav"])


def _gt(root: Path, machine: str, rows: list[tuple[str, int, int]]) -> Path:
    for sub, col in (("ground_truth_data", 1), ("ground_truth_domain", 2)):
        d = root / "gt" / sub
        d.mkdir(parents=True, exist_ok=True)
        (d / f"ground_truth_{machine}_section_03_test.csv").write_text(
            "".join(f"{r[0]},{r[col]}\n" for r in rows))
    return root / "gt"


def test_join_ground_truth(tmp_path):
    _eval_tree(tmp_path)
    gt = _gt(tmp_path, "fan", [("section_03_0000.wav", 1, 0), ("section_03_0001.wav", 0, 1)])
    ix = DatasetIndex.scan(tmp_path / "eval_data").join_ground_truth(gt)
    by = {(c.machine, c.name): c for c in ix.clips}
    assert (by[("fan", "section_03_0000.wav")].label, by[("fan", "section_03_0000.wav")].domain) == ("anomaly", "source")
    assert (by[("fan", "section_03_0001.wav")].label, by[("fan", "section_03_0001.wav")].domain) == ("normal", "target")
    assert by[("pump", "section_03_0000.wav")].label is None  # no ground truth for pump: untouched
    assert by[("fan", "section_03_source_train_normal_0000_a_1.wav")].label == "normal"


def test_join_ground_truth_missing_and_extra_names_listed(tmp_path):
    _eval_tree(tmp_path)
    gt = _gt(tmp_path, "fan", [("section_03_0000.wav", 1, 0), ("section_03_0077.wav", 0, 1)])
    with pytest.raises(DataError) as ei:
        DatasetIndex.scan(tmp_path / "eval_data").join_ground_truth(gt)
    msg = str(ei.value)
    assert "fan/section_03_0001.wav" in msg and "missing" in msg
    assert "fan/section_03_0077.wav" in msg and "no test clip" in msg


def test_join_ground_truth_unrelated_machines(tmp_path):
    _eval_tree(tmp_path)
    gt = _gt(tmp_path, "slider", [("section_03_0000.wav", 1, 0)])
    with pytest.raises(DataError, match="none of the indexed"):
        DatasetIndex.scan(tmp_path / "eval_data").join_ground_truth(gt)


def test_join_ground_truth_2020_per_id(tmp_path):
    _tree(tmp_path, ["eval_data/fan/test/id_01_00000000.wav", "eval_data/fan/test/id_01_00000001.wav",
                     "eval_data/fan/test/id_05_00000000.wav"])
    d = tmp_path / "gt/ground_truth_data"
    d.mkdir(parents=True)
    (d / "ground_truth_fan_id_01_test.csv").write_text("id_01_00000000.wav,0\nid_01_00000001.wav,1\n")
    (d / "ground_truth_fan_id_05_test.csv").write_text("id_05_00000000.wav,1\n")
    ix = DatasetIndex.scan(tmp_path / "eval_data").join_ground_truth(tmp_path / "gt")
    assert [(c.section, c.label, c.domain) for c in ix.clips] == [
        ("01", "normal", None), ("01", "anomaly", None), ("05", "anomaly", None)]


def test_join_ground_truth_2021_names_repeat_across_domains(tmp_path, monkeypatch):
    # if 2021 eval names repeat across source_test/ and target_test/, the index keys by domain too
    import auscult.data.groundtruth as gtmod

    _tree(tmp_path, ["eval_data/fan/source_test/section_03_0000.wav",
                     "eval_data/fan/target_test/section_03_0000.wav"])
    rows = [gtmod.TruthRow("fan", "03", "section_03_0000.wav", "anomaly", "source"),
            gtmod.TruthRow("fan", "03", "section_03_0000.wav", "normal", "target")]
    monkeypatch.setattr(gtmod, "read_ground_truth", lambda root, year: rows)
    ix = DatasetIndex.scan(tmp_path / "eval_data").join_ground_truth(tmp_path, year=2021)
    assert sorted((c.domain, c.label) for c in ix.clips) == [("source", "anomaly"), ("target", "normal")]
    monkeypatch.setattr(gtmod, "read_ground_truth", lambda root, year: rows[:1])
    with pytest.raises(DataError, match="fan/target/section_03_0000.wav"):
        DatasetIndex.scan(tmp_path / "eval_data").join_ground_truth(tmp_path, year=2021)


# ------------------------------------------------------------------ real trees
def _listing(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".wav", ".flac"))


def test_real_gearbox_2021(shared_data):
    root = shared_data / "dcase2021-gearbox-s00"
    files = _listing(root)
    n_norm = sum("_normal_" in p.name for p in files)
    n_anom = sum("_anomaly_" in p.name for p in files)
    assert (n_norm, n_anom) == (195, 105)  # what the data README promises
    ix = DatasetIndex.scan(root)
    assert ix.unparsed == []
    assert ix.machines() == ["gearbox"]
    assert len(ix.select(label="normal", domain="source", split="test", section="00")) == n_norm
    assert len(ix.select(label="anomaly", domain="source", split="test", section="00")) == n_anom
    assert {c.year for c in ix.clips} == {2021}


def test_real_2020_and_2023(shared_data):
    for name, year in (("dcase2020-mini", 2020), ("dcase2023-mini", 2023)):
        root = shared_data / name
        files = _listing(root)
        ix = DatasetIndex.scan(root)
        assert ix.unparsed == []
        assert sorted(c.path for c in ix.clips) == files
        assert {c.year for c in ix.clips} == {year}
        machines = sorted({p.parent.parent.name for p in files})
        assert ix.machines() == machines
        for m in machines:
            for split in ("train", "test"):
                for lab in ("normal", "anomaly"):
                    expect = sum(p.parent.parent.name == m and p.parent.name == split and f"_{lab}_" in p.name
                                 or (p.parent.parent.name == m and p.parent.name == split
                                     and p.name.startswith(f"{lab}_id")) for p in files)
                    assert len(ix.select(machine=m, split=split, label=lab)) == expect, (name, m, split, lab)
    ix = DatasetIndex.scan(shared_data / "dcase2023-mini")
    fan = ix.select(machine="fan", split="train")
    assert all(c.attributes.get("m-n") for c in fan)


def test_real_whole_shared_tree_reports_mimii_as_unparsed(shared_data):
    files = _listing(shared_data)
    ix = DatasetIndex.scan(shared_data)
    assert len(ix.clips) + len(ix.unparsed) == len(files)
    flat = [p for p in files if p.parent.name == "mimii-raw-8ch"]
    assert sorted(u.path for u in ix.unparsed) == flat
    assert all("not a split folder" in u.reason for u in ix.unparsed)
    assert os.path.commonpath([str(c.path) for c in ix.clips]) == str(shared_data)
