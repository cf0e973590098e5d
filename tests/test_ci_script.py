"""`.ci/run` installs what the optional tests need (best effort): Chromium and PostgreSQL's server binaries.

Run in its dry-run mode with a PATH we build, so the test neither installs anything nor runs the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".ci" / "run"


def _dry_run(tmp_path, tools=(), pg_versions=()):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("dirname", "id"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    for tool in tools:  # stand-ins: only their presence matters
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    pg = tmp_path / "pglib"
    for v in pg_versions:
        (pg / v / "bin").mkdir(parents=True)
        (pg / v / "bin" / "initdb").write_text("")
    env = {"PATH": str(bin_dir), "AUSCULT_CI_DRY_RUN": "1", "AUSCULT_PG_LIB": str(pg)}
    r = subprocess.run([shutil.which("bash"), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_script_installs_chromium_and_postgresql_when_missing(tmp_path):
    out = _dry_run(tmp_path / "a")
    assert out["missing"].split() == ["chromium", "postgresql"]
    assert out["can install"] == "no"  # no apt-get on this PATH
    out = _dry_run(tmp_path / "b", tools=("apt-get",))
    assert out["can install"] == ("yes" if os.geteuid() == 0 else "no")
    # Debian puts the server binaries under /usr/lib/postgresql/<version>/bin (not on PATH)
    assert _dry_run(tmp_path / "c", tools=("chromium",), pg_versions=("15",))["missing"] == "none"
    assert _dry_run(tmp_path / "d", tools=("chromium", "initdb"))["missing"] == "none"


def test_ci_script_is_valid_bash():
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.access(SCRIPT, os.X_OK)
