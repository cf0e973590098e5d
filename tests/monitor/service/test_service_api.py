"""The HTTP API in-process (TestClient): auth, scoring, validation, history, explain, paths, config."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf
from service_testlib import FakeBundle, TOKEN, tone, wav_bytes

from auscult.errors import ConfigError
from auscult.monitor.service import ServiceConfig, create_app

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def _score(client, machine="pump-1", data=None, name="clip.wav", **kw):
    data = wav_bytes(tone(), 16000) if data is None else data
    return client.post(f"/v1/machines/{machine}/score", files={"file": (name, data, "audio/wav")}, **kw)


# ----------------------------------------------------------------------------- auth
def test_auth_required_and_constant_time(client, monkeypatch):
    import auscult.monitor.service.app as app_mod

    calls = []
    real = app_mod.hmac.compare_digest
    monkeypatch.setattr(app_mod.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    bare = {"Authorization": ""}
    assert client.get("/v1/machines", headers=bare).status_code == 401
    r = client.get("/v1/machines", headers={"Authorization": "Bearer wrong-token-of-some-length"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["detail"]
    assert calls and calls[-1][1] == TOKEN.encode()
    r = client.get("/v1/machines", headers={"Authorization": "", "X-Auscult-Token": TOKEN})
    assert r.status_code == 200
    assert _score(client, headers=bare).status_code == 401
    assert client.get("/v1/machines/pump-1/history", headers=bare).status_code == 401
    assert client.get("/v1/machines/pump-1/explain.png", headers=bare).status_code == 401
    assert client.get("/health", headers=bare).status_code == 200  # probes need no token
    assert client.get("/dashboard", headers=bare).status_code == 200  # static shell; data calls need the token


def test_config_refuses_missing_or_short_token_and_bad_settings(tmp_path):
    b = [FakeBundle(["a"])]
    with pytest.raises(ConfigError, match="--token-file"):
        ServiceConfig(bundles=b, state_dir=tmp_path)
    with pytest.raises(ConfigError, match="16 characters"):
        ServiceConfig(bundles=b, state_dir=tmp_path, token="short")
    with pytest.raises(ConfigError, match="sample_rate_policy"):
        ServiceConfig(bundles=b, state_dir=tmp_path, token=TOKEN, sample_rate_policy="guess")
    with pytest.raises(ConfigError, match="no models"):
        ServiceConfig(state_dir=tmp_path, token=TOKEN)
    with pytest.raises(ConfigError, match="served by two bundles"):
        create_app(ServiceConfig(bundles=[FakeBundle(["a"]), FakeBundle(["a"])], token=TOKEN, state_dir=tmp_path))
    with pytest.raises(ConfigError, match="cannot be served over HTTP"):
        create_app(ServiceConfig(bundles=[FakeBundle(["../etc"])], token=TOKEN, state_dir=tmp_path))
    with pytest.raises(ConfigError, match="model bundle not found"):
        create_app(ServiceConfig(models=[tmp_path / "nope.auscult"], token=TOKEN, state_dir=tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no \\*.auscult"):
        create_app(ServiceConfig(models=[tmp_path / "empty"], token=TOKEN, state_dir=tmp_path))


# ----------------------------------------------------------------------------- scoring
def test_score_multipart_and_raw_body_are_stored(client):
    r = _score(client, data=wav_bytes(tone(amp=0.05), 16000), name="quiet.wav")
    assert r.status_code == 200, r.text
    j = r.json()
    expected = float(np.sqrt(np.mean(np.square(sf.read(io.BytesIO(wav_bytes(tone(amp=0.05), 16000)),
                                                        dtype="float32")[0], dtype=np.float64))))
    assert j["score"] == pytest.approx(expected, rel=1e-6)
    assert (j["decision"], j["threshold"], j["expected_false_alarm_rate"]) == (False, 0.2, 0.01)
    assert j["machine"] == "pump-1" and j["filename"] == "quiet.wav" and j["has_clip"]
    loud = wav_bytes(tone(amp=0.9), 16000, fmt="FLAC")
    r2 = client.post("/v1/machines/pump-1/score", content=loud,
                     headers={"Content-Type": "audio/flac", "X-Filename": "loud.flac"})
    assert r2.status_code == 200, r2.text
    assert r2.json()["decision"] is True and r2.json()["filename"] == "loud.flac"
    hist = client.get("/v1/machines/pump-1/history").json()
    assert [rec["id"] for rec in hist["records"]] == [j["id"], r2.json()["id"]]
    assert client.get("/v1/machines/fan-2/history").json()["count"] == 0
    machines = {m["id"]: m for m in client.get("/v1/machines").json()["machines"]}
    assert set(machines) == {"pump-1", "fan-2"}
    assert machines["pump-1"]["n_scored"] == 2 and machines["pump-1"]["n_anomalous"] == 1
    assert machines["pump-1"]["n_alerts"] == 0  # one anomalous clip is not an alert under the 3-of-5 rule
    assert machines["pump-1"]["sample_rate"] == 16000 and machines["fan-2"]["last_score"] is None
    alerts = client.get("/v1/machines/pump-1/alerts").json()
    assert [a["id"] for a in alerts] == [r2.json()["id"]]


def test_multichannel_upload_is_mixed_to_mono(client):
    x = tone(amp=0.3)
    stereo = np.stack([x, np.zeros_like(x)], axis=1)
    r = _score(client, data=wav_bytes(stereo, 16000, subtype="FLOAT"))
    assert r.status_code == 200
    assert r.json()["score"] == pytest.approx(float(np.sqrt(np.mean((x.astype(np.float64) / 2) ** 2))), rel=1e-5)
    assert r.json()["extra"]["upload_channels"] == 2


def test_idempotency_key_replays_instead_of_duplicating(client):
    h = {"Idempotency-Key": "dev7-2026-05-01T12:00:00"}
    a = _score(client, headers=h)
    b = _score(client, headers=h)  # a retry sends the same audio (other audio with the key is 409:
    assert a.status_code == b.status_code == 200  # test_service_limits.py)
    assert b.json()["replayed"] is True and b.json()["id"] == a.json()["id"] and b.json()["score"] == a.json()["score"]
    assert client.get("/v1/machines/pump-1/history").json()["count"] == 1
    assert _score(client, machine="fan-2", headers=h).status_code == 409
    assert _score(client, headers={"Idempotency-Key": "bad key with spaces"}).status_code == 422


# ----------------------------------------------------------------------------- bad uploads
def _truncated_wav() -> bytes:
    full = wav_bytes(tone(), 16000)
    return full[: len(full) // 2]


def _nan_wav() -> bytes:
    x = tone()
    x[100] = np.nan
    return wav_bytes(x, 16000, subtype="FLOAT")


@pytest.mark.parametrize("data,status,words", [
    (b"this is certainly not audio" * 50, 415, "not a readable audio file"),
    (b"", 422, "empty upload"),
    (None, 422, "truncated"),  # _truncated_wav
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", 422, "truncated"),  # header cut before the data chunk
    ("nan", 422, "NaN"),
    ("8k", 422, "sample rate 8000 Hz"),
    ("zero", 422, "zero samples"),
    ("flac-cut", 422, "truncated or corrupt FLAC"),
])
def test_bad_uploads_get_a_clear_4xx(client, data, status, words):
    if data is None:
        data = _truncated_wav()
    elif data == "nan":
        data = _nan_wav()
    elif data == "8k":
        data = wav_bytes(tone(sr=8000), 8000)
    elif data == "zero":
        data = wav_bytes(np.zeros(0, np.float32), 16000)
    elif data == "flac-cut":
        full = wav_bytes(tone(amp=0.3, seed=3) + 0.05 * np.random.default_rng(0).standard_normal(16000)
                         .astype(np.float32), 16000, fmt="FLAC")
        data = full[: len(full) // 2]
    r = _score(client, data=data)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert client.get("/v1/machines/pump-1/history").json()["count"] == 0  # nothing stored


def test_wrong_content_type_missing_field_and_malformed_multipart(client):
    r = client.post("/v1/machines/pump-1/score", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = client.post("/v1/machines/pump-1/score", files={"other": ("a.wav", wav_bytes(tone(), 16000), "audio/wav")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    r = client.post("/v1/machines/pump-1/score", content=b"--xx\r\ngarbage",
                    headers={"Content-Type": "multipart/form-data; boundary=xx"})
    assert 400 <= r.status_code < 500


def test_resample_policy_scores_other_rates(make_app):
    from fastapi.testclient import TestClient

    with TestClient(make_app(sample_rate_policy="resample")) as c:
        r = c.post("/v1/machines/pump-1/score", files={"file": ("a.wav", wav_bytes(tone(sr=8000, amp=0.3), 8000))},
                   headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        assert r.json()["extra"]["duration_s"] == pytest.approx(1.0, abs=1e-3)


def test_oversized_upload_is_413(client):
    big = wav_bytes(0.1 * np.ones(600_000, np.float32), 16000)  # 1.2 MB > 1 MiB limit
    r = _score(client, data=big)
    assert r.status_code == 413 and "too large" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield b"\0" * 65536

    r = client.post("/v1/machines/pump-1/score", content=chunks(), headers={"Content-Type": "audio/wav"})
    assert r.status_code == 413
    assert client.get("/v1/machines/pump-1/history").json()["count"] == 0


def test_model_errors_become_422_not_500(make_app):
    from fastapi.testclient import TestClient

    from auscult.errors import AudioError

    class Picky(FakeBundle):
        def score_waveform(self, wave, sample_rate, machine=None):
            raise AudioError(None, "clip shorter than the model's 2.0 s window", "send longer clips")

    with TestClient(make_app(bundles=[Picky(["pump-1"])])) as c:
        r = c.post("/v1/machines/pump-1/score", files={"file": ("a.wav", wav_bytes(tone(), 16000))},
                   headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 422 and "shorter than" in r.json()["detail"]


# ----------------------------------------------------------------------------- ids and paths
@pytest.mark.parametrize("mid", ["..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "pump-1%2F..%2F..%2Fx", ".hidden",
                                 "pump-1%00", "PUMP-1", "x" * 300, "%5C..%5Cwin"])
def test_unknown_or_hostile_machine_ids_are_404(client, tmp_path, mid):
    before = sorted(p.name for p in tmp_path.rglob("*"))
    r = _score(client, machine=mid)
    assert r.status_code == 404, (mid, r.status_code, r.text)
    for path in ("history", "alerts", "worst", "explain.png"):
        assert client.get(f"/v1/machines/{mid}/{path}").status_code == 404
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_client_filenames_are_display_only(client, tmp_path):
    import os

    cwd_before = set(os.listdir("."))
    for name in ["../../../../tmp/evil.wav", "..\\..\\evil.wav", "/etc/passwd", "<img src=x onerror=alert(1)>.wav"]:
        r = _score(client, name=name)
        assert r.status_code == 200, r.text
        shown = r.json()["filename"]
        assert "/" not in shown and "\\" not in shown and "<" not in shown and ".." not in shown.strip(".")[:2]
    assert not os.path.exists("/tmp/evil.wav")
    assert set(os.listdir(".")) == cwd_before
    state_files = {p.name for p in (tmp_path / "state").iterdir()}
    assert state_files <= {"history.sqlite", "history.sqlite-wal", "history.sqlite-shm"}


def test_static_assets_are_a_fixed_set(client):
    assert client.get("/static/dashboard.js").status_code == 200
    for bad in ["../app.py", "..%2Fapp.py", "%2e%2e%2fconfig.py", "dashboard.html", "__init__.py"]:
        assert client.get(f"/static/{bad}").status_code == 404
    page = client.get("/dashboard")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    js = client.get("/static/dashboard.js").text
    assert "https://" not in js and "innerHTML" not in js


# ----------------------------------------------------------------------------- history and explain
def test_history_since_accepts_iso_and_unix_and_rejects_junk(client):
    ids = [_score(client).json() for _ in range(3)]
    t_mid = ids[1]["time"]
    by_unix = client.get("/v1/machines/pump-1/history", params={"since": repr(t_mid)}).json()
    assert [r["id"] for r in by_unix["records"]] == [ids[1]["id"], ids[2]["id"]]
    iso = client.get("/v1/machines/pump-1/history", params={"since": "2000-01-01T00:00:00Z"}).json()
    assert iso["count"] == 3
    future = client.get("/v1/machines/pump-1/history", params={"since": "2999-01-01T00:00:00+02:00"}).json()
    assert future["count"] == 0
    assert client.get("/v1/machines/pump-1/history", params={"limit": 1}).json()["records"][0]["id"] == ids[2]["id"]
    r = client.get("/v1/machines/pump-1/history", params={"since": "yesterday"})
    assert r.status_code == 422 and "ISO 8601" in r.json()["detail"]
    assert client.get("/v1/machines/pump-1/history", params={"limit": 0}).status_code == 422


def test_worst_and_explain_png(client):
    assert client.get("/v1/machines/pump-1/worst").json() is None
    assert client.get("/v1/machines/pump-1/explain.png").status_code == 404
    quiet = _score(client, data=wav_bytes(tone(amp=0.05), 16000)).json()
    loud = _score(client, data=wav_bytes(tone(amp=0.6, freq=2000.0), 16000)).json()
    _score(client, data=wav_bytes(tone(amp=0.1), 16000))
    assert client.get("/v1/machines/pump-1/worst").json()["id"] == loud["id"]
    r = client.get("/v1/machines/pump-1/explain.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n" and r.headers["x-auscult-record"] == str(loud["id"])
    w, h = struct.unpack(">II", r.content[16:24])
    assert w >= 400 and h >= 200
    r2 = client.get("/v1/machines/pump-1/explain.png", params={"record": quiet["id"]})
    assert r2.status_code == 200 and r2.headers["x-auscult-record"] == str(quiet["id"]) and r2.content != r.content
    assert client.get("/v1/machines/fan-2/explain.png", params={"record": quiet["id"]}).status_code == 404
    assert client.get("/v1/machines/pump-1/explain.png", params={"record": 9999}).status_code == 404


def test_openapi_schema_lists_the_api(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for p in ["/v1/machines", "/v1/machines/{machine_id}/score", "/v1/machines/{machine_id}/history", "/health"]:
        assert p in paths
    body = paths["/v1/machines/{machine_id}/score"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "413" in paths["/v1/machines/{machine_id}/score"]["post"]["responses"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer"
               for s in spec["components"]["securitySchemes"].values())
    assert client.get("/docs").status_code == 404  # the Swagger page would pull its JS from a CDN
    assert client.get("/redoc").status_code == 404


def test_health_reports_a_dead_store(make_app):
    from fastapi.testclient import TestClient

    app = make_app()
    with TestClient(app) as c:
        assert c.get("/health").json()["status"] == "ok"
        app.state.store.close()
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "degraded"
        r = c.get("/v1/machines", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 503 and "history database" in r.json()["detail"]


# ----------------------------------------------------------------------------- multipart in memory
def _form(parts, boundary="b0undary"):
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_multipart_is_read_in_memory_never_spooled(client, monkeypatch):
    import tempfile

    import starlette.formparsers

    def no_temp(*a, **k):
        raise AssertionError("an upload was spooled to a temporary file")

    for mod in (tempfile, starlette.formparsers):
        for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, no_temp)
    clip = wav_bytes(tone(seconds=25.0, amp=0.3), 16000)  # 800 kB: a generic parser would spool it
    body, headers = _form([("note", None, b"hello"), ("file", "big.wav", clip), ("other", "x.wav", b"ignored")])
    r = client.post("/v1/machines/pump-1/score", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == "big.wav" and r.json()["extra"]["duration_s"] == pytest.approx(25.0)


@pytest.mark.parametrize("body,ctype,words", [
    (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF....",
     "multipart/form-data; boundary=b0undary", "closing boundary"),
    (b"whatever", "multipart/form-data", "boundary"),
    (b"".join(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % i for i in range(20)) + b"--b--\r\n",
     "multipart/form-data; boundary=b", "too many form fields"),
    (b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b",
     "no file in the form"),
])
def test_malformed_multipart_bodies_are_422(client, body, ctype, words):
    r = client.post("/v1/machines/pump-1/score", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]


def test_an_unexpected_model_failure_is_a_json_500(make_app):
    from fastapi.testclient import TestClient

    class Broken(FakeBundle):
        def score_waveform(self, wave, sample_rate, machine=None):
            raise RuntimeError("bug in the model")

    with TestClient(make_app(bundles=[Broken(["pump-1"])]), raise_server_exceptions=False) as c:
        r = c.post("/v1/machines/pump-1/score", files={"file": ("a.wav", wav_bytes(tone(), 16000))},
                   headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 500 and "service log" in r.json()["detail"] and "bug" not in r.text
        assert c.get("/v1/machines/pump-1/history", headers={"Authorization": f"Bearer {TOKEN}"}).json()["count"] == 0


def test_dashboard_assets_are_declared_package_data():
    """A wheel only ships non-Python files that pyproject.toml declares; without them the dashboard 500s."""
    import fnmatch
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    globs = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["auscult"]
    static = repo / "src" / "auscult" / "monitor" / "service" / "static"
    files = [p.relative_to(repo / "src" / "auscult").as_posix() for p in static.iterdir() if p.is_file()]
    assert {"monitor/service/static/dashboard.html", "monitor/service/static/dashboard.js"} <= set(files)
    for f in files:
        assert any(fnmatch.fnmatch(f, g) for g in globs), f"{f} is not in [tool.setuptools.package-data]"
