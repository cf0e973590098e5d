"""HTTP service overhead: scoring requests per second and latency through a real uvicorn server.

Starts ``auscult.monitor.service`` on 127.0.0.1 (one uvicorn process, in a thread of this
script), then posts ``--clip-s``-second 16 kHz WAV clips from ``C`` concurrent httpx clients for
each concurrency ``C`` in ``--concurrency``. Each request is decoded, scored, stored in the
SQLite history (WAL) with its audio, and answered.

By default the model is a null model (score = RMS), so the table measures the service itself
(HTTP, upload parsing, decoding, history writes), i.e. the cost added on top of a model's own
scoring time. With ``--bundle model.auscult`` it serves that bundle instead (end-to-end).

Prints, per concurrency: requests/s, median and 95th-percentile latency (ms) over ``--requests``
requests, and the history rows written (must equal the requests sent).

    .venv/bin/python benchmarks/bench_service.py [--requests 200] [--concurrency 1 4 16] [--clip-s 10]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class _Result:
    score: float
    decision: bool
    threshold: float
    expected_false_alarm_rate: float
    machine: str
    extra: dict = field(default_factory=dict)


class NullBundle:
    """Service-overhead model: score = RMS of the clip."""

    machine_ids = ["bench-0"]
    sample_rate = 16000

    def score_waveform(self, wave, sample_rate, machine=None):
        s = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
        return _Result(s, s > 1.0, 1.0, 0.01, machine or "bench-0")

    def explain_waveform(self, wave, sample_rate, machine=None):  # pragma: no cover - not benchmarked
        raise NotImplementedError


def _wav(seconds: float, sr: int, seed: int) -> bytes:
    import soundfile as sf

    x = (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--clip-s", type=float, default=10.0)
    ap.add_argument("--bundle", type=Path, default=None, help="serve this .auscult bundle instead of the null model")
    args = ap.parse_args()

    import httpx
    import uvicorn

    from auscult.monitor.service import ServiceConfig, create_app

    token = "bench-token-0123456789abcdef"
    state = Path(tempfile.mkdtemp(prefix="auscult-bench-service-"))
    if args.bundle:
        cfg = ServiceConfig(models=[args.bundle], token=token, state_dir=state)
    else:
        cfg = ServiceConfig(bundles=[NullBundle()], token=token, state_dir=state)
    app = create_app(cfg)
    machine = sorted(app.state.models)[0]
    sr = int(app.state.models[machine].sample_rate)
    clips = [_wav(args.clip_s, sr, i) for i in range(8)]

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}/v1/machines/{machine}/score"
    headers = {"Authorization": f"Bearer {token}"}

    print(f"model: {'bundle ' + str(args.bundle) if args.bundle else 'null (RMS): service overhead only'}; "
          f"clip {args.clip_s:g} s at {sr} Hz ({len(clips[0]) / 1e3:.0f} kB WAV); {args.requests} requests per row; "
          f"history: SQLite WAL with clips kept")
    print(f"{'concurrency':>11} {'req/s':>8} {'median ms':>10} {'p95 ms':>8} {'rows':>6}")
    local = threading.local()

    def one(i):
        c = getattr(local, "c", None)
        if c is None:
            c = local.c = httpx.Client(headers=headers, timeout=120)
        t0 = time.perf_counter()
        r = c.post(url, files={"file": (f"c{i}.wav", clips[i % len(clips)], "audio/wav")})
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"request {i}: {r.status_code} {r.text[:200]}")
        return dt

    store = app.state.store
    try:
        for conc in args.concurrency:
            before = store.count(machine)
            with ThreadPoolExecutor(conc) as ex:
                list(ex.map(one, range(max(16, conc))))  # warm-up: connections, threads, first model calls
                before = store.count(machine)
                t0 = time.perf_counter()
                lat = list(ex.map(one, range(args.requests)))
                wall = time.perf_counter() - t0
            rows = store.count(machine) - before
            lat_ms = sorted(x * 1e3 for x in lat)
            p95 = lat_ms[min(len(lat_ms) - 1, int(0.95 * len(lat_ms)))]
            print(f"{conc:>11} {args.requests / wall:>8.1f} {statistics.median(lat_ms):>10.1f} {p95:>8.1f} {rows:>6}")
    finally:
        server.should_exit = True
        th.join(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
