"""Measure the glibc allocator tuning (``auscult.engine.runtime.tune_allocator``) on CPU.

Each configuration runs in a fresh subprocess (``mallopt`` must act before the heap grows),
times conv-net training steps (forward + backward + Adam) on log-mel-sized inputs, and prints
the median step time with and without the tuning, and their ratio.

    .venv/bin/python benchmarks/bench_allocator.py [--steps 20] [--batch 16] [--threads 2]

Measured on the project machine (2 CPU cores, torch 2.13.0+cpu, glibc 2.36), 2026-11-21, while
other jobs kept the load average at 6-15 (so absolute times are inflated and noisy):

    run 1 (2 runs each):  small median 0.144 -> 0.113 s/step (1.27x); wide median 13.1 -> 8.7 (1.50x),
                          min 1.81 -> 0.70 (2.6x)
    run 2 (3 runs each):  small median 2.46 -> 2.60 (0.95x), min 1.09x; wide median 9.21 -> 6.03 (1.53x),
                          min 1.48x

The wider net (larger activations, so more large malloc/free per step) gains ~1.5x consistently;
the small net's gain is within the noise. No case measured slower beyond noise, so
``setup_runtime`` applies the tuning for CPU training by default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
tune, steps, batch, threads, n_mels, frames, net = sys.argv[1:]
from auscult.engine.runtime import tune_allocator
ok = tune_allocator() if tune == "1" else False
import torch
from torch import nn
torch.manual_seed(0)
torch.set_num_threads(int(threads))
def block(i, o, s):
    return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
if net == "small":
    model = nn.Sequential(block(1, 32, 2), block(32, 64, 2), block(64, 128, 2), block(128, 128, 2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 16))
else:
    model = nn.Sequential(block(1, 64, 2), block(64, 64, 1), block(64, 128, 2), block(128, 128, 1),
                          block(128, 256, 2), block(256, 256, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(256, 16))
opt = torch.optim.Adam(model.parameters(), 1e-3)
x = torch.randn(int(batch), 1, int(n_mels), int(frames))
y = torch.randint(0, 16, (int(batch),))
times = []
for i in range(int(steps) + 3):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    if i >= 3:
        times.append(time.perf_counter() - t)
print(json.dumps({"tuned": ok, "median": statistics.median(times), "min": min(times)}))
"""


def run(tune: bool, args: argparse.Namespace, net: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, "1" if tune else "0", str(args.steps), str(args.batch),
         str(args.threads), str(args.n_mels), str(args.frames), net],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-mels", type=int, default=128)
    p.add_argument("--frames", type=int, default=313, help="frames per clip (313 = 10 s at 16 kHz, hop 512)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs per configuration")
    args = p.parse_args()
    print(f"conv training step, batch {args.batch} x 1 x {args.n_mels} x {args.frames}, "
          f"{args.threads} threads, {args.steps} timed steps per run, {args.repeats} runs each")
    try:
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(a busy machine inflates medians; min is the steadier figure)")
    except OSError:
        pass
    print(f"{'net':8s} {'allocator':10s} {'median s/step':>14s} {'min s/step':>11s}")
    for net in ("small", "wide"):
        res = {False: [], True: []}
        for _ in range(args.repeats):
            for tune in (False, True):
                res[tune].append(run(tune, args, net))
        med, mins = {}, {}
        for tune in (False, True):
            m = sorted(r["median"] for r in res[tune])[len(res[tune]) // 2]
            mn = min(r["min"] for r in res[tune])
            med[tune] = m
            mins[tune] = mn
            label = "tuned" if tune else "default"
            if tune and not res[tune][0]["tuned"]:
                label = "tuned(n/a)"
            print(f"{net:8s} {label:10s} {m:14.4f} {mn:11.4f}")
        print(f"{net:8s} speed-up default/tuned: median {med[False] / med[True]:.2f}x, "
              f"min {mins[False] / mins[True]:.2f}x")


if __name__ == "__main__":
    main()
