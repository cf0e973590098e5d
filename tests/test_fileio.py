import pytest

from auscult.fileio import atomic_write


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "x.bin"
    atomic_write(p, lambda f: f.write(b"one"))
    atomic_write(p, lambda f: f.write(b"two"), sync_dir=True)
    assert p.read_bytes() == b"two"
    assert [q.name for q in p.parent.iterdir()] == ["x.bin"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(p, half_then_fail)
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["x.bin"]
