"""Speed of the machine-sound simulator.

Prints a table: per-machine median render time of one clip (single process), then the wall time,
CPU time and clips/s of generating a preset with 1 and N workers, and the speed-up.

    .venv/bin/python benchmarks/bench_synth.py                 # small preset, 1 vs 2 workers
    .venv/bin/python benchmarks/bench_synth.py --preset demo --workers 4 --repeats 5

Wall time on a shared machine depends on its load (printed alongside); CPU time does not much.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time


def _cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="clips per machine for the render table")
    ap.add_argument("--skip-dataset", action="store_true")
    args = ap.parse_args()

    from auscult.data.synth import MACHINES, PRESETS, generate_dataset, render_clip

    dur = PRESETS[args.preset].duration
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"\n| machine | median wall per {dur:g} s clip (ms) | median CPU per clip (ms) |\n|---|---|---|")
    for name in MACHINES:
        times, cpu = [], []
        for i in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            render_clip(name, seed=i, duration=dur)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(f"| {name} | {1000 * statistics.median(times):.1f} | {1000 * statistics.median(cpu):.1f} |")
    if args.skip_dataset:
        return
    print(f"\n| preset | workers | clips | wall (s) | CPU (s) | clips/s |\n|---|---|---|---|---|---|")
    walls = {}
    for w in sorted({1, args.workers}):
        with tempfile.TemporaryDirectory() as d:
            c0, t0 = _cpu(), time.perf_counter()
            root = generate_dataset(args.preset, d, seed=0, workers=w)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            n = sum(1 for _ in root.rglob("*.wav"))
        walls[w] = wall
        print(f"| {args.preset} | {w} | {n} | {wall:.1f} | {cpu:.1f} | {n / wall:.1f} |")
    if len(walls) == 2:
        print(f"\nspeed-up with {args.workers} workers: {walls[1] / walls[args.workers]:.2f}x "
              f"(load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
