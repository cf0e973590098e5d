"""The engineer's default detector: ``auscult fit`` (method auto) on 95 ten-second recordings, then
scoring one recording, timed end to end as a user runs them.

    .venv/bin/python benchmarks/bench_engineer.py [--rounds 3] [--baseline-src ../main/src]

Data: the DCASE 2021 gearbox section 00 clips in ``../shared/data/dcase2021-gearbox-s00`` (or
``$AUSCULT_SHARED_DATA``): normals ``0000``-``0094`` linked into a temporary folder under plain names
(a user's folder of recordings). Each row runs the CLI in a fresh process, rows alternating:

* ``auscult fit DIR -o model.auscult`` with every default (method auto: picks the detector by data
  size; 5 s windows; threshold on 25 % held-out recordings) -- wall time, CPU time of the process;
* ``auscult score model.auscult CLIP.wav`` on one new recording -- wall and CPU, imports included;
* in-process ``bundle.score_file(CLIP)`` after one warm-up call -- median latency of 20 calls.

Rows: the default fast paths, ``AUSCULT_FASTPATH=plain``, and with ``--baseline-src`` another source
tree (e.g. ``main``). Prints the CPU flags, torch version, threads and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

SCORE_ONE = r"""
import json, statistics, sys, time
from auscult.monitor.bundle import load_bundle
b = load_bundle(sys.argv[1])
b.score_file(sys.argv[2])
ts = []
for _ in range(20):
    t = time.perf_counter(); r = b.score_file(sys.argv[2]); ts.append(time.perf_counter() - t)
print("RESULT " + json.dumps({"median_s": statistics.median(ts), "score": float(r.score)}))
"""


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-src", default=None)
    ap.add_argument("--data", default=None, help="folder holding dcase2021-gearbox-s00 (default ../shared/data)")
    a = ap.parse_args()
    root = Path(a.data or os.environ.get("AUSCULT_SHARED_DATA") or HERE.parent.parent / "shared" / "data")
    src = root / "dcase2021-gearbox-s00" / "dev_data" / "gearbox" / "source_test"
    clips = sorted(src.glob("*.wav"))
    train = [p for p in clips if "_normal_" in p.name and int(p.stem[-4:]) <= 94]
    new = next(p for p in clips if "_anomaly_" in p.name)
    if len(train) != 95:
        print(f"expected 95 normal recordings under {src}, found {len(train)}", file=sys.stderr)
        return 2
    import torch

    from auscult.engine.fastpath import cpu_flags_summary

    base_env = {k: v for k, v in os.environ.items() if k != "AUSCULT_FASTPATH"}
    rows = {"auscult default": dict(base_env, PYTHONPATH=str(SRC)),
            "AUSCULT_FASTPATH=plain": dict(base_env, PYTHONPATH=str(SRC), AUSCULT_FASTPATH="plain")}
    if a.baseline_src:
        rows[f"main ({a.baseline_src})"] = dict(base_env, PYTHONPATH=a.baseline_src)
    results: dict[str, list[dict]] = {k: [] for k in rows}
    print(f"CPU flags: {cpu_flags_summary()}; torch {torch.__version__}; {os.cpu_count()} CPUs, default threads; "
          f"load {loadavg()} at start; {len(train)} x 10 s recordings, scoring {new.name}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gearbox"
        folder.mkdir()
        for i, p in enumerate(train):
            (folder / f"rec_{i:03d}.wav").symlink_to(p)
        names = list(rows)
        for rnd in range(a.rounds):
            for name in (names if rnd % 2 == 0 else names[::-1]):
                env = rows[name]
                bundle = Path(tmp) / f"model-{rnd}-{len(results[name])}.auscult"
                lb = loadavg()
                fit_wall, fit_cpu, _ = timed([sys.executable, "-m", "auscult.cli", "fit", str(folder), "-o", str(bundle)],
                                             env)
                sc_wall, sc_cpu, _ = timed([sys.executable, "-m", "auscult.cli", "score", str(bundle), str(new)], env)
                _, _, out = timed([sys.executable, "-c", SCORE_ONE, str(bundle), str(new)], env)
                r = json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1][7:])
                info = json.loads(subprocess.run(
                    [sys.executable, "-c", "import json,sys; from auscult.monitor.bundle import load_bundle; "
                     "b = load_bundle(sys.argv[1]); print(json.dumps({m: mm.method.name for m, mm in "
                     "b.models.items()}))", str(bundle)],
                    capture_output=True, text=True, env=env).stdout.strip() or "{}")
                row = {"fit_wall": fit_wall, "fit_cpu": fit_cpu, "score_cli_wall": sc_wall, "score_cli_cpu": sc_cpu,
                       "score_in_process_s": r["median_s"], "score": r["score"], "detector": info,
                       "load": f"{lb}->{loadavg()}"}
                results[name].append(row)
                print(f"  {name:28s} fit {fit_wall:7.1f} s (cpu {fit_cpu:6.1f})  score CLI {sc_wall:5.1f} s  "
                      f"in-process {r['median_s'] * 1e3:7.1f} ms  detector {info}  load {row['load']}", flush=True)
    print("\n| row | detector | fit + threshold, wall s | fit CPU s | `auscult score` one clip, wall s | "
          "score_file one clip, ms | load per round |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("fit_wall", "fit_cpu", "score_cli_wall",
                                                                  "score_in_process_s")}
        print(f"| {name} | {rs[0]['detector']} | {med['fit_wall']:.1f} | {med['fit_cpu']:.1f} | "
              f"{med['score_cli_wall']:.1f} | {med['score_in_process_s'] * 1e3:.1f} | "
              f"{', '.join(r['load'] for r in rs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
