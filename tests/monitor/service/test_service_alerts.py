"""Alerts in the service are counted with `auscult watch`'s k-of-n rule, not one per anomalous clip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from service_testlib import FakeBundle, TOKEN, wav_bytes

from auscult.monitor.alerting import track_alerts

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
SR = 16000
#          0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17
PATTERN = [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0]


def _square(level, seconds=1.0):
    return (level * np.where(np.arange(int(seconds * SR)) % 2, 1.0, -1.0)).astype(np.float32)


def _watch_alert_states(pattern, k, n):
    """What `auscult watch` says for the same sequence: one window per clip, the same decisions."""
    from auscult.monitor.bundle import Bundle, MachineModel
    from auscult.monitor.stream import WatchConfig, watch

    from auscult.methods import Method

    class Level(Method):
        """The real method contract, scoring a clip by its RMS (so the test decides the decisions)."""

        name, min_samples = "level", 1

        def fit(self, train, val, audio):
            return self

        def score(self, clips, audio):
            return np.array([float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))) for w in audio.load_many(clips)])

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    b = Bundle({"m": MachineModel(Level({"audio": {"sample_rate": SR}}),
                                  {"value": 0.2, "expected_false_alarm_rate": 0.01, "method": "t"}, {})},
               SR, 1.0, 1.0)
    x = np.concatenate([_square(0.5 if p else 0.05) for p in pattern])
    evs = list(watch(b, io.BytesIO(x.astype("<f4").tobytes()), config=WatchConfig(format="f32le", k=k, n=n)))
    return [e["alert"] for e in evs if e["type"] == "window"], evs[-1]["alerts"]


@pytest.mark.parametrize("k,n", [(3, 5), (2, 3), (1, 1)])
def test_service_alerts_follow_the_watch_rule(make_app, k, n):
    from fastapi.testclient import TestClient

    watch_states, watch_episodes = _watch_alert_states(PATTERN, k, n)
    assert watch_states == track_alerts([bool(p) for p in PATTERN], k, n).states  # one rule, one code
    with TestClient(make_app(bundles=[FakeBundle(["pump-1"])], alert_k=k, alert_n=n)) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        for i, p in enumerate(PATTERN):
            r = c.post("/v1/machines/pump-1/score", files={"file": (f"c{i}.wav", wav_bytes(_square(0.5 if p else 0.05),
                                                                                          SR))})
            assert r.status_code == 200 and r.json()["decision"] == bool(p)
        m = c.get("/v1/machines").json()
        assert m["alert_rule"] == {"k": k, "n": n}
        pump = m["machines"][0]
        assert pump["n_scored"] == len(PATTERN) and pump["n_anomalous"] == sum(PATTERN)
        assert pump["n_alerts"] == watch_episodes and pump["alert"] == watch_states[-1]
        h = c.get("/v1/machines/pump-1/history").json()
        assert [r["alert"] for r in h["records"]] == watch_states
        assert h["alert_episodes"] == watch_episodes and h["alert_rule"] == {"k": k, "n": n}
        # a window of the history still carries the states computed from the whole history
        tail = c.get("/v1/machines/pump-1/history", params={"limit": 4}).json()
        assert [r["alert"] for r in tail["records"]] == watch_states[-4:]
        anomalous = c.get("/v1/machines/pump-1/alerts", params={"limit": 100}).json()
        assert len(anomalous) == sum(PATTERN) and all(r["decision"] for r in anomalous)
        on_at = {i for i, s in enumerate(watch_states) if s}
        assert {int(r["filename"][1:-4]) for r in anomalous if r["alert"]} == {i for i in on_at if PATTERN[i]}
    if (k, n) == (3, 5):
        assert watch_episodes == 1  # the lone positives page nobody; the run of four does


def test_input_faults_are_not_scores_or_decisions_in_the_rule(make_app):
    """A record with status input_fault (issue 15 item 2) does not enter the last-n window."""
    from fastapi.testclient import TestClient

    with TestClient(make_app(bundles=[FakeBundle(["pump-1"])], alert_k=2, alert_n=2)) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        store = c.app.state.store
        store.add("pump-1", 0.5, 0.2, True, 0.01, time=1.0)
        store.add("pump-1", 58.0, 0.2, True, 0.01, time=2.0, extra={"status": "input_fault", "reason": "silent"})
        store.add("pump-1", 0.05, 0.2, False, 0.01, time=3.0)
        h = c.get("/v1/machines/pump-1/history").json()
        assert [r["status"] for r in h["records"]] == ["scored", "input_fault", "scored"]
        assert [r["alert"] for r in h["records"]] == [False, False, False] and h["alert_episodes"] == 0
        m = c.get("/v1/machines").json()["machines"][0]
        assert (m["n_scored"], m["n_anomalous"], m["n_input_faults"], m["n_alerts"]) == (2, 1, 1, 0)
        assert c.get("/v1/machines/pump-1/alerts").json()[0]["time"] == 1.0  # the fault is not an anomalous clip
        assert len(c.get("/v1/machines/pump-1/alerts").json()) == 1


def test_uploaded_sensor_faults_are_input_faults_not_scores(make_app):
    """Issue 15 item 2 through the API: digital silence, a near-silent clip, a clipped clip and an
    8 kHz clip are answered 200 with status input_fault, the fault code and the reason; no score,
    no decision; they are stored (the dashboard's grey crosses) but never enter the k-of-n rule or
    the counts. Before: digital silence was stored as a score and an 8 kHz clip was a 422."""
    import numpy as np
    from fastapi.testclient import TestClient

    from service_testlib import tone, wav_bytes

    silent = np.zeros(16000, np.float32)
    hiss = (1e-5 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)  # -100 dBFS
    clipped = np.clip(tone(amp=5.0), -1.0, 1.0)
    with TestClient(make_app(bundles=[FakeBundle(["pump-1"])], alert_k=1, alert_n=1)) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        answers = []
        for name, data in (("silent", wav_bytes(silent, 16000)), ("hiss", wav_bytes(hiss, 16000, subtype="FLOAT")),
                           ("clipped", wav_bytes(clipped, 16000)), ("8k", wav_bytes(tone(sr=8000), 8000)),
                           ("ok", wav_bytes(tone(amp=0.1), 16000))):
            r = c.post("/v1/machines/pump-1/score", files={"file": (f"{name}.wav", data, "audio/wav")})
            assert r.status_code == 200, r.text
            answers.append(r.json())
        assert [(a["status"], a["fault"]) for a in answers] == [
            ("input_fault", "silent"), ("input_fault", "silent"), ("input_fault", "clipped"),
            ("input_fault", "rate_mismatch"), ("scored", None)]
        for a in answers[:4]:
            assert a["score"] is None and a["decision"] is None
            assert any(w in a["reason"] for w in ("dBFS", "8000 Hz", "full scale"))
        assert answers[4]["score"] is not None and answers[4]["decision"] is False
        h = c.get("/v1/machines/pump-1/history").json()
        assert [r["status"] for r in h["records"]] == ["input_fault"] * 4 + ["scored"]
        m = c.get("/v1/machines").json()["machines"][0]
        assert (m["n_scored"], m["n_anomalous"], m["n_input_faults"], m["n_alerts"], m["alert"]) == (1, 0, 4, 0, False)
        assert c.get("/v1/machines/pump-1/alerts").json() == []
        # a fault has nothing to explain: a clear 422, not a 500
        r = c.get("/v1/machines/pump-1/explain.png", params={"record": answers[0]["id"]})
        assert r.status_code == 422 and "INPUT FAULT (silent)" in r.json()["detail"]
