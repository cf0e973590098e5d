"""Speed of every registered net: training and inference clips/s, parameters and MACs.

    .venv/bin/python benchmarks/bench_nets.py                 # all nets, batch 32, 2 threads
    .venv/bin/python benchmarks/bench_nets.py --nets mobilefacenet resnet18_tfap --iters 5
    .venv/bin/python benchmarks/bench_nets.py --fastpath      # every net plain vs the CPU fast paths

Each (net, allocator) measurement runs in a fresh subprocess so allocator state and oneDNN
caches do not leak between rows. The glibc allocator is tuned before timing
(``mallopt(M_MMAP_MAX, 0)`` and a large ``M_TRIM_THRESHOLD``: freed conv buffers stay in the
heap instead of being unmapped and page-faulted back every step); MobileFaceNet is also timed
with the default allocator to show the difference.

A training step is forward + backward + SGD step on a mean-squared loss of the net output
(heads and losses excluded); inference is a forward pass under ``torch.inference_mode`` in eval
mode. Times are medians over ``--iters`` steps after ``--warmup`` steps. MACs are counted per
clip with forward hooks on Conv1d/Conv2d/Linear layers (multiply-accumulates of those layers
only; norms, activations and pooling are not counted). Inputs are for a 10 s / 16 kHz clip
(``ClipGeometry``); ``resnet18_tfap`` takes a 64-frame crop, and ``autoencoder`` takes the
``frames - 4`` five-frame vectors of a clip, so its "clip" is that many vectors.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap (no mmap for big blocks, no trimming). True on success."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1
    return ok and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1


def count_macs(net, inputs) -> tuple[int, int]:
    """(MACs of the whole batch, number of conv/linear layers) from forward hooks."""
    import torch
    from torch import nn

    total, layers, handles = [0], [0], []

    def conv_hook(m, inp, out):
        k = 1
        for s in m.kernel_size:
            k *= s
        total[0] += out.numel() * (m.in_channels // m.groups) * k
        layers[0] += 1

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features
        layers[0] += 1

    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    with torch.inference_mode():
        net.eval()(*inputs)
    for h in handles:
        h.remove()
    return total[0], layers[0]


def measure(name: str, batch: int, threads: int, iters: int, warmup: int, duration: float, tuned: bool,
            fast: bool = False) -> dict:
    tuned_ok = tune_allocator() if tuned else False
    import torch

    torch.set_num_threads(threads)
    from auscult.nets import ClipGeometry, build_for_clip

    geo = ClipGeometry(duration=duration)
    torch.manual_seed(0)
    net = build_for_clip(name, geo)
    if fast:  # what the trainer and the methods' scoring do with the CPU fast paths on
        from auscult.engine.fastpath import to_training_layout

        to_training_layout(net)
    per_clip = geo.frames - 4 if name == "autoencoder" else 1
    xs = net.example_inputs(batch * per_clip, seed=0)
    macs, n_layers = count_macs(net, xs)
    params = sum(p.numel() for p in net.parameters())

    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    net.train()
    train_t = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        y = net(*xs)
        (y.float() ** 2).mean().backward()
        opt.step()
        if i >= warmup:
            train_t.append(time.perf_counter() - t0)
    net.eval()
    if fast:
        from auscult.engine.fastpath import to_default_layout
        from auscult.nets.inference import inference_copy

        to_default_layout(net)
        net = inference_copy(net)
    infer_t = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            net(*xs)
            if i >= warmup:
                infer_t.append(time.perf_counter() - t0)
    return {
        "net": name, "allocator": "tuned" if tuned_ok else "default", "path": "fast" if fast else "plain",
        "params": params,
        "macs_per_clip": macs / batch, "layers_counted": n_layers,
        "train_clips_s": batch / statistics.median(train_t), "infer_clips_s": batch / statistics.median(infer_t),
        "train_step_s": statistics.median(train_t), "infer_step_s": statistics.median(infer_t),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="*", default=None, help="net names (default: all registered)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3, help="timed steps per mode (median reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0, help="clip length in seconds")
    ap.add_argument("--compare", nargs="*", default=["mobilefacenet"],
                    help="nets also timed with the default glibc allocator")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--fastpath", action="store_true",
                    help="time every net twice, tuned allocator: plain (AUSCULT_FASTPATH=plain, eval model) and with "
                         "the CPU fast paths (channels-last training as the trainer runs it, inference_copy)")
    ap.add_argument("--_child", nargs=2, metavar=("NET", "ALLOC"), help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a._child:
        name, alloc = a._child
        row = measure(name, a.batch, a.threads, a.iters, a.warmup, a.duration, alloc.startswith("tuned"),
                      fast=alloc == "tuned-fast")
        print("ROW " + json.dumps(row))
        return

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    from auscult.nets import NETS

    names = a.nets or NETS.names()
    if a.fastpath:
        jobs = [(n, alloc) for n in names for alloc in ("tuned", "tuned-fast")]
    else:
        jobs = [(n, "tuned") for n in names] + [(n, "default") for n in a.compare if n in names]
    rows = []
    for name, alloc in jobs:
        cmd = [sys.executable, __file__, "--_child", name, alloc, "--batch", str(a.batch),
               "--threads", str(a.threads), "--iters", str(a.iters), "--warmup", str(a.warmup),
               "--duration", str(a.duration)]
        env = dict(os.environ, AUSCULT_FASTPATH="" if alloc == "tuned-fast" else "plain")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [l for l in out.stdout.splitlines() if l.startswith("ROW ")]
        if out.returncode != 0 or not line:
            print(f"{name} ({alloc}) failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[0][4:]))
        r = rows[-1]
        print(f"  measured {name:<16} {alloc:<8} train {r['train_clips_s']:8.1f} clips/s  "
              f"infer {r['infer_clips_s']:8.1f} clips/s  {json.dumps(r)}", file=sys.stderr, flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nbatch {a.batch}, {a.threads} threads, {a.duration:g} s clips, median of {a.iters} steps "
          f"after {a.warmup} warm-up; load average at end {load:.1f} on {os.cpu_count()} CPUs\n")
    print("| net | allocator | path | params | MMACs/clip | train clips/s | infer clips/s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['net']} | {r['allocator']} | {r.get('path', 'plain')} | {r['params'] / 1e6:.2f} M "
              f"| {r['macs_per_clip'] / 1e6:,.0f} | {r['train_clips_s']:.1f} | {r['infer_clips_s']:.1f} |")
    if a.fastpath:
        print("\nfast / plain (same run):")
        for n in names:
            p = [r for r in rows if r["net"] == n and r.get("path") == "plain"]
            f = [r for r in rows if r["net"] == n and r.get("path") == "fast"]
            if p and f:
                print(f"  {n}: train x{f[0]['train_clips_s'] / p[0]['train_clips_s']:.2f}, "
                      f"inference x{f[0]['infer_clips_s'] / p[0]['infer_clips_s']:.2f}")
    for n in a.compare:
        t = [r for r in rows if r["net"] == n and r["allocator"] == "tuned"]
        d = [r for r in rows if r["net"] == n and r["allocator"] == "default"]
        if t and d:
            print(f"\n{n}: tuned / default allocator = train x{t[0]['train_clips_s'] / d[0]['train_clips_s']:.2f}, "
                  f"inference x{t[0]['infer_clips_s'] / d[0]['infer_clips_s']:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
