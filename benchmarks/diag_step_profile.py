"""Where the OS-SCL training (or scoring) step spends its time: the authors' code against auscult's,
op by op, on the same inputs (issue 18: which part of the step can a faster path still shorten?).

    .venv/bin/python benchmarks/diag_step_profile.py --reference /path/to/OS-SCL --torchlibrosa DEPS \\
        [--task train|infer] [--threads 1] [--batch 32] [--iters 3]

Each side runs in a fresh process (the reference with the glibc allocator tuned, auscult with what
every recipe runs unless ``--fastpath`` says otherwise), built exactly as in
``bench_reference_speed.py`` (same inputs, same step closures), warms up, then runs ``--iters`` steps
under ``torch.profiler``. Printed per side: the CPU model and flags, the wall time per step, the
self CPU time per step grouped into families of ops (convolutions forward / backward, normalisation,
FFT, matrix products, optimiser, the rest) and the top ops. A profiler adds overhead per op, so read
the *shares*; wall times come from ``bench_reference_speed.py``.

The question it answers: the share of the reference's step spent in computations auscult runs with
the same kernels and shapes (the MobileFaceNet convolutions) bounds what any fast path that keeps the
reference's float32 numerics can gain: if a fraction ``f`` of the reference's time is work both do
identically, the speed-up is at most ``1 / f``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_reference_speed as brs  # noqa: E402  (the same inputs and step closures)

FAMILIES = [  # first match wins
    ("convolution backward", r"convolution_backward|_slow_conv2d_backward|mkldnn_convolution_backward"),
    ("convolution forward", r"^aten::(mkldnn_convolution|_mkldnn_convolution|_convolution|convolution|conv\w*"
                            r"|_slow_conv2d_forward|thnn_conv\w*|_nnpack\w*)$"),
    ("normalisation", r"batch_norm|layer_norm|native_norm|_norm_"),
    ("FFT / STFT", r"fft|stft"),
    ("matrix products", r"^aten::(mm|addmm|bmm|matmul|baddbmm|linear|dot|mv)$"),
    ("optimiser (foreach)", r"_foreach|adamw|^Optimizer"),
    ("copies / layout", r"^aten::(copy_|contiguous|clone|to|_to_copy|empty_strided|as_strided|cat|stack|view|reshape"
                        r"|permute|transpose|t|expand|index\w*|slice|select|narrow|unsqueeze|squeeze|flatten)$"),
]


def family(name: str) -> str:
    for fam, pat in FAMILIES:
        if re.search(pat, name):
            return fam
    return "other ops"


def child(a) -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    a.inputs, a.opts, a.fastpath = a._inputs, "{}", a.fastpath or ""
    a.warmup = max(1, a.warmup)
    if a._child == "reference":
        a.allocator, a.no_ema, a.row = "tuned", False, "ref tuned allocator"
        step, info = brs.reference_step(a)
    else:
        a.allocator, a.net, a.row = "tuned", "tfstgram", "auscult default"
        step, info = brs.auscult_step(a)
    for _ in range(a.warmup):
        step()
    walls = []
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(a.iters):
            t0 = time.perf_counter()
            step()
            walls.append(time.perf_counter() - t0)
    ops = [{"name": e.key, "self_us": e.self_cpu_time_total, "count": e.count} for e in prof.key_averages()]
    shapes = [{"name": e.key, "self_us": e.self_cpu_time_total, "count": e.count, "shapes": str(e.input_shapes)}
              for e in prof.key_averages(group_by_input_shape=True)]
    print("RESULT " + json.dumps({"info": info, "walls": walls, "ops": ops, "iters": a.iters, "shapes": shapes}),
          flush=True)
    return 0


def report(side: str, r: dict, top: int, shapes_re: str | None) -> dict:
    it = r["iters"]
    total = sum(o["self_us"] for o in r["ops"]) / it / 1e6
    fams: dict[str, float] = {}
    for o in r["ops"]:
        fams[family(o["name"])] = fams.get(family(o["name"]), 0.0) + o["self_us"] / it / 1e6
    walls = sorted(r["walls"])
    print(f"\n## {side}: wall per profiled step {walls[len(walls) // 2]:.3f} s (median of {it}); "
          f"self CPU per step {total:.3f} s; {r['info']}")
    print("\n| family | self CPU s/step | share |\n|---|---:|---:|")
    for fam, t in sorted(fams.items(), key=lambda kv: -kv[1]):
        print(f"| {fam} | {t:.3f} | {100 * t / total:.1f} % |")
    print(f"\n| top op | calls/step | self CPU s/step | share |\n|---|---:|---:|---:|")
    for o in sorted(r["ops"], key=lambda o: -o["self_us"])[:top]:
        t = o["self_us"] / it / 1e6
        print(f"| `{o['name']}` | {o['count'] / it:.0f} | {t:.3f} | {100 * t / total:.1f} % |")
    if shapes_re:
        print(f"\n| op | input shapes | calls/step | self CPU s/step |\n|---|---|---:|---:|")
        for o in sorted((o for o in r["shapes"] if re.search(shapes_re, o["name"])), key=lambda o: -o["self_us"]):
            print(f"| `{o['name']}` | {o['shapes']} | {o['count'] / it:.0f} | {o['self_us'] / it / 1e6:.3f} |")
    return {"total": total, "families": fams}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=os.environ.get("AUSCULT_OSSCL_REFERENCE"))
    ap.add_argument("--torchlibrosa", default=os.environ.get("AUSCULT_OSSCL_DEPS"))
    ap.add_argument("--task", default="train", choices=["train", "infer"])
    ap.add_argument("--sides", nargs="+", default=["reference", "auscult"], choices=["reference", "auscult"])
    ap.add_argument("--fastpath", default="", help="AUSCULT_FASTPATH for the auscult side (default: the recipes')")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--shapes", default=None, help="also list the ops matching this regex per input shape")
    ap.add_argument("--json", default=None, help="write both sides' op tables here")
    ap.add_argument("--_child", choices=["reference", "auscult"], help=argparse.SUPPRESS)
    ap.add_argument("--_inputs", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._child:
        return child(a)
    if "reference" in a.sides and not (a.reference and (Path(a.reference) / "model" / "net.py").is_file()):
        print("--reference: a checkout of github.com/huangswt/OS-SCL is needed for the reference side "
              "(see bench_reference_speed.py --help), or pass --sides auscult", file=sys.stderr)
        return 2
    cpu = brs.cpu_summary()
    print(f"CPU: {cpu['model']} ({cpu['cpus']} CPUs); flags: {cpu['flags']}; load average {brs.loadavg()}; "
          f"task {a.task}, batch {a.batch}, {a.threads} thread(s)")
    out = {}
    with tempfile.TemporaryDirectory(prefix="auscult-prof-") as tmp:
        inputs = str(Path(tmp) / "inputs.npz")
        print(f"inputs: {brs.make_inputs(Path(inputs), a.batch)}")
        for side in a.sides:
            env = {k: v for k, v in os.environ.items() if k not in ("AUSCULT_FASTPATH", "AUSCULT_ALLOCATOR")}
            if side == "auscult":
                env["PYTHONPATH"] = os.pathsep.join([str(brs.SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
                env["AUSCULT_FASTPATH"] = a.fastpath
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", side, "--_inputs", inputs,
                   "--task", a.task, "--threads", str(a.threads), "--batch", str(a.batch),
                   "--warmup", str(a.warmup), "--iters", str(a.iters), "--fastpath", a.fastpath]
            if a.shapes:
                cmd += ["--shapes", a.shapes]
            if a.reference:
                cmd += ["--reference", a.reference]
            if a.torchlibrosa:
                cmd += ["--torchlibrosa", a.torchlibrosa]
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode != 0 or not lines:
                print(f"{side} failed:\n{p.stderr[-3000:]}", file=sys.stderr)
                return 1
            r = json.loads(lines[-1][7:])
            out[side] = {**r, **report(side, r, a.top, a.shapes)}
    if len(out) == 2:
        ref, aus = out["reference"], out["auscult"]
        print("\n## side by side (self CPU s/step)\n\n| family | reference | auscult | reference / auscult |"
              "\n|---|---:|---:|---:|")
        fams = sorted(set(ref["families"]) | set(aus["families"]), key=lambda f: -ref["families"].get(f, 0))
        for f in fams:
            r_, a_ = ref["families"].get(f, 0.0), aus["families"].get(f, 0.0)
            print(f"| {f} | {r_:.3f} | {a_:.3f} | {r_ / a_ if a_ else float('inf'):.2f} |")
        print(f"| **total** | {ref['total']:.3f} | {aus['total']:.3f} | {ref['total'] / aus['total']:.2f} |")
        # the same kernel on the same shapes, called as often on both sides: work a fast path keeping the
        # reference's numerics still has to do (unless it changes the kernel, and with it the rounding)
        key = lambda o: (o["name"], o["shapes"], o["count"])  # noqa: E731
        aus_keys = {key(o): o["self_us"] for o in aus["shapes"]}
        heavy = re.compile(FAMILIES[0][1] + "|" + FAMILIES[1][1] + "|" + FAMILIES[2][1])
        shared = [o for o in ref["shapes"] if key(o) in aus_keys and heavy.search(o["name"])]
        it_r, it_a = ref["iters"], aus["iters"]
        s_ref = sum(o["self_us"] for o in shared) / it_r / 1e6
        s_aus = sum(aus_keys[key(o)] for o in shared) / it_a / 1e6
        print(f"\nconvolutions and normalisation on identical shapes and call counts on both sides "
              f"({len(shared)} kernels): reference {s_ref:.3f} s/step = {100 * s_ref / ref['total']:.1f} % of its "
              f"step; auscult {s_aus:.3f} s/step. If a fast path kept these kernels (and so the reference's "
              f"float32 rounding) and removed *everything* else, the step would be at most "
              f"{ref['total'] / s_ref:.2f}x the reference's.")
    print(f"\nload average at the end: {brs.loadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
