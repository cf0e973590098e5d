"""What the CLI prints besides results: warnings and notices as one readable line each."""

from __future__ import annotations

import os
import subprocess
import sys


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "auscult.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


def test_a_warning_is_one_line_without_python_source(tmp_path):
    token = tmp_path / "token.txt"
    token.write_text("a-long-enough-secret-0123456789\n")
    os.chmod(token, 0o644)  # readable by others: read_token_file warns
    r = _cli("serve", "--token-file", token, "--models", tmp_path / "missing.auscult")
    assert r.returncode == 2, r.stderr  # then fails on the missing bundle
    lines = r.stderr.strip().splitlines()
    warn = [ln for ln in lines if "readable by other users" in ln]
    assert warn == [f"warning: {token}: the token file is readable by other users (chmod 600 it)"], r.stderr
    assert not any("warnings.warn" in ln or "UserWarning" in ln or ".py:" in ln for ln in lines), r.stderr
    assert lines[-1].startswith("error: ") and "missing.auscult" in lines[-1]


def test_log_warnings_and_notices_reach_the_console_as_one_line_each():
    code = ("import logging, sys; from typer.testing import CliRunner; from auscult.cli import app; "
            "CliRunner().invoke(app, ['list', '--json']); "  # any command installs the console messages
            "lg = logging.getLogger('auscult.engine.trainer'); "
            "lg.info('resumed from epoch 2 of 3\\n(step 4)', extra={'notice': True}); "
            "lg.info('plain info stays in the run log'); lg.warning('disk almost full')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["resumed from epoch 2 of 3 (step 4)", "warning: disk almost full"], r.stderr
