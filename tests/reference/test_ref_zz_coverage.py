"""Every reference fixture file, and every array / value in it, is read by at least one parity test.

The files are enumerated from disk (``../shared/reference/*/*.npz|json``), not from a list kept
here, so a fixture added later fails this test until a parity test uses it. Reads are recorded by
``reftestlib.Recorded`` (the only way the tests here open fixtures). This test runs last (see
``conftest.py``) and needs the whole directory to have run in this process; with a subset
selected (``-k``, single files) it skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reftestlib import ACCESSED, RAN, Recorded, fixture_files

pytestmark = pytest.mark.xdist_group("reference")

HERE = Path(__file__).parent


def test_every_fixture_file_and_key_is_used(ref_root, request):
    ours = [it for it in request.session.items
            if Path(str(it.fspath)).parent == HERE and it.nodeid != request.node.nodeid]
    missing = [it.nodeid for it in ours if it.nodeid not in RAN]
    if missing:
        pytest.skip(f"{len(missing)} of the {len(ours)} other reference tests did not run in this process "
                    f"(run the whole tests/reference directory), e.g. {missing[0]}")
    files = fixture_files(ref_root)
    assert {p.parent.name for p in files} == {"osscl", "asdkit"}
    unused_files, unused_keys = [], []
    for path in files:
        rec = Recorded(path)  # registers every key (read count 0 if no test read it)
        reads = {k: ACCESSED[(rec.name, k)] for k in rec._data}
        if not any(reads.values()):
            unused_files.append(rec.name)
        unused_keys += [f"{rec.name}:{k}" for k, n in reads.items() if n == 0]
    assert not unused_files, f"fixture files no test reads: {unused_files}"
    assert not unused_keys, f"fixture entries no test reads: {unused_keys}"
    # and the recorded reads are of files that exist (no stale names)
    names = {f"{p.parent.name}/{p.name}" for p in files}
    assert {f for f, _ in ACCESSED} <= names
