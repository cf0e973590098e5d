"""How many machine streams can one CPU core monitor in real time?

Fits a bundle of each detector kind on simulated fan recordings (speed does not depend on how
well it is trained, so the autoencoder gets few epochs), then, with ONE torch thread:

* **per-window cost**: median wall time of scoring one ``--window`` second window
  (``detector.score_waves([w])``), over ``--repeats`` windows;
* **stream**: a ``--stream-s`` second 16-bit PCM stream pushed through the real ``watch`` path
  (PCM decode, chunking, sliding windows, debouncing), wall time and CPU time measured.

Streams per core = audio seconds processed per CPU second of the watch path (a stream produces
one second of audio per second); cross-checked as ``hop / CPU cost of one window``. CPU time
(``time.process_time``) is the figure to read on a shared machine: wall time includes waiting
for the core.

    .venv/bin/python benchmarks/bench_stream.py [--window 5 --hop 2.5 --stream-s 120 --repeats 30]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SR = 16000


def make_bundles(root: Path, window_s: float, kinds=("logmel_knn", "autoencoder"), epochs: int = 5):
    """{kind: bundle} fitted on 24 simulated 10 s fan recordings."""
    import soundfile as sf

    from auscult.data.synth import render_clip
    from auscult.data.synth.render import unit_for
    from auscult.monitor.fit import FitConfig, fit_bundle

    d = root / "fan"
    d.mkdir(parents=True, exist_ok=True)
    unit = unit_for("fan", "00", 0)
    for i in range(24):
        sf.write(str(d / f"r{i:02d}.wav"), render_clip("fan", unit=unit, seed=i, duration=10.0), SR)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in kinds:
            out[kind], _ = fit_bundle(d, None, FitConfig(window_s=window_s, method=kind, epochs=epochs))
    return out


def stream_bytes(seconds: float, seed: int = 99) -> bytes:
    from auscult.data.synth import render_clip
    from auscult.data.synth.render import unit_for

    x = render_clip("fan", unit=unit_for("fan", "00", 0), seed=seed, duration=seconds)
    return np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--hop", type=float, default=2.5)
    ap.add_argument("--stream-s", type=float, default=120.0)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from auscult.monitor.stream import WatchConfig, watch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bundles = make_bundles(Path(tmp), args.window)
        print(f"# fitted bundles in {time.perf_counter() - t0:.1f} s; torch threads = {torch.get_num_threads()}, "
              f"window {args.window:g} s, hop {args.hop:g} s, {args.stream_s:g} s stream", file=sys.stderr)
    data = stream_bytes(args.stream_s)
    rng = np.random.default_rng(0)
    rows = []
    for kind, b in bundles.items():
        det = b.models["fan"].detector
        n = int(args.window * SR)
        w = (0.1 * rng.standard_normal(n)).astype(np.float32)
        det.score_waves([w])  # warm-up
        walls, cpus = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            det.score_waves([w])
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        per_window, per_window_cpu = statistics.median(walls), statistics.median(cpus)
        cfg = WatchConfig(hop_s=args.hop, format="s16le")
        c0, t0 = time.process_time(), time.perf_counter()
        evs = list(watch(b, io.BytesIO(data), config=cfg))
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        n_win = evs[-1]["windows"]
        rows.append((kind, per_window * 1e3, per_window_cpu * 1e3, n_win, wall, cpu, args.stream_s / cpu,
                     args.hop / per_window_cpu))
    print(f"| detector | {args.window:g} s window: wall ms (median) | CPU ms (median) | stream windows | stream wall s | "
          f"stream CPU s | streams per core (stream CPU) | streams per core (hop / window CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, ms, cms, nw, wall, cpu, spc, spc2 in rows:
        print(f"| {kind} | {ms:.1f} | {cms:.1f} | {nw} | {wall:.2f} | {cpu:.2f} | {spc:.0f} | {spc2:.0f} |")


if __name__ == "__main__":
    main()
