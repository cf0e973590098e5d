"""DCASE 2026 trees: year detection, channel counts, the mono-in-2026 error, `auscult data scan`.

Real 2026 clips are not available here: the trees are generated in the 2026 grammar (see
``tests/data/gen2026.py``), with the noise attribute in the names.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from auscult.cli import app
from auscult.data import DatasetIndex
from auscult.data.index import read_audio_header
from auscult.data.naming import (
    DCASE2026_DEV_MACHINE_TYPES,
    DCASE2026_EVAL_MACHINE_TYPES,
    DCASE2026_ONLY_MACHINE_TYPES,
)
from auscult.errors import DataError
from tests.data.gen2026 import dev_tree, write_clip

runner = CliRunner()


def _name_fields(p: Path) -> tuple:
    """(machine, domain, split, label) read off a generated dev name, independently of auscult."""
    parts = p.stem.split("_")
    return p.parent.parent.name, parts[2], parts[3], parts[4]


# ------------------------------------------------------------------ machine-type lists
def test_machine_type_lists_match_the_organisers_and_only_2026_types_are_new():
    assert set(DCASE2026_DEV_MACHINE_TYPES) == {"ToyCar", "ToyCarEmu", "bearingEmu", "fan", "gearboxEmu",
                                                "sliderEmu", "valveEmu"}
    assert set(DCASE2026_EVAL_MACHINE_TYPES) == {"ToyDrone", "ToothBrush", "SewingMachine",
                                                 "BlowerDustCollector", "Sander"}
    # machine types of 2020-2025 (dev and eval sets), as the organisers' baseline lists them
    earlier = {"fan", "pump", "slider", "valve", "ToyCar", "ToyConveyor", "ToyTrain", "gearbox", "bearing",
               "ToyDrone", "ToyNscale", "ToyTank", "Vacuum", "bandsaw", "grinder", "shaker",
               "3DPrinter", "AirCompressor", "Scanner", "ToyCircuit", "HoveringDrone", "HairDryer", "ToothBrush",
               "RoboticArm", "BrushlessMotor", "ToyRCCar", "ToyPet", "HomeCamera", "AutoTrash", "Polisher",
               "ScrewFeeder", "BandSealer", "CoffeeGrinder"}
    assert DCASE2026_ONLY_MACHINE_TYPES == (set(DCASE2026_DEV_MACHINE_TYPES) | set(DCASE2026_EVAL_MACHINE_TYPES)) - earlier


# ------------------------------------------------------------------ header channel counts
@pytest.mark.parametrize("fmt,subtype,channels", [
    ("WAV", "PCM_16", 1), ("WAV", "PCM_16", 2), ("WAV", "FLOAT", 2), ("WAV", "PCM_24", 8),
    ("FLAC", "PCM_16", 1), ("FLAC", "PCM_16", 2), ("FLAC", "PCM_24", 6), ("RF64", "PCM_16", 2),
])
def test_header_channels_agree_with_libsndfile(tmp_path, fmt, subtype, channels):
    p = tmp_path / f"x.{'flac' if fmt == 'FLAC' else 'wav'}"
    sf.write(p, np.zeros((50, channels), np.float32) + 0.1, 16000, format=fmt, subtype=subtype)
    assert read_audio_header(p) == (None, sf.info(str(p)).channels) == (None, channels)


def test_header_channels_found_after_other_chunks(tmp_path):
    # a JUNK and a LIST chunk (odd size, padded) before "fmt ", as some recorders write them
    src = tmp_path / "plain.wav"
    sf.write(src, np.zeros((40, 2), np.float32), 16000, subtype="PCM_16")
    raw = src.read_bytes()
    extra = b"JUNK" + struct.pack("<I", 28) + bytes(28) + b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"
    body = raw[12:] + b""
    crafted = b"RIFF" + struct.pack("<I", 4 + len(extra) + len(body)) + b"WAVE" + extra + body
    p = tmp_path / "chunks.wav"
    p.write_bytes(crafted)
    assert sf.info(str(p)).channels == 2  # still a valid file
    assert read_audio_header(p) == (None, 2)
    (tmp_path / "text.wav").write_text("hello")
    assert read_audio_header(tmp_path / "text.wav")[0].startswith("not audio")


# ------------------------------------------------------------------ year detection
def test_scan_generated_dev_tree_by_channels(tmp_path):
    # ToyCar and fan exist in every year: only the two-channel files say 2026
    paths = dev_tree(tmp_path / "dev_data", machines=("ToyCar", "fan"))
    ix = DatasetIndex.scan(tmp_path)
    assert ix.unparsed == [] and len(ix) == len(paths)
    assert {c.year for c in ix.clips} == {2026}
    assert ix.channel_counts() == {2: len(paths)}
    got = Counter()
    for r in ix.counts():
        assert (r["year"], r["channels"], r["section"]) == (2026, 2, "00")
        got[(r["machine"], r["domain"], r["split"], r["label"])] += r["count"]
    assert got == Counter(_name_fields(p) for p in paths)
    # the noise attribute is paired like the others and tells the two noise conditions apart
    c = ix.select(machine="fan", split="train", domain="target")[0]
    assert c.attributes == {"car": "A2", "spd": "28V", "mic": "1", "noise": "2"}
    assert {c.attributes["noise"] for c in ix.select(domain="source")} == {"1"}
    d = ix.to_dict()
    assert d["years"] == {"2026": len(paths)} and d["channels"] == {"2": len(paths)}


def test_each_kind_of_evidence_alone(tmp_path):
    # headers not read: the machine type (bearingEmu) or a folder name (dcase2026t2) still says 2026,
    # a shared type (fan) in an unnamed folder does not
    dev_tree(tmp_path / "a", machines=("bearingEmu", "fan"))
    dev_tree(tmp_path / "dcase2026t2" / "dev_data" / "raw", machines=("ToyCar",))
    ix = DatasetIndex.scan(tmp_path, check_headers=False)
    years = {(Path(c.path).relative_to(tmp_path).parts[0], c.machine): c.year for c in ix.clips}
    assert years == {("a", "bearingEmu"): 2026, ("a", "fan"): None, ("dcase2026t2", "ToyCar"): 2026}
    assert {c.channels for c in ix.clips} == {None}
    # with headers, the two-channel fan clips are 2026 too
    assert {c.year for c in DatasetIndex.scan(tmp_path).clips} == {2026}


def test_2020_to_2025_trees_are_not_taken_for_2026(tmp_path):
    # mono trees of the 2022+ grammar, with and without a year in a folder name; machine types that
    # 2026 shares with earlier years (fan, ToyCar, ToyDrone 2023, ToothBrush 2024)
    dev_tree(tmp_path / "plain", machines=("fan", "ToyCar", "ToyDrone", "ToothBrush"), channels=1)
    dev_tree(tmp_path / "dcase2023" / "dev_data", machines=("fan",), channels=1)
    dev_tree(tmp_path / "DCASE2025_task2" / "dev_data", machines=("ToyCar",), channels=1)
    write_clip(tmp_path / "DCASE2025_task2/dev_data/ToyCar/supplemental/section_00_source_supplemental_normal_0000.wav",
               0.1, None)
    write_clip(tmp_path / "plain/ToyDrone/test/section_00_0000.wav", 0.1, None)  # anonymised eval name
    # a 2020 and a 2021 tree, mono
    write_clip(tmp_path / "old/fan/train/normal_id_00_00000000.wav", 0.1, None)
    write_clip(tmp_path / "old/gearbox/source_test/section_00_source_test_anomaly_0000.wav", 0.1, None)
    ix = DatasetIndex.scan(tmp_path)
    assert ix.unparsed == []
    by_top = {}
    for c in ix.clips:
        by_top.setdefault(Path(c.path).relative_to(tmp_path).parts[0], set()).add(c.year)
    assert by_top == {"plain": {None}, "dcase2023": {2023}, "DCASE2025_task2": {2025}, "old": {2020, 2021}}
    assert ix.channel_counts() == {1: len(ix)}
    # one root holding a mono 2025 tree and a stereo 2026 tree: decided per machine folder
    dev_tree(tmp_path / "mixed" / "y2025", machines=("fan",), channels=1)
    dev_tree(tmp_path / "mixed" / "y2026", machines=("fan",), channels=2)
    ix = DatasetIndex.scan(tmp_path / "mixed")
    assert {(Path(c.path).parts[-4], c.year) for c in ix.clips} == {("y2025", None), ("y2026", 2026)}


def test_a_folder_year_wins_over_channels(tmp_path):
    # stereo files under a folder that names 2025: the folder is trusted (no error, mean policy later)
    dev_tree(tmp_path / "dcase2025" / "dev_data", machines=("fan",), channels=2)
    ix = DatasetIndex.scan(tmp_path)
    assert {(c.year, c.channels) for c in ix.clips} == {(2025, 2)} and ix.errors == []


# ------------------------------------------------------------------ mono files in a 2026 tree
def test_mono_file_in_2026_tree_is_an_error_naming_it(tmp_path):
    paths = dev_tree(tmp_path / "dev_data", machines=("fan",))
    mono = write_clip(tmp_path / "dev_data/fan/train/section_00_source_train_normal_0999_car_A2_spd_28V_mic_1_noise_1.wav",
                      0.1, None)
    with pytest.raises(DataError) as ei:
        DatasetIndex.scan(tmp_path)
    assert str(mono) in str(ei.value) and "two-channel" in str(ei.value)
    ix = DatasetIndex.scan(tmp_path, channel_errors="report")
    assert sorted(c.path for c in ix.clips) == sorted(paths)
    assert [(u.path, u.fatal) for u in ix.unparsed] == [(mono, True)] and ix.errors == ix.unparsed
    assert "mono file in a DCASE 2026 tree" in ix.errors[0].reason
    assert "two-channel" in ix.errors[0].reason  # says why the folder counts as 2026


@pytest.mark.parametrize("how", ["machine type", "folder name", "explicit year"])
def test_all_mono_2026_folder_is_all_errors(tmp_path, how):
    if how == "machine type":
        root, machine, year = tmp_path, "gearboxEmu", None
    elif how == "folder name":
        root, machine, year = tmp_path / "dcase2026t2" / "eval_data" / "raw", "ToyDrone", None
    else:
        root, machine, year = tmp_path, "fan", 2026
    paths = dev_tree(root, machines=(machine,), channels=1)
    ix = DatasetIndex.scan(tmp_path, year=year, channel_errors="report")
    assert ix.clips == [] and sorted(u.path for u in ix.errors) == sorted(paths)
    with pytest.raises(DataError, match=f"{len(paths)} file\\(s\\) in a DCASE 2026 tree"):
        DatasetIndex.scan(tmp_path, year=year)


def test_other_channel_counts_in_2026_are_errors_too(tmp_path):
    dev_tree(tmp_path, machines=("valveEmu",))
    p = tmp_path / "valveEmu/train/section_00_source_train_normal_0500_noise_1.wav"
    sf.write(p, np.zeros((100, 4), np.float32), 16000)
    ix = DatasetIndex.scan(tmp_path, channel_errors="report")
    assert [u.path for u in ix.errors] == [p] and "4-channel file" in ix.errors[0].reason


def test_manifest_clips_get_channels(tmp_path):
    paths = dev_tree(tmp_path / "d", machines=("fan",), n_train=(1, 0), n_test=0)
    m = tmp_path / "m.csv"
    m.write_text("path\n" + "".join(f"{p}\n" for p in paths))
    assert [c.channels for c in DatasetIndex.scan(m).clips] == [2]


# ------------------------------------------------------------------ auscult data scan
def test_cli_scan_reports_channels_and_2026(tmp_path):
    paths = dev_tree(tmp_path, machines=("sliderEmu",))
    res = runner.invoke(app, ["data", "scan", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["years"] == {"2026": len(paths)} and d["channels"] == {"2": len(paths)}
    assert {r["channels"] for r in d["counts"]} == {2}
    res = runner.invoke(app, ["data", "scan", str(tmp_path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "channels" in res.output and "near mic" in res.output
    assert "every audio file was parsed" in res.output


def test_cli_scan_mono_in_2026_exits_1_and_names_the_file(tmp_path):
    dev_tree(tmp_path, machines=("sliderEmu",))
    mono = write_clip(tmp_path / "sliderEmu/test/section_00_source_test_normal_0007_noise_1.wav", 0.1, None)
    res = runner.invoke(app, ["data", "scan", str(tmp_path), "--json"])
    assert res.exit_code == 1
    d = json.loads(res.output)
    assert [(u["path"], u["fatal"]) for u in d["unparsed"]] == [(str(mono), True)]
    res = runner.invoke(app, ["data", "scan", str(tmp_path)], env={"COLUMNS": "300"})
    assert res.exit_code == 1
    assert "1 error(s)" in res.output and mono.name in res.output.replace("\n", "").replace("│", "").replace(" ", "")


# ------------------------------------------------------------------ real (mono) trees stay as they were
def test_real_trees_are_mono_and_not_2026(shared_data):
    for name in ("dcase2020-mini", "dcase2021-gearbox-s00", "dcase2023-mini"):
        ix = DatasetIndex.scan(shared_data / name)
        assert ix.errors == [] and len(ix) > 0
        assert 2026 not in {c.year for c in ix.clips}
        assert ix.channel_counts() == {1: len(ix)}
