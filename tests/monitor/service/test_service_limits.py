"""The service bounds decoded audio, refuses ambiguous or conflicting uploads, keeps its files private,
documents every answer in its OpenAPI schema, and answers every error as {"detail": "..."}."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import soundfile as sf
from service_testlib import FakeBundle, TOKEN, tone, wav_bytes

from auscult.errors import ConfigError
from auscult.monitor.service import ServiceConfig

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(make_app, **kw):
    from fastapi.testclient import TestClient

    c = TestClient(make_app(**kw), raise_server_exceptions=False)
    c.headers.update(AUTH)
    return c


def _score(c, data, machine="pump-1", name="clip.wav", **kw):
    return c.post(f"/v1/machines/{machine}/score", files={"file": (name, data, "audio/wav")}, **kw)


# ----------------------------------------------------------------------------- decoded duration
def _counting_reads(monkeypatch):
    """Count the frames libsndfile decodes for the service."""
    seen = {"frames": 0}
    real = sf.SoundFile.read

    def read(self, frames=-1, *a, **kw):
        out = real(self, frames, *a, **kw)
        seen["frames"] += len(out)
        return out

    monkeypatch.setattr(sf.SoundFile, "read", read)
    return seen


def test_a_long_clip_in_few_bytes_is_refused_from_its_header(make_app, monkeypatch):
    """A highly compressible FLAC (a minute of near-silence in a few kB) is refused with 413 before a
    single frame is decoded; the answer states the limit."""
    long_quiet = wav_bytes(np.full(60 * 16000, 1e-4, np.float32), 16000, fmt="FLAC")
    assert len(long_quiet) < 100_000  # far below the byte limit: only the duration gives it away
    seen = _counting_reads(monkeypatch)
    with _client(make_app, max_clip_s=10.0) as c:
        r = _score(c, long_quiet, name="hour.flac")
        assert r.status_code == 413, r.text
        detail = r.json()["detail"]
        assert "60 s" in detail and "10 s" in detail and "--max-clip-seconds" in detail, detail
        assert seen["frames"] == 0
        assert c.get("/v1/machines/pump-1/history").json()["count"] == 0
        ok = _score(c, wav_bytes(tone(seconds=10.0, amp=0.1), 16000, fmt="FLAC"))  # exactly at the limit
        assert ok.status_code == 200, ok.text


def test_the_decoded_length_is_bounded_even_when_the_header_understates_it(make_app, monkeypatch):
    """A WAV whose data-chunk size field says "unknown" (0xFFFFFFFF, as streaming writers leave it):
    decoding stops one frame past the limit instead of reading everything there is."""
    raw = bytearray(wav_bytes(tone(seconds=30.0, amp=0.1), 16000))
    pos = raw.find(b"data")
    raw[pos + 4:pos + 8] = b"\xff\xff\xff\xff"
    seen = _counting_reads(monkeypatch)
    with _client(make_app, max_clip_s=5.0) as c:
        r = _score(c, bytes(raw))
        assert r.status_code == 413, r.text
        assert "5 s" in r.json()["detail"]
    assert seen["frames"] <= 5 * 16000 + 1


def test_duration_limit_is_configured_with_a_default_of_minutes(tmp_path):
    cfg = ServiceConfig(bundles=[FakeBundle(["a"])], token=TOKEN, state_dir=tmp_path)
    assert 60 <= cfg.max_clip_s <= 600
    with pytest.raises(ConfigError, match="max_clip_s"):
        ServiceConfig(bundles=[FakeBundle(["a"])], token=TOKEN, state_dir=tmp_path, max_clip_s=0)


# ----------------------------------------------------------------------------- ambiguous / conflicting uploads
def _form(parts, boundary="b0undary"):
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_two_file_fields_are_422_not_a_silent_choice(make_app):
    a, b = wav_bytes(tone(amp=0.05), 16000), wav_bytes(tone(amp=0.9), 16000)
    body, headers = _form([("file", "a.wav", a), ("file", "b.wav", b)])
    with _client(make_app) as c:
        r = c.post("/v1/machines/pump-1/score", content=body, headers=headers)
        assert r.status_code == 422, r.text
        assert "one 'file'" in r.json()["detail"]
        assert c.get("/v1/machines/pump-1/history").json()["count"] == 0


def test_an_idempotency_key_reused_for_other_audio_is_409(make_app):
    h = {"Idempotency-Key": "dev7-2026-05-01T12:00:00"}
    first, other = wav_bytes(tone(amp=0.05), 16000), wav_bytes(tone(amp=0.8), 16000)
    with _client(make_app) as c:
        a = _score(c, first, headers=h)
        assert a.status_code == 200
        again = _score(c, first, name="renamed.wav", headers=h)  # a retry: same bytes
        assert again.status_code == 200 and again.json()["replayed"] and again.json()["id"] == a.json()["id"]
        r = _score(c, other, headers=h)
        assert r.status_code == 409, r.text
        assert "different recording" in r.json()["detail"] and str(a.json()["id"]) in r.json()["detail"]
        raw = c.post("/v1/machines/pump-1/score", content=other, headers={**h, "Content-Type": "audio/wav"})
        assert raw.status_code == 409
        assert c.get("/v1/machines/pump-1/history").json()["count"] == 1


def test_a_concurrent_reuse_of_a_key_with_other_audio_is_409_too(make_app, monkeypatch):
    """The race: both requests pass the early look-up, the store keeps the first; the second learns
    only from the insert that the key is taken, and must still compare the audio."""
    h = {"Idempotency-Key": "race-1"}
    with _client(make_app) as c:
        assert _score(c, wav_bytes(tone(amp=0.05), 16000), headers=h).status_code == 200
        store = c.app.state.store
        real, calls = store.get_by_request_id, []

        def late(key):  # the first look-up (the app's early check) misses, as if the other write was not done
            calls.append(key)
            return None if len(calls) == 1 else real(key)

        monkeypatch.setattr(store, "get_by_request_id", late)
        r = _score(c, wav_bytes(tone(amp=0.8), 16000), headers=h)
        assert r.status_code == 409, r.text
        assert len(calls) == 2  # the early look-up, then the read-back after the refused insert
        monkeypatch.undo()
        assert c.get("/v1/machines/pump-1/history").json()["count"] == 1


# ----------------------------------------------------------------------------- private files
def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_history_database_and_state_folder_are_owner_only(make_app, tmp_path):
    old = os.umask(0o022)  # a typical umask: without care files would be world-readable
    try:
        state = tmp_path / "deep" / "state"
        with _client(make_app, state_dir=state) as c:
            assert _score(c, wav_bytes(tone(), 16000)).status_code == 200  # a clip is stored (audio in the DB)
            files = sorted(p.name for p in state.iterdir())
            assert "history.sqlite" in files
            for name in files:
                assert _mode(state / name) == 0o600, (name, oct(_mode(state / name)))
            assert _mode(state) == 0o700 and _mode(tmp_path / "deep") == 0o700
    finally:
        os.umask(old)


def test_open_store_creates_private_files_and_folders(tmp_path):
    from auscult.monitor.store import open_store

    old = os.umask(0o022)
    try:
        with open_store(f"sqlite:///{tmp_path}/a/b/h.sqlite") as s:
            s.add("m", 1.0, 2.0, False, 0.01, clip=np.zeros(10, np.float32), sample_rate=16000)
        for p in (tmp_path / "a", tmp_path / "a" / "b"):
            assert _mode(p) == 0o700, p
        for p in (tmp_path / "a" / "b").iterdir():
            assert _mode(p) == 0o600, p
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------- OpenAPI
def test_openapi_documents_content_types_headers_and_every_error(make_app):
    with _client(make_app) as c:
        spec = c.get("/openapi.json").json()
    op = spec["paths"]["/v1/machines/{machine_id}/score"]["post"]
    content = op["requestBody"]["content"]
    for ctype in ("multipart/form-data", "audio/wav", "audio/x-wav", "audio/flac", "audio/ogg",
                  "application/octet-stream"):
        assert ctype in content, ctype
    headers = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "header"}
    assert {"Idempotency-Key", "X-Filename"} <= set(headers)
    assert headers["Idempotency-Key"]["schema"]["pattern"]
    for code in ("401", "404", "409", "413", "415", "422"):
        ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorOut"), (code, ref)
    assert spec["components"]["schemas"]["ErrorOut"]["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # the list-shaped default is gone
    schemes = spec["components"]["securitySchemes"].values()
    assert any(s.get("type") == "apiKey" and s.get("name") == "X-Auscult-Token" and s.get("in") == "header"
               for s in schemes)
    for path, methods in spec["paths"].items():
        for method, o in methods.items():
            if path not in ("/health", "/openapi.json"):
                assert "401" in o["responses"], (path, method)
            if "{machine_id}" in path:
                assert "404" in o["responses"], (path, method)
            if o.get("parameters") and any(p["in"] == "query" for p in o["parameters"]):
                assert "422" in o["responses"], (path, method)
    explain = spec["paths"]["/v1/machines/{machine_id}/explain.png"]["get"]
    assert "X-Auscult-Record" in explain["responses"]["200"].get("headers", {})


# ----------------------------------------------------------------------------- one error shape
def test_every_error_answer_is_a_detail_string(make_app):
    from auscult.errors import AudioError

    class Odd(FakeBundle):
        def score_waveform(self, wave, sample_rate, machine=None):
            if machine == "fan-2":
                raise RuntimeError("bug")
            if len(wave) < 8000:
                raise AudioError(None, "too short for this model", "send longer clips")
            return super().score_waveform(wave, sample_rate, machine)

    good = wav_bytes(tone(), 16000)
    with _client(make_app, bundles=[Odd(["pump-1", "fan-2"])], max_upload_mb=1.0, max_clip_s=20.0) as c:
        _score(c, good, headers={"Idempotency-Key": "k1"})
        cases = {
            "401 no token": lambda: c.get("/v1/machines", headers={"Authorization": ""}),
            "401 score": lambda: _score(c, good, headers={"Authorization": "Bearer nope-nope-nope-nope"}),
            "404 machine": lambda: c.get("/v1/machines/nope/history"),
            "404 route": lambda: c.get("/v2/whatever"),
            "404 record": lambda: c.get("/v1/machines/pump-1/explain.png", params={"record": 999}),
            "404 static": lambda: c.get("/static/app.py"),
            "405 method": lambda: c.delete("/v1/machines"),
            "409 machine": lambda: _score(c, good, machine="fan-2", headers={"Idempotency-Key": "k1"}),
            "409 audio": lambda: _score(c, wav_bytes(tone(amp=0.5), 16000), headers={"Idempotency-Key": "k1"}),
            "413 bytes": lambda: _score(c, b"\0" * (2 * 2 ** 20)),
            "413 duration": lambda: _score(c, wav_bytes(np.full(30 * 16000, 1e-4, np.float32), 16000, fmt="FLAC")),
            "415 type": lambda: c.post("/v1/machines/pump-1/score", content=b"{}",
                                       headers={"Content-Type": "application/json"}),
            "415 audio/mpeg": lambda: c.post("/v1/machines/pump-1/score", content=good,
                                             headers={"Content-Type": "audio/mpeg"}),
            "415 not audio": lambda: _score(c, b"not audio at all" * 20),
            "422 empty": lambda: _score(c, b""),
            "422 two files": lambda: c.post("/v1/machines/pump-1/score",
                                            **dict(zip(("content", "headers"),
                                                       _form([("file", "a", good), ("file", "b", good)])))),
            "422 model": lambda: _score(c, wav_bytes(tone(seconds=0.2), 16000)),
            "422 limit": lambda: c.get("/v1/machines/pump-1/history", params={"limit": 0}),
            "422 limit type": lambda: c.get("/v1/machines/pump-1/alerts", params={"limit": "many"}),
            "422 since": lambda: c.get("/v1/machines/pump-1/history", params={"since": "yesterday"}),
            "422 record": lambda: c.get("/v1/machines/pump-1/explain.png", params={"record": "x"}),
            "422 key": lambda: _score(c, good, headers={"Idempotency-Key": "bad key"}),
            "400 length": lambda: c.post("/v1/machines/pump-1/score", content=good,
                                         headers={"Content-Type": "audio/wav", "Content-Length": "-5"}),
            "500 model bug": lambda: _score(c, good, machine="fan-2"),
        }
        for name, call in cases.items():
            r = call()
            want = int(name.split()[0])
            assert r.status_code == want, (name, r.status_code, r.text[:300])
            body = r.json()
            assert isinstance(body, dict) and list(body) == ["detail"], (name, body)
            assert isinstance(body["detail"], str) and len(body["detail"]) > 5, (name, body)
        store = c.app.state.store
        store.close()
        r = c.get("/v1/machines")
        assert r.status_code == 503 and list(r.json()) == ["detail"] and isinstance(r.json()["detail"], str)
