from pathlib import Path

import pytest

from auscult.data.clip import Clip
from auscult.data.groundtruth import (
    TruthRow,
    detect_year,
    ground_truth_filename,
    join_ground_truth,
    read_eval_data_list,
    read_ground_truth,
    read_label_file,
    write_ground_truth,
)
from auscult.errors import DataError


def _clips(machine="fan", section="00", n=6, domains=True):
    out = []
    for i in range(n):
        out.append(
            Clip(
                path=Path(f"/x/{machine}/test/section_{section}_{i:04d}.wav"),
                machine=machine,
                section=section,
                domain=("source" if i % 2 == 0 else "target") if domains else None,
                split="test",
                label="anomaly" if i % 3 == 0 else "normal",
            )
        )
    return out


def test_filenames_per_year():
    assert ground_truth_filename("fan", "01", 2020) == "ground_truth_fan_id_01_test.csv"
    assert ground_truth_filename("fan", "03", 2021, "target") == "ground_truth_fan_section_03_target_test.csv"
    assert ground_truth_filename("ToyCar", "00", 2023) == "ground_truth_ToyCar_section_00_test.csv"
    with pytest.raises(DataError):
        ground_truth_filename("fan", "03", 2021)
    with pytest.raises(DataError):
        ground_truth_filename("fan", "3", 2023)
    with pytest.raises(DataError):
        ground_truth_filename("fan", "00", 2019)


@pytest.mark.parametrize("year", [2020, 2021, 2022, 2023, 2025])
def test_write_read_roundtrip(tmp_path, year):
    clips = _clips("fan", "00", domains=year != 2020) + _clips("ToyCar", "01", 5, domains=year != 2020)
    written = write_ground_truth(clips, tmp_path, year)
    assert all(p.is_file() for p in written)
    rows = read_ground_truth(tmp_path, year)
    assert len(rows) == len(clips)
    want = {(c.machine, c.name): (c.section, c.label, c.domain) for c in clips}
    got = {(r.machine, r.name): (r.section, r.label, r.domain) for r in rows}
    assert got == want
    assert detect_year(tmp_path) == {2020: 2020, 2021: 2021}.get(year, 2022)
    # the data folder itself is accepted too
    assert len(read_ground_truth(tmp_path / "ground_truth_data", year)) == len(clips)


def test_official_2023_format_is_exact(tmp_path):
    write_ground_truth(_clips("bandsaw", "00", 3), tmp_path, 2023)
    data = (tmp_path / "ground_truth_data" / "ground_truth_bandsaw_section_00_test.csv").read_text()
    dom = (tmp_path / "ground_truth_domain" / "ground_truth_bandsaw_section_00_test.csv").read_text()
    assert data == "section_00_0000.wav,1\nsection_00_0001.wav,0\nsection_00_0002.wav,0\n"
    assert dom == "section_00_0000.wav,0\nsection_00_0001.wav,1\nsection_00_0002.wav,0\n"


def test_malformed_rows_name_file_and_line(tmp_path):
    d = tmp_path / "ground_truth_data"
    d.mkdir()
    p = d / "ground_truth_fan_section_00_test.csv"
    p.write_text("a.wav,0\nb.wav,2\n")
    with pytest.raises(DataError, match=r"ground_truth_fan_section_00_test.csv:2"):
        read_label_file(p)
    p.write_text("a.wav,0\na.wav,1\n")
    with pytest.raises(DataError, match="duplicate"):
        read_label_file(p)
    p.write_text("a.wav,0,7\n")
    with pytest.raises(DataError, match="2 columns"):
        read_label_file(p)
    p.write_text("name,label\na.wav,1\n")  # a header line is tolerated
    assert read_label_file(p) == {"a.wav": "anomaly"}


def test_domain_file_missing_or_mismatched(tmp_path):
    write_ground_truth(_clips("fan", "00", 4), tmp_path, 2023)
    dom = tmp_path / "ground_truth_domain" / "ground_truth_fan_section_00_test.csv"
    dom.write_text("section_00_0000.wav,0\n")
    with pytest.raises(DataError, match="list different clips"):
        read_ground_truth(tmp_path, 2023)
    dom.unlink()
    with pytest.raises(DataError, match="domain ground truth missing"):
        read_ground_truth(tmp_path, 2023)


def test_wrong_layout_for_year(tmp_path):
    write_ground_truth(_clips("fan", "00", 4), tmp_path, 2021)
    with pytest.raises(DataError, match="no 2020 ground-truth files"):
        read_ground_truth(tmp_path, 2020)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no 'ground_truth_data/'"):
        read_ground_truth(empty, 2023)
    assert detect_year(empty) is None


def test_eval_data_list_2020(tmp_path):
    p = tmp_path / "eval_data_list.csv"
    p.write_text(
        "fan\nid_01_00000000.wav,normal_id_01_00000010.wav,0\nid_01_00000001.wav,anomaly_id_01_00000003.wav,1\n"
        "pump\nid_03_00000000.wav,normal_id_03_00000000.wav,0\n"
    )
    rows = read_eval_data_list(p)
    assert rows == [
        TruthRow("fan", "01", "id_01_00000000.wav", "normal"),
        TruthRow("fan", "01", "id_01_00000001.wav", "anomaly"),
        TruthRow("pump", "03", "id_03_00000000.wav", "normal"),
    ]
    assert detect_year(tmp_path) == 2020
    assert len(read_ground_truth(tmp_path, 2020)) == 3
    p.write_text("id_01_00000000.wav,x,0\n")
    with pytest.raises(DataError, match="before any machine-type line"):
        read_eval_data_list(p)


def test_join_fills_labels_and_domains():
    clips = _clips("fan", "00", 4)
    bare = [Clip(path=c.path, machine=c.machine, section=c.section, split="test") for c in clips]
    train = Clip(path=Path("/x/fan/train/a.wav"), machine="fan")
    rows = [TruthRow(c.machine, c.section, c.name, c.label, c.domain) for c in clips]
    joined = join_ground_truth(bare + [train], rows)
    assert [(c.label, c.domain) for c in joined[:4]] == [(c.label, c.domain) for c in clips]
    assert joined[4] is train
    stray = Clip(path=Path("/x/fan/test/zzz.wav"), machine="fan", split="test")
    with pytest.raises(DataError, match="zzz.wav"):
        join_ground_truth([stray], rows)
    assert join_ground_truth([stray], rows, strict=False)[0].label is None


def test_2021_names_may_repeat_across_domains(tmp_path):
    d = tmp_path / "ground_truth_data"
    d.mkdir()
    (d / "ground_truth_fan_section_03_source_test.csv").write_text("section_03_0000.wav,0\nsection_03_0001.wav,1\n")
    (d / "ground_truth_fan_section_03_target_test.csv").write_text("section_03_0000.wav,1\nsection_03_0001.wav,0\n")
    rows = read_ground_truth(tmp_path, 2021)
    assert len(rows) == 4
    clips = [Clip(path=Path(f"/e/fan/{dom}_test/section_03_000{i}.wav"), machine="fan", section="03",
                  domain=dom, split="test") for dom in ("source", "target") for i in (0, 1)]
    joined = join_ground_truth(clips, rows)
    assert [c.label for c in joined] == ["normal", "anomaly", "anomaly", "normal"]
    # within one domain a repeat is still an error
    (d / "ground_truth_fan_section_04_source_test.csv").write_text("section_03_0000.wav,0\n")
    with pytest.raises(DataError, match="appears in two ground-truth files"):
        read_ground_truth(tmp_path, 2021)
