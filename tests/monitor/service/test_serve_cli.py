"""``auscult serve``: option handling, bundle discovery and refusals (uvicorn itself is stubbed)."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
from service_testlib import FakeBundle, TOKEN
from typer.testing import CliRunner

from auscult.cli import app
from auscult.errors import CheckpointError, ConfigError


@pytest.fixture
def fake_loader(monkeypatch):
    """auscult.monitor.bundle.load_bundle -> a FakeBundle serving the file's stem as machine id."""
    loaded = []

    def load_bundle(path):
        if path.read_bytes() == b"corrupt":
            raise CheckpointError(f"{path}: not an auscult bundle (re-export it)")
        loaded.append(path.name)
        return FakeBundle([path.stem])

    mod = types.ModuleType("auscult.monitor.bundle")
    mod.load_bundle = load_bundle
    monkeypatch.setitem(sys.modules, "auscult.monitor.bundle", mod)
    return loaded


@pytest.fixture
def captured(monkeypatch):
    import uvicorn

    seen = {}

    def run(app_, host, port, log_level):
        seen.update(app=app_, host=host, port=port)

    monkeypatch.setattr(uvicorn, "run", run)
    return seen


@pytest.fixture
def token_file(tmp_path):
    p = tmp_path / "token"
    p.write_text(TOKEN + "\n")
    p.chmod(0o600)
    return p


def test_serve_loads_folders_and_files_and_passes_options(tmp_path, fake_loader, captured, token_file):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("pump-1", "fan-2"):
        (models / f"{name}.auscult").write_bytes(b"x")
    (models / "notes.txt").write_text("not a bundle")
    single = tmp_path / "valve-3.auscult"
    single.write_bytes(b"x")
    r = CliRunner().invoke(app, ["serve", "--models", str(models), str(single), "--token-file", str(token_file),
                                 "--port", "8123", "--max-upload-mb", "2.5", "--state-dir", str(tmp_path / "st"),
                                 "--resample", "--max-clip-seconds", "42", "--alert-k", "2", "--alert-n", "4"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    a = captured["app"]
    assert sorted(a.state.models) == ["fan-2", "pump-1", "valve-3"] and captured["port"] == 8123
    assert captured["host"] == "127.0.0.1"
    cfg = a.state.config
    assert cfg.max_upload_bytes == int(2.5 * 2 ** 20) and cfg.sample_rate_policy == "resample"
    assert cfg.max_clip_s == 42.0 and (cfg.alert_k, cfg.alert_n) == (2, 4)
    assert cfg.token == TOKEN
    assert (tmp_path / "st" / "history.sqlite").is_file()
    assert "dashboard: http://127.0.0.1:8123/dashboard" in r.output
    a.state.store.close()


@pytest.mark.parametrize("args,words", [
    (["--no-auth", "--host", "0.0.0.0"], "anyone on the network"),
    ([], "--token-file"),
    (["--token-file", "{tok}", "--no-auth"], "contradict"),
    (["--token-file", "{empty}"], "token file is empty"),
    (["--token-file", "{tok}", "--db", "mysql://x/y"], "unsupported database URL"),
])
def test_serve_refuses_unsafe_or_broken_settings(tmp_path, fake_loader, captured, token_file, args, words):
    (tmp_path / "m.auscult").write_bytes(b"x")
    (tmp_path / "empty").write_text("  \n")
    args = [a.format(tok=token_file, empty=tmp_path / "empty") for a in args]
    r = CliRunner().invoke(app, ["serve", "--models", str(tmp_path / "m.auscult"), "--state-dir",
                                 str(tmp_path / "st"), *args])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError), r.output
    assert words in str(r.exception)
    assert "app" not in captured


def test_serve_reports_a_corrupt_bundle(tmp_path, fake_loader, captured, token_file):
    (tmp_path / "bad.auscult").write_bytes(b"corrupt")
    r = CliRunner().invoke(app, ["serve", "--models", str(tmp_path / "bad.auscult"), "--token-file", str(token_file),
                                 "--state-dir", str(tmp_path / "st")])
    assert isinstance(r.exception, CheckpointError) and "bad.auscult" in str(r.exception)


def test_serve_error_is_one_line_from_the_real_command(tmp_path):
    """The installed entry point turns the refusal into one red line and exit code 2."""
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "auscult.cli", "serve", "--models", str(tmp_path / "none.auscult"),
                        "--no-auth", "--state-dir", str(tmp_path / "st")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 2
    assert "none.auscult" in r.stderr and "Traceback" not in r.stderr
