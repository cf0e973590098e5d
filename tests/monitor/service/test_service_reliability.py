"""Reliability over real HTTP: a uvicorn server on 127.0.0.1, concurrent clients, kills and restarts."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from service_testlib import FakeBundle, free_port, ThreadServer, TOKEN, tone, wav_bytes

from auscult.monitor.service import ServiceConfig, create_app
from auscult.monitor.service.uploads import BodySizeLimit

HERE = Path(__file__).resolve().parent
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_50_concurrent_scoring_requests_store_each_row_once(tmp_path):
    bundle = FakeBundle(["pump-1", "fan-2"], delay_s=0.01)
    app = create_app(ServiceConfig(bundles=[bundle], token=TOKEN, state_dir=tmp_path, max_concurrent_scoring=4))
    clips = [wav_bytes(tone(amp=0.02 + 0.01 * i, seed=i), 16000) for i in range(50)]

    def one(i):
        machine = "pump-1" if i % 2 else "fan-2"
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
            r = c.post(f"/v1/machines/{machine}/score", files={"file": (f"c{i}.wav", clips[i], "audio/wav")},
                       headers={"Idempotency-Key": f"clip-{i}"})
            return i, machine, r.status_code, r.json()

    with ThreadServer(app) as server:
        with ThreadPoolExecutor(max_workers=50) as ex:
            results = list(ex.map(one, range(50)))
        assert all(status == 200 for _, _, status, _ in results), [r for r in results if r[2] != 200][:3]
        ids = [j["id"] for _, _, _, j in results]
        assert len(set(ids)) == 50
        with httpx.Client(base_url=server.url, headers=AUTH) as c:
            rows = {m: c.get(f"/v1/machines/{m}/history", params={"limit": 1000}).json()["records"]
                    for m in ("pump-1", "fan-2")}
            # a client retry of a request it thinks was lost is answered from the history, not re-stored
            again = c.post("/v1/machines/pump-1/score", files={"file": ("c1.wav", clips[1], "audio/wav")},
                           headers={"Idempotency-Key": "clip-1"}).json()
            assert again["replayed"] and again["id"] == results[1][3]["id"]
    assert len(rows["pump-1"]) == 25 and len(rows["fan-2"]) == 25
    stored = {r["request_id"]: r for m in rows for r in rows[m]}
    assert len(stored) == 50 and sorted(r["id"] for r in stored.values()) == sorted(ids)
    for i, machine, _, j in results:  # each row is the answer that client got, for its machine and clip
        row = stored[f"clip-{i}"]
        assert (row["id"], row["machine"], row["score"], row["filename"]) == (j["id"], machine, j["score"], f"c{i}.wav")
    assert bundle.calls == 50


def _wait_up(url, proc, timeout=90.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not come up")


def _start(port, state, max_mb="20"):
    proc = subprocess.Popen([sys.executable, str(HERE / "_service_server.py"), str(port), str(state), TOKEN, max_mb],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_up(f"http://127.0.0.1:{port}", proc)
    return proc


@pytest.mark.slow
def test_restart_keeps_history_even_after_a_kill(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp_path / "state"
    proc = _start(port, state)
    try:
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
            first = [c.post("/v1/machines/pump-1/score", files={"file": ("a.wav", wav_bytes(tone(amp=a), 16000))})
                     .json() for a in (0.05, 0.5, 0.1)]
    finally:
        proc.send_signal(signal.SIGTERM)  # graceful stop
        proc.wait(timeout=30)
    proc = _start(port, state)
    try:
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
            hist = c.get("/v1/machines/pump-1/history").json()["records"]
            assert [(r["id"], r["score"]) for r in hist] == [(j["id"], j["score"]) for j in first]
            assert c.get("/v1/machines/pump-1/worst").json()["id"] == first[1]["id"]  # clips kept too
            assert c.get("/v1/machines/pump-1/explain.png").status_code == 200
            fourth = c.post("/v1/machines/pump-1/score", files={"file": ("d.wav", wav_bytes(tone(), 16000))}).json()
    finally:
        proc.kill()  # no shutdown at all: committed rows must survive
        proc.wait(timeout=30)
    proc = _start(port, state)
    try:
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
            ids = [r["id"] for r in c.get("/v1/machines/pump-1/history").json()["records"]]
            assert ids == [j["id"] for j in first] + [fourth["id"]]
            m = {x["id"]: x for x in c.get("/v1/machines").json()["machines"]}
            assert m["pump-1"]["n_scored"] == 4 and m["pump-1"]["n_anomalous"] == 1
            assert m["pump-1"]["n_alerts"] == 0  # one anomalous clip: no 3-of-5 alert
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_bad_uploads_over_real_http_each_get_their_4xx(tmp_path):
    app = create_app(ServiceConfig(bundles=[FakeBundle(["pump-1"])], token=TOKEN, state_dir=tmp_path,
                                   max_upload_mb=0.25))
    good = wav_bytes(tone(seconds=0.5), 16000)
    cases = {
        "malformed": (b"\x00\x01garbage, not a wav" * 30, 415),
        "truncated": (good[: len(good) - 3001], 422),
        "wrong-rate": (wav_bytes(tone(seconds=0.5, sr=22050), 22050), 422),
        "oversized": (wav_bytes(tone(seconds=9.0), 16000), 413),  # 288 kB > 0.25 MiB
    }
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
        for name, (data, status) in cases.items():
            r = c.post("/v1/machines/pump-1/score", files={"file": (f"{name}.wav", data, "audio/wav")})
            assert r.status_code == status, (name, r.status_code, r.text)
            assert r.json()["detail"], name
        r = c.post("/v1/machines/pump-1/score", content=iter([b"\0" * 65536] * 6),
                   headers={"Content-Type": "audio/wav"})  # chunked, no Content-Length
        assert r.status_code == 413
        assert c.get("/v1/machines/pump-1/history").json()["count"] == 0
        ok = c.post("/v1/machines/pump-1/score", files={"file": ("good.wav", good, "audio/wav")})
        assert ok.status_code == 200  # the service is still healthy after all of that
        assert c.get("/health").json()["status"] == "ok"


# ----------------------------------------------------------------------------- the limit, ASGI-level
def _run_limit(max_bytes, headers, chunks):
    """Drive BodySizeLimit around an app that reads the whole body; return (status, chunks pulled)."""
    pulled = []
    sent = []

    async def app(scope, receive, send):
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read %d" % len(body)})

    async def receive():
        i = len(pulled)
        pulled.append(i)
        if i >= len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodySizeLimit(app, max_bytes)(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1
    return starts[0]["status"], len(pulled)


def test_body_limit_rejects_declared_size_without_reading():
    status, pulled = _run_limit(1000, [(b"content-length", b"5000")], [b"x" * 1000] * 5)
    assert (status, pulled) == (413, 0)


def test_body_limit_stops_reading_a_chunked_body_at_the_limit():
    status, pulled = _run_limit(1000, [], [b"x" * 400] * 50)
    assert status == 413 and pulled == 3  # 1200 bytes seen > 1000: stop, not all 50 chunks


def test_body_limit_passes_bodies_within_the_limit():
    assert _run_limit(1000, [(b"content-length", b"1000")], [b"x" * 500] * 2) == (200, 2)
    assert _run_limit(1000, [(b"content-length", b"-1")], [b"x"])[0] == 400
