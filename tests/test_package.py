import subprocess
import sys

import auscult


def test_version_string():
    assert auscult.__version__.count(".") == 2


def test_cli_version_and_help():
    out = subprocess.run([sys.executable, "-m", "auscult.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert auscult.__version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "auscult.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "data" in out.stdout


def test_import_is_light():
    """`import auscult` and the CLI module must not pull torch (heavy imports live in commands)."""
    code = "import sys, auscult, auscult.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
