"""The DCASE file-name grammar, table-driven over every year and quirk in the issue."""

from __future__ import annotations

from pathlib import Path

import pytest

from auscult.data.naming import UnparsedNameError, infer_year, pair_attributes, parse_path
from auscult.errors import DataError

R = Path("/data")

# (relative path, expected fields); fields not named are not checked
CASES = [
    # --- 2020 dev / eval
    ("dcase2020/dev_data/fan/train/normal_id_00_00000000.wav",
     dict(machine="fan", section="00", domain=None, split="train", label="normal", index=0, layout="dcase2020", year=2020)),
    ("dev_data/ToyCar/test/anomaly_id_04_00000123.wav",
     dict(machine="ToyCar", section="04", split="test", label="anomaly", index=123, layout="dcase2020", year=2020)),
    ("eval_data/pump/test/id_05_00000007.wav",
     dict(machine="pump", section="05", split="test", label=None, index=7, layout="dcase2020-eval", year=2020)),
    ("eval_data/pump/train/normal_id_05_00000007.wav",
     dict(machine="pump", section="05", split="train", label="normal", year=2020)),
    # --- 2021: train names with attributes, test folders per domain, anonymised eval names
    ("dcase2021/dev_data/ToyTrain/train/section_02_target_train_normal_0001_A1Spd28VMic1.wav",
     dict(machine="ToyTrain", section="02", domain="target", split="train", label="normal", index=1,
          attributes_raw="A1Spd28VMic1", layout="dcase2021", year=2021)),
    ("dev_data/gearbox/source_test/section_00_source_test_anomaly_0104.wav",
     dict(machine="gearbox", section="00", domain="source", split="test", label="anomaly", index=104,
          attributes_raw="", layout="dcase2021", year=2021)),
    ("dev_data/fan/target_test/section_01_target_test_normal_0005.wav",
     dict(domain="target", split="test", label="normal", layout="dcase2021", year=2021)),
    ("eval_data/fan/target_test/section_03_0042.wav",
     dict(machine="fan", section="03", domain="target", split="test", label=None, index=42, layout="dcase2021")),
    # --- 2022-2025 grammar
    ("dcase2023/dev_data/ToyCar/train/section_00_source_train_normal_0835_car_D2_spd_34V_mic_1.wav",
     dict(machine="ToyCar", domain="source", split="train", label="normal", index=835, layout="dcase2022",
          year=2023, attributes_raw="car_D2_spd_34V_mic_1", attributes={"car": "D2", "spd": "34V", "mic": "1"})),
    ("dev_data/fan/test/section_00_source_test_anomaly_0022_m-n_W.wav",
     dict(label="anomaly", attributes={"m-n": "W"}, attributes_raw="m-n_W", year=None)),
    ("dev_data/gearbox/test/section_00_target_test_anomaly_0040_volt_1.5_wt_130.wav",
     dict(domain="target", attributes={"volt": "1.5", "wt": "130"})),
    ("dev_data/slider/train/section_00_source_train_normal_0959_vel_490_ac_0.03_.wav",
     dict(attributes_raw="vel_490_ac_0.03_", attributes={"vel": "490", "ac": "0.03"})),
    ("dcase2024/dev_data/3DPrinter/train/section_00_target_train_normal_0003_noAttribute.wav",
     dict(machine="3DPrinter", domain="target", attributes_raw="noAttribute", attributes={}, year=2024)),
    ("dev_data/ToyRCCar/test/section_00_source_test_anomaly_1490_weight15_BckgF.wav",
     dict(index=1490, label="anomaly", attributes_raw="weight15_BckgF", attributes={"weight": "15", "BckgF": ""})),
    # names without the split token: the folder says it
    ("dev_data/valve/test/section_01_source_normal_0044_pat_03.wav",
     dict(section="01", domain="source", split="test", label="normal", index=44, attributes={"pat": "03"})),
    ("dev_data/valve/train/section_01_target_normal_0001.wav",
     dict(split="train", domain="target", label="normal")),
    # anonymised eval names 2022-2025
    ("dcase2023/eval_data/ToyDrone/test/section_00_0049.wav",
     dict(machine="ToyDrone", section="00", domain=None, split="test", label=None, index=49,
          layout="dcase-anonymous", year=2023)),
    # 2025 supplemental
    ("dcase2025/dev_data/ToyCar/supplemental/section_00_source_supplemental_normal_0000_noise.wav",
     dict(split="supplemental", label="normal", domain="source", year=2025, layout="dcase2025-supplemental")),
    ("dev_data/AutoTrash/supplemental/section_00_clean_0003.wav",
     dict(split="supplemental", label="normal", year=2025)),
    # 2026: the 2022-2025 grammar with a noise attribute; the organisers' folder name says the year
    ("dcase2026t2/dev_data/raw/ToyCarEmu/train/section_00_source_train_normal_0989_car_A2_spd_28V_mic_1_noise_1.wav",
     dict(machine="ToyCarEmu", section="00", domain="source", split="train", label="normal", index=989,
          layout="dcase2022", year=2026, attributes_raw="car_A2_spd_28V_mic_1_noise_1",
          attributes={"car": "A2", "spd": "28V", "mic": "1", "noise": "1"})),
    ("dcase2026t2/dev_data/raw/fan/test/section_00_target_test_anomaly_0049_noise_2.wav",
     dict(machine="fan", domain="target", split="test", label="anomaly", index=49, year=2026,
          attributes={"noise": "2"})),
    ("dcase2026t2/eval_data/raw/BlowerDustCollector/test/section_00_0199.wav",
     dict(machine="BlowerDustCollector", section="00", domain=None, split="test", label=None, index=199,
          layout="dcase-anonymous", year=2026)),
    # without a year folder the name alone cannot tell 2026 (the index decides from channels)
    ("dev_data/sliderEmu/train/section_00_target_train_normal_0009_noise_1.wav",
     dict(machine="sliderEmu", domain="target", layout="dcase2022", year=None, attributes={"noise": "1"})),
    # uppercase extension, flac
    ("dev_data/fan/train/section_00_source_train_normal_0001_m-n_X.FLAC", dict(machine="fan")),
    # own data and MIMII
    ("my_press/normal/2024-01-01T10-00.wav",
     dict(machine="my_press", split="train", label="normal", layout="folder", section="00")),
    ("plant/my_press/anomaly/broken bearing.wav", dict(machine="my_press", split="test", label="anomaly")),
    ("my_press/test/normal/a.wav", dict(machine="my_press", split="test", label="normal", layout="folder")),
    ("my_press/anomaly/section_00_source_train_normal_0001.wav",
     dict(machine="my_press", split="test", label="anomaly", layout="folder")),
    ("6_dB/fan/id_04/abnormal/00000012.wav",
     dict(machine="fan", section="04", split="test", label="anomaly", index=12, layout="mimii")),
]


@pytest.mark.parametrize("rel,expected", CASES, ids=[c[0] for c in CASES])
def test_parse_every_layout(rel, expected):
    clip = parse_path(R / rel, root=R)
    assert clip.path == R / rel
    for k, v in expected.items():
        assert getattr(clip, k) == v, (k, getattr(clip, k), v)


@pytest.mark.parametrize("rel,expected", CASES, ids=[c[0] for c in CASES])
def test_parse_without_root_agrees(rel, expected):
    a, b = parse_path(R / rel, root=R), parse_path(R / rel)
    assert (a.machine, a.section, a.domain, a.split, a.label, a.index) == \
           (b.machine, b.section, b.domain, b.split, b.label, b.index)


BAD = [
    ("fan/train/notes.txt", "not an audio file"),
    ("fan/train/recording_0001.wav", "matches no DCASE name"),
    ("fan/train/section_00_source_train_normal.wav", "no clip number"),
    ("fan/misc/section_00_source_train_normal_0001.wav", "not a split folder"),
    ("fan/train/section_00_source_test_normal_0001.wav", "name says 'test'"),
    ("fan/source_test/section_00_target_test_normal_0001.wav", "name says 'target'"),
    ("fan/train/anomaly_id_00_00000001.wav", "anomaly in a train"),
    ("fan/train/section_00_source_train_anomaly_0001_a_b.wav", "anomaly in a train"),
    ("fan/supplemental/section_00_source_supplemental_anomaly_0001.wav", "anomaly in supplemental"),
    ("fan/supplemental/clean_0001.wav", "must start with section_SS_"),
    ("train/section_00_source_train_normal_0001.wav", "no machine folder"),
    ("normal/a.wav", "no machine folder"),
]


@pytest.mark.parametrize("rel,reason", BAD, ids=[b[0] for b in BAD])
def test_unparsed_names_raise_with_reason(rel, reason):
    # the root is the file's folder for the last two: there is no folder left for the machine
    root = R / rel.split("/")[0] if rel.count("/") == 1 else R
    with pytest.raises(UnparsedNameError) as ei:
        parse_path(R / rel, root=root)
    assert isinstance(ei.value, DataError)
    assert reason in ei.value.reason
    assert str(R / rel) in str(ei.value)


def test_path_outside_root():
    with pytest.raises(UnparsedNameError, match="not inside"):
        parse_path("/elsewhere/fan/train/section_00_source_train_normal_0001.wav", root=R)


def test_explicit_year_wins_and_year_hint_from_folders():
    p = R / "dcase2023-mini/dev_data/fan/train/section_00_source_train_normal_0001_m-n_X.wav"
    assert parse_path(p, root=R).year == 2023
    assert parse_path(p, root=R, year=2022).year == 2022
    # a year above the root is not taken as a hint
    assert infer_year("/dcase2024/x/fan/train/a.wav", root="/dcase2024/x") is None
    assert infer_year("/x/dcase2024/fan/train/a.wav") == 2024
    assert infer_year("/x/run12345/fan/train/a.wav") is None
    assert infer_year("/tmp/test_2021_train/fan/train/a.wav") is None  # a year inside a word
    assert infer_year("/x/DCASE_2024_task2/fan/train/a.wav") == 2024
    assert infer_year("/x/2025_dev/fan/train/a.wav") == 2025
    assert infer_year("/x/dcase2026t2/dev_data/raw/fan/train/a.wav") == 2026  # the organisers' layout
    assert infer_year("/x/DCASE2026_task2/fan/train/a.wav") == 2026
    assert infer_year("/x/dcase2027/fan/train/a.wav") is None  # not a year auscult knows


def test_root_may_be_the_machine_folder():
    c = parse_path(R / "fan/train/section_00_source_train_normal_0001_a_1.wav", root=R / "fan")
    assert c.machine == "fan" and c.split == "train"
    c = parse_path(R / "my_press/anomaly/x.wav", root=R / "my_press")
    assert (c.machine, c.split, c.label) == ("my_press", "test", "anomaly")


@pytest.mark.parametrize("tail", [
    "", "noAttribute", "_", "a", "a_b_c", "weight15", "x__y__", "spd_28V_mic_1_noise_1", "1_2_3",
    "m-n_W_m-n_X", "k.v-1_2.5_", "___", "ÄÖ_ü",
])
def test_pair_attributes_never_raises(tail):
    out = pair_attributes(tail)
    assert isinstance(out, dict)
    # every non-empty token lands somewhere (as a key, a value or a fused key+value)
    flat = "".join(list(out) + list(out.values())).replace("#2", "")
    for tok in [t for t in tail.split("_") if t and t != "noAttribute"]:
        assert tok in flat or any(k + v == tok for k, v in out.items())


def test_pair_attributes_repeated_keys_kept():
    assert pair_attributes("m-n_W_m-n_X") == {"m-n": "W", "m-n#2": "X"}


def test_generated_names_cover_large_indices_and_all_sections():
    # every section 00..09, both domains, both splits, both labels (train: normal only), wide indices
    for s in range(10):
        for dom in ("source", "target"):
            for split, labels in (("train", ("normal",)), ("test", ("normal", "anomaly"))):
                for lab in labels:
                    for idx in (0, 7, 1490, 123456):
                        name = f"section_{s:02d}_{dom}_{split}_{lab}_{idx:04d}_a_1.wav"
                        c = parse_path(R / "m" / split / name, root=R)
                        assert (c.section, c.domain, c.split, c.label, c.index) == \
                               (f"{s:02d}", dom, split, lab, idx)
                        assert c.attributes == {"a": "1"}
