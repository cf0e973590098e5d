"""The service over a real model bundle (auscult.monitor.fit on simulated fan recordings).

In-process: the service's answers equal the bundle's own scores, a simulated fault is flagged,
clips too short for the model are input faults (status input_fault, no score), and the explain view renders the bundle's map.
End to end: the ``auscult serve`` command in its own process serves the bundle file.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import warnings

import httpx
import numpy as np
import pytest
import soundfile as sf
from service_testlib import TOKEN, free_port, wav_bytes

pytest.importorskip("auscult.monitor.bundle")

SR = 16000
pytestmark = [pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
              pytest.mark.xdist_group("real_bundle")]


def _render(seed, anomaly=None, duration=3.0):
    from auscult.data.synth import render_clip
    from auscult.data.synth.render import unit_for

    return render_clip("fan", unit=unit_for("fan", "00", 0), seed=seed, duration=duration, anomaly=anomaly,
                       severity=1.0)


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    from auscult.monitor.fit import FitConfig, fit_bundle

    root = tmp_path_factory.mktemp("real_bundle")
    rec = root / "recordings" / "fan"
    rec.mkdir(parents=True)
    for i in range(12):
        sf.write(str(rec / f"rec_{i:03d}.wav"), _render(300 + i), SR)
    out = root / "fan.auscult"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_bundle(rec, out, FitConfig(window_s=1.5, method="logmel_knn"))
    return out


def _decoded(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), dtype="float32")[0]


def test_service_scores_equal_the_bundles_own(bundle_path, tmp_path):
    from fastapi.testclient import TestClient

    from auscult.monitor.bundle import load_bundle
    from auscult.monitor.service import ServiceConfig, create_app

    bundle = load_bundle(bundle_path)
    app = create_app(ServiceConfig(models=[bundle_path], token=TOKEN, state_dir=tmp_path))
    normal = wav_bytes(_render(900), SR)
    faulty = wav_bytes(_render(901, anomaly="rub"), SR)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        machines = c.get("/v1/machines").json()["machines"]
        assert [(m["id"], m["sample_rate"]) for m in machines] == [("fan", bundle.sample_rate)]
        answers = []
        for data in (normal, faulty):
            r = c.post("/v1/machines/fan/score", files={"file": ("clip.wav", data, "audio/wav")})
            assert r.status_code == 200, r.text
            answers.append(r.json())
            own = bundle.score_waveform(_decoded(data), SR, machine="fan")
            assert r.json()["score"] == pytest.approx(own.score, rel=1e-9)
            assert (r.json()["decision"], r.json()["threshold"], r.json()["expected_false_alarm_rate"]) == (
                own.decision, own.threshold, own.expected_false_alarm_rate)
        assert answers[1]["score"] > answers[0]["score"]
        assert answers[1]["decision"] is True
        # too short for the model: an input fault (issue 15 item 2; it was a 422): no score, stored as a fault
        short = c.post("/v1/machines/fan/score", files={"file": ("s.wav", wav_bytes(_render(902)[:200], SR))})
        assert short.status_code == 200, short.text
        assert (short.json()["status"], short.json()["fault"], short.json()["score"]) == ("input_fault", "too_short",
                                                                                         None)
        assert "too short" in short.json()["reason"]
        png = c.get("/v1/machines/fan/explain.png")
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        assert png.headers["x-auscult-record"] == str(answers[1]["id"])  # the worst recent clip
        assert c.get("/v1/machines/fan/history").json()["count"] == 3
        assert c.get("/v1/machines").json()["machines"][0]["n_input_faults"] == 1


def test_torch_threads_setting_applies_and_can_be_left_alone(bundle_path, tmp_path):
    import torch

    from auscult.monitor.service import ServiceConfig, create_app

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        app = create_app(ServiceConfig(models=[bundle_path], token=TOKEN, state_dir=tmp_path, torch_threads=None))
        app.state.store.close()
        assert torch.get_num_threads() == 2
        app = create_app(ServiceConfig(models=[bundle_path], token=TOKEN, state_dir=tmp_path))  # default: 1
        app.state.store.close()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_auscult_serve_command_serves_a_bundle_file(bundle_path, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    port = free_port()
    cmd = [sys.executable, "-m", "auscult.cli", "serve", "--models", str(bundle_path), "--token-file", str(token_file),
           "--port", str(port), "--state-dir", str(tmp_path / "state"), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"auscult serve exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() - t0 < 90, "auscult serve did not come up"
            time.sleep(0.2)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
            r = c.post("/v1/machines/fan/score", files={"file": ("a.wav", wav_bytes(_render(903), SR), "audio/wav")})
            assert r.status_code == 200, r.text
            assert c.get("/v1/machines/fan/history").json()["records"][0]["id"] == r.json()["id"]
            assert httpx.get(url + "/v1/machines").status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert b"dashboard: http://127.0.0.1:" in out
    assert (tmp_path / "state" / "history.sqlite").is_file()
