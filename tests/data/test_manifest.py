"""CSV manifests for own data."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from auscult.data import DatasetIndex, read_manifest, write_manifest
from auscult.errors import DataError


def _wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(32, 0.1, np.float32), 16000)
    return path


def test_only_path_required_relative_to_manifest(tmp_path):
    _wav(tmp_path / "clips/press/a.wav")
    _wav(tmp_path / "clips/press/b.wav")
    m = tmp_path / "lists/m.csv"
    m.parent.mkdir()
    m.write_text("path\n../clips/press/a.wav\n" + str(tmp_path / "clips/press/b.wav") + "\n")
    clips = read_manifest(m)
    assert [c.path.resolve() for c in clips] == [(tmp_path / "clips/press/a.wav").resolve(),
                                                 (tmp_path / "clips/press/b.wav").resolve()]
    assert all(c.path.is_file() for c in clips)
    c = clips[0]
    assert (c.machine, c.section, c.domain, c.split, c.label, c.layout) == \
           ("press", "00", None, "train", "normal", "manifest")


def test_all_columns_and_label_aliases(tmp_path):
    _wav(tmp_path / "x.wav")
    _wav(tmp_path / "y.flac")
    _wav(tmp_path / "z.wav")
    m = tmp_path / "m.csv"
    m.write_text("path,machine,section,domain,split,label\n"
                 "x.wav,pump,3,target,test,1\n"
                 "y.flac,pump,03,source,test,normal\n"
                 "z.wav,pump,,,test,\n")
    a, b, c = read_manifest(m)
    assert (a.machine, a.section, a.domain, a.split, a.label) == ("pump", "03", "target", "test", "anomaly")
    assert (b.section, b.domain, b.label) == ("03", "source", "normal")
    assert (c.section, c.split, c.label) == ("00", "test", None)  # unlabelled test clip


def test_dcase_names_supply_defaults(tmp_path):
    p = _wav(tmp_path / "fan/test/section_02_target_test_anomaly_0007_m-n_W.wav")
    m = tmp_path / "m.csv"
    m.write_text(f"path,machine\n{p},\n")
    (c,) = read_manifest(m)
    assert (c.machine, c.section, c.domain, c.split, c.label, c.index) == ("fan", "02", "target", "test", "anomaly", 7)
    assert c.attributes == {"m-n": "W"}


def test_bad_rows_listed_by_number(tmp_path):
    _wav(tmp_path / "ok.wav")
    m = tmp_path / "bad.csv"
    m.write_text("path,machine,section,domain,split,label\n"
                 "ok.wav,p,00,source,train,normal\n"      # row 2 fine
                 "missing.wav,p,,,,\n"                    # row 3 missing file
                 "ok.wav,p,xx,,,\n"                       # row 4 bad section (and duplicate path)
                 ",p,,,,\n"                               # row 5 empty path
                 "ok.wav,p,,sideways,,\n"                 # row 6 bad domain
                 "ok.wav,p,,,validation,\n"               # row 7 bad split
                 "ok.wav,p,,,,broken\n"                   # row 8 bad label
                 "ok.wav,p,,,train,anomaly\n"             # row 9 anomaly in train
                 "notes.txt,p,,,,\n"                      # row 10 not audio
                 "ok.wav,p,,,,,extra\n"                   # row 11 too many cells
                 "ok.wav,p,,,test,\n")                    # row 12 duplicate path
    with pytest.raises(DataError) as ei:
        read_manifest(m)
    msg = str(ei.value)
    assert "bad.csv" in msg
    assert "[3, 4, 5, 6, 7, 8, 9, 10, 11, 12]" in msg
    for frag in ("missing.wav", "section 'xx'", "empty path", "sideways", "validation", "broken",
                 "anomaly in the train", "not a .wav", "cells", "duplicate path"):
        assert frag in msg, frag


def test_header_errors(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("file,machine\na.wav,p\n")
    with pytest.raises(DataError, match="'path' column"):
        read_manifest(m)
    m.write_text("path,colour\na.wav,red\n")
    with pytest.raises(DataError, match="colour"):
        read_manifest(m)
    m.write_text("path\n")
    with pytest.raises(DataError, match="no clips"):
        read_manifest(m)
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "absent.csv")


def test_round_trip_and_index(tmp_path):
    _wav(tmp_path / "d/press/normal/a.wav")
    _wav(tmp_path / "d/press/anomaly/b.wav")
    ix = DatasetIndex.scan(tmp_path / "d")
    m = write_manifest(ix.clips, tmp_path / "out/m.csv")
    ix2 = DatasetIndex.scan(m)  # scan accepts a manifest too
    key = lambda c: (c.path.resolve(), c.machine, c.section, c.domain, c.split, c.label)  # noqa: E731
    assert sorted(map(key, ix.clips)) == sorted(map(key, ix2.clips))
    assert ix2.counts() == [dict(r, year=None) for r in ix.counts()]
