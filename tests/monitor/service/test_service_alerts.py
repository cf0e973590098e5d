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
