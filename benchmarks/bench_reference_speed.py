"""auscult's OS-SCL training step and scoring path against the OS-SCL authors' code, same CPU.

    .venv/bin/python benchmarks/bench_reference_speed.py --reference /path/to/OS-SCL

One command, every row (expect ~45-60 min on an idle 2-core machine with the defaults: 3 rounds,
2 warm-ups + 5 timed steps per row and round, batch 32, 2 threads; add ``--rounds 1`` for ~20 min).

**The reference** is the authors' MIT repository https://github.com/huangswt/OS-SCL at commit
``9aca394b33be189d7e8906c6ac19a7d115d91022`` (the one ``../shared/reference/osscl/README.md`` names),
run from a checkout *outside* this project -- nothing of it is copied here and it is never imported
by auscult::

    git clone https://github.com/huangswt/OS-SCL /tmp/OS-SCL && git -C /tmp/OS-SCL checkout 9aca394
    pip install --target /tmp/osscl-deps --no-deps torchlibrosa     # model/waveq.py imports it

and pass ``--reference /tmp/OS-SCL --torchlibrosa /tmp/osscl-deps`` (or set ``AUSCULT_OSSCL_REFERENCE``
and ``AUSCULT_OSSCL_DEPS``). Without ``--torchlibrosa`` and without an importable ``torchlibrosa``
the reference runs with a stand-in ``torchlibrosa.augmentation.SpecAugmentation``: an empty module
with no parameters, as the fixtures' README describes (the real class has no parameters or buffers
and ``TFgram.forward`` never calls it); the table says which one ran. Without ``--reference`` the
reference rows are skipped (auscult's rows still run).

**What is timed** (each row and round in a fresh process, rows in alternating order, the glibc
allocator tuned unless the row says ``stock``; medians over every timed step of every round):

* *train*, reference: the body of ``trainer.py: Trainer.train`` for one batch as shipped --
  ``mixup_data``, ``SCLTFSTgramMFN(cfg={'fussion': 1, 'ht': 'basic'}, num_classes=41, m=0.4, s=30)``
  forward, ``os_scl`` (Noisy-ArcMix + SupCon), ``get_accuracy``, ``zero_grad``, ``backward``, AdamW
  step, ``WeightEMA.step`` (which walks the whole 81 M-entry state dict, the unused PANN trunk
  included) and ``loss.item()``. Its log-mel comes precomputed (the authors compute it in the
  dataset), so its time does not include it. ``ref ... no EMA`` leaves ``WeightEMA.step`` out.
* *train*, auscult: :meth:`auscult.engine.Trainer.train_step` with the step function
  ``OSSCL.fit`` uses, on the model ``recipes/dcase2020/osscl_tfstgram.yaml`` builds: log-mel of
  the batch (included in the time), mixup, TFSTgram-MFN, SupCon + Noisy-ArcMix, backward, AdamW,
  the recipe's EMA (0.9999 with the code's shrink).
* *infer*, reference: ``trainer.py: valid``'s batched forward (eval mode, ``train=True``) plus
  ``ASDLoss(reduction=False)`` = the per-clip anomaly scores; log-mel precomputed.
* *infer*, auscult: the scoring path ``OSSCL.score`` runs per batch (``OSSCL._ce_scores`` on the
  method's scoring model), log-mel of the waveforms included.

Rows ``auscult plain`` (every fast path off, ``AUSCULT_FASTPATH=plain``; for *infer* the eval-mode
model itself), ``auscult default`` (what every recipe runs), and each lever alone on top of plain
(see :mod:`auscult.engine.fastpath`); ``--baseline-src DIR`` adds a row with another auscult source
tree (e.g. ``main``'s ``src``). ``--nets`` also times the log-mel MobileFaceNet
(``recipes/dcase2020/osscl.yaml`` with ReLU / PReLU) rows. ``--logmel`` also runs
``bench_features.py`` (log-mel vs librosa).

Printed: CPU model and SIMD flags, torch version, threads, load average (``/proc/loadavg`` before and
after every row), and per row: clips/s (median wall), s/step, CPU s/step (all threads), first-step
time (compilation included where a row compiles), and the ratio to the tuned reference.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
N_SAMPLES = 160000
N_CLASSES = 41

#: auscult rows: name -> (AUSCULT_FASTPATH value, extra options)
AUSCULT_ROWS = {
    "auscult default": ("", {}),
    "auscult plain": ("plain", {}),
    "plain + channels_last": ("plain,channels_last=1,train_channels_last=1", {}),
    "plain + fused_prelu": ("plain,fused_prelu=1", {}),
    "plain + waveform": ("plain,waveform=1", {}),
    "plain + fold (infer)": ("plain", {"fold": True}),
    "plain + torch.compile": ("plain", {"compile": True}),
    "default + torch.compile": ("", {"compile": True}),
    "default + bf16 (auto)": ("bf16=auto", {}),
    "default + channels-last training": ("train_channels_last=1", {}),
}
REF_ROWS = ("ref stock allocator", "ref tuned allocator", "ref tuned, no EMA (train)")
NETS = {
    "tfstgram": ("dcase2020/osscl_tfstgram", {}),
    "logmel-relu": ("dcase2020/osscl", {"activation": "relu"}),
    "logmel-prelu": ("dcase2020/osscl", {}),
}


# ---------------------------------------------------------------------------------------- helpers
def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def tune_glibc() -> bool:
    """The allocator tuning any user of the reference could copy: no mmap for large blocks, 1 GiB
    trim threshold (what ``auscult.engine.runtime.tune_allocator`` does)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.mallopt(-4, 0) == 1 and libc.mallopt(-1, 1 << 30) == 1
    except (OSError, AttributeError):
        return False


def cpu_summary() -> dict:
    info = {"machine": platform.machine(), "model": "?", "flags": "?", "cpus": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["model"] = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                info["flags"] = " ".join(sorted(f for f in line.split(":", 1)[1].split()
                                                if f.startswith(("avx", "amx", "fma"))))
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def make_inputs(path: Path, batch: int, seed: int = 0) -> str:
    """``batch`` 10 s clips (real gearbox clips from ../shared/data when present, else noise + tones),
    their 2048-point log-mels (the recipes' front-end) and class labels, saved to ``path``."""
    import numpy as np

    sys.path.insert(0, str(SRC))
    import torch

    from auscult.features import FeatureConfig, LogMel

    rng = np.random.default_rng(seed)
    root = Path(os.environ.get("AUSCULT_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
    wavs = sorted((root / "dcase2021-gearbox-s00").rglob("*.wav"))[:batch] if root.is_dir() else []
    clips = []
    if wavs:
        import soundfile as sf

        for p in wavs:
            y, _ = sf.read(p, dtype="float32", always_2d=True)
            clips.append(np.resize(y.mean(1), N_SAMPLES))
        source = f"{len(wavs)} real gearbox clips"
    while len(clips) < batch:
        t = np.arange(N_SAMPLES) / 16000
        clips.append((0.05 * rng.standard_normal(N_SAMPLES) + 0.1 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t))
                     .astype(np.float32))
        source = "synthetic" if not wavs else source
    x = np.stack(clips[:batch]).astype(np.float32)
    with torch.no_grad():
        mel = LogMel(FeatureConfig(n_fft=2048, hop_length=512, n_mels=128)).eval()(torch.from_numpy(x)).numpy()
    y = rng.integers(0, N_CLASSES, batch)
    np.savez(path, x=x, mel=mel, y=y)
    return source


def time_steps(step, warmup: int, iters: int) -> dict:
    wall, cpu = [], []
    first = None
    for i in range(warmup + iters):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i == 0:
            first = dt
        if i >= warmup:
            wall.append(dt)
            cpu.append(dc)
    return {"wall": wall, "cpu": cpu, "first": first}


# ---------------------------------------------------------------------------------------- children
def child_reference(a) -> dict:
    step, info = reference_step(a)
    out = time_steps(step, a.warmup, a.iters)
    out.update(info)
    return out


def reference_step(a):
    """The reference's step for ``a.task`` (a closure) and what describes it; the allocator is tuned
    first unless ``a.allocator == "stock"``."""
    tuned = tune_glibc() if a.allocator == "tuned" else False
    import types

    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(a.threads)
    stand_in = False
    if a.torchlibrosa:
        sys.path.insert(0, a.torchlibrosa)
    try:
        import torchlibrosa.augmentation  # noqa: F401
    except ImportError:
        # the fixtures' README stand-in: SpecAugmentation has no parameters or buffers and is never
        # called by TFgram.forward
        class SpecAugmentation(nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()

        pkg = types.ModuleType("torchlibrosa")
        aug = types.ModuleType("torchlibrosa.augmentation")
        aug.SpecAugmentation = SpecAugmentation
        pkg.augmentation = aug
        sys.modules["torchlibrosa"], sys.modules["torchlibrosa.augmentation"] = pkg, aug
        stand_in = True
    sys.path.insert(0, a.reference)
    from losses import ASDLoss, SupConLoss, WeightEMA  # noqa: E402  (the reference's modules)
    from model.net import SCLTFSTgramMFN  # noqa: E402
    from utils import get_accuracy, mixup_data, os_scl  # noqa: E402

    data = np.load(a.inputs)
    x_wavs = torch.from_numpy(data["x"])[:, None]  # [B, 1, T] as the dataset yields it
    x_mels = torch.from_numpy(data["mel"])[:, None]  # [B, 1, 128, 313]
    labels = torch.from_numpy(data["y"]).long()
    torch.manual_seed(2024)
    np.random.seed(2024)
    cfg = {"fussion": 1, "ht": "basic"}
    net = SCLTFSTgramMFN(cfg=cfg, num_classes=N_CLASSES, m=0.4, s=30)
    device = torch.device("cpu")
    if a.task == "train":
        ema_net = SCLTFSTgramMFN(cfg=cfg, num_classes=N_CLASSES, m=0.4, s=30)
        for p in ema_net.parameters():
            p.detach_()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
        ema = WeightEMA(net, ema_net)
        criterion, suploss = ASDLoss(), SupConLoss()
        with_ema = not a.no_ema

        def step():  # trainer.py: Trainer.train, one batch
            net.train()
            mx_w, mx_m, y_a, y_b, lam, _ = mixup_data(x_wavs, x_mels, labels, device)
            logits, feature = net(mx_w, mx_m, labels)
            loss = os_scl(criterion, logits, y_a, y_b, lam, suploss, feature)
            get_accuracy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if with_ema:
                ema.step()
            loss.item()
    else:
        net.eval()
        test_criterion = ASDLoss(reduction=False)

        def step():  # trainer.py: valid's batched forward + eval.py's per-clip score
            with torch.no_grad():
                logits, _ = net(x_wavs, x_mels, labels, train=True)
                test_criterion(logits, labels).tolist()

    return step, {"allocator_tuned": tuned, "torchlibrosa": "stand-in" if stand_in else "real",
                  "torch": torch.__version__, "threads": torch.get_num_threads()}


def child_auscult(a) -> dict:
    step, info = auscult_step(a)
    out = time_steps(step, a.warmup, a.iters)
    out.update(info)
    return out


def auscult_step(a):
    """auscult's step for ``a.task`` and row ``a.row`` (a closure) and what describes it."""
    if a.allocator == "tuned":
        from auscult.engine.runtime import tune_allocator

        tuned = tune_allocator()
    else:
        tuned = False
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from auscult.methods import FitContext, build_method
    from auscult.recipes import load_recipe

    recipe, net_over = NETS[a.net]
    cfg = load_recipe(recipe)
    cfg["net"] = {**cfg["net"], **net_over}
    cfg["score"] = {**cfg["score"], "batch_size": a.batch}
    m = build_method("osscl", cfg, FitContext(seed=0, quiet=True, device="cpu"))
    m.n_samples, m.classes = N_SAMPLES, [f"class{i:02d}" for i in range(N_CLASSES)]
    torch.manual_seed(0)
    model = m._build_model()
    data = np.load(a.inputs)
    x = torch.from_numpy(data["x"])
    y = torch.from_numpy(data["y"]).long()
    opts = json.loads(a.opts or "{}")
    if opts.get("compile"):
        model.net.compile()
    try:
        from auscult.engine import fastpath

        fp = fastpath.settings().to_dict()
    except ImportError:  # an older source tree (--baseline-src)
        fp = {}
    if a.task == "train":
        from auscult.engine import Trainer
        from auscult.engine.optim import build_optimizer
        from auscult.methods import _neural as nu
        from auscult.methods._neural import build_ema

        tcfg, ocfg, _ = nu.split_train_section(m.train_section, m.context)
        opt = build_optimizer(model, ocfg)
        ema = build_ema(model, m.ema_cfg)

        def step_fn(batch, mdl, state):  # as OSSCL.fit
            xb, yb, _ = batch
            return m.training_loss(getattr(mdl, "module", mdl), xb, yb)

        trainer = Trainer(model, step_fn, [(x, y, None)], opt, None, tcfg, ema=ema)

        def step():
            trainer.train_step((x, y, None))
    else:
        model.eval()
        if a.row == "auscult default" or a.row.startswith("auscult main") or a.row.startswith("default"):
            m.model = model
            scorer = m._scorer()  # what OSSCL.score uses
        elif opts.get("fold"):
            from auscult.nets.inference import inference_copy

            scorer = inference_copy(model, fold=True, channels_last=False)
        elif "channels_last=1" in (a.fastpath or ""):
            from auscult.nets.inference import inference_copy

            scorer = inference_copy(model, fold=False, channels_last=True)
        else:
            scorer = model

        def step():
            m._ce_scores(scorer, x, y).tolist()

    return step, {"allocator_tuned": tuned, "fastpath": fp, "torch": torch.__version__,
                  "threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------------------- parent
def run_child(a, row: str, task: str, side: str, extra: list[str], env: dict) -> dict | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", side, "--_row", row, "--_task", task,
           "--_inputs", a._inputs_path, "--threads", str(a.threads), "--iters", str(a.iters),
           "--warmup", str(a.warmup), "--batch", str(a.batch), *extra]
    before = loadavg()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        print(f"  ! {row} [{task}] failed:\n{p.stderr[-3000:]}", file=sys.stderr, flush=True)
        return None
    r = json.loads(lines[-1][7:])
    r.update({"row": row, "task": task, "load_before": before, "load_after": loadavg(),
              "process_s": time.perf_counter() - t0})
    med = statistics.median(r["wall"])
    print(f"  {task:5s} {row:34s} {a.batch / med:7.2f} clips/s  step {med:7.3f} s  cpu {statistics.median(r['cpu']):7.3f} s"
          f"  first {r['first']:7.2f} s  load {before} -> {r['load_after']}", file=sys.stderr, flush=True)
    return r


def jobs_for(a) -> list[tuple[str, str, str, list[str], dict]]:
    base_env = {k: v for k, v in os.environ.items() if k not in ("AUSCULT_FASTPATH", "AUSCULT_ALLOCATOR")}
    src_env = dict(base_env, PYTHONPATH=os.pathsep.join([str(SRC), base_env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    jobs = []
    for task in a.tasks:
        if a.reference:
            for row in REF_ROWS:
                if task == "infer" and "no EMA" in row:
                    continue
                if a.rows and row not in a.rows:
                    continue
                extra = ["--reference", a.reference, "--allocator", "stock" if "stock" in row else "tuned"]
                if a.torchlibrosa:
                    extra += ["--torchlibrosa", a.torchlibrosa]
                if "no EMA" in row:
                    extra.append("--no-ema")
                jobs.append((row, task, "reference", extra, base_env))
        for net in a.nets:
            for row, (fp, opts) in AUSCULT_ROWS.items():
                if a.rows and row not in a.rows:
                    continue
                if ("(infer)" in row and task == "train") or ("bf16" in row and task == "infer"):
                    continue
                if net != "tfstgram" and row not in ("auscult default", "auscult plain", "default + torch.compile"):
                    continue
                if "compile" in row and not a.compile:
                    continue
                name = row if net == "tfstgram" else f"{net}: {row}"
                env = dict(src_env, AUSCULT_FASTPATH=fp)
                jobs.append((name, task, "auscult", ["--net", net, "--_fastpath", fp, "--_opts", json.dumps(opts)], env))
            if a.baseline_src and net == "tfstgram" and (not a.rows or "auscult main" in a.rows):
                env = dict(base_env, PYTHONPATH=a.baseline_src)
                jobs.append((f"auscult main ({a.baseline_src})", task, "auscult", ["--net", net], env))
    return jobs


def summarise(a, results: list[dict], env_info: dict) -> str:
    lines = []
    lines.append(f"CPU: {env_info['cpu']['model']} ({env_info['cpu']['machine']}, {env_info['cpu']['cpus']} CPUs); "
                 f"flags: {env_info['cpu']['flags']}")
    lines.append(f"torch {env_info['torch']}, {a.threads} threads, batch {a.batch}, 10 s clips, {a.rounds} round(s) x "
                 f"({a.warmup} warm-up + {a.iters} timed steps), each row in a fresh process, alternating order; "
                 f"inputs: {env_info['inputs']}; reference torchlibrosa: {env_info.get('torchlibrosa', '-')}")
    lines.append(f"load average: {env_info['load_start']} at start, {env_info['load_end']} at end; "
                 f"started {env_info['started']}, took {env_info['minutes']:.1f} min")
    for task in a.tasks:
        rows: dict[str, list[dict]] = {}
        for r in results:
            if r["task"] == task:
                rows.setdefault(r["row"], []).append(r)
        if not rows:
            continue
        ref = rows.get("ref tuned allocator")
        ref_wall = statistics.median([t for r in ref for t in r["wall"]]) if ref else None
        ref_cpu = statistics.median([t for r in ref for t in r["cpu"]]) if ref else None
        lines.append("")
        lines.append(f"### {task}")
        lines.append("")
        lines.append("| row | clips/s | s/step (median) | CPU s/step | x tuned ref (wall) | x tuned ref (CPU) "
                     "| first step s | load before -> after (per round) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for name, rs in rows.items():
            wall = statistics.median([t for r in rs for t in r["wall"]])
            cpu = statistics.median([t for r in rs for t in r["cpu"]])
            first = max(r["first"] for r in rs)
            loads = ", ".join(f"{r['load_before']}->{r['load_after']}" for r in rs)
            xw = f"{ref_wall / wall:.2f}" if ref_wall else "-"
            xc = f"{ref_cpu / cpu:.2f}" if ref_cpu else "-"
            lines.append(f"| {name} | {a.batch / wall:.2f} | {wall:.3f} | {cpu:.3f} | {xw} | {xc} | {first:.1f} | {loads} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=os.environ.get("AUSCULT_OSSCL_REFERENCE"),
                    help="checkout of github.com/huangswt/OS-SCL @ 9aca394 (env AUSCULT_OSSCL_REFERENCE)")
    ap.add_argument("--torchlibrosa", default=os.environ.get("AUSCULT_OSSCL_DEPS"),
                    help="folder holding the torchlibrosa package (pip install --target); default: import it, "
                         "else a parameter-free stand-in")
    ap.add_argument("--tasks", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    ap.add_argument("--nets", nargs="+", default=["tfstgram"], choices=list(NETS),
                    help="auscult nets (tfstgram = the reference's network; logmel-* = the log-mel MobileFaceNet)")
    ap.add_argument("--rows", nargs="*", default=None, help="only these row names")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="include the torch.compile rows (their first step compiles: minutes)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-src", default=None, help="another auscult src tree, timed as 'auscult main'")
    ap.add_argument("--logmel", action="store_true", help="also run bench_features.py (log-mel vs librosa)")
    ap.add_argument("--json", default=None, help="write every step time to this file")
    ap.add_argument("--markdown", default=None, help="write the tables to this file")
    # children
    ap.add_argument("--_child", choices=["reference", "auscult"], help=argparse.SUPPRESS)
    ap.add_argument("--_row", default="", help=argparse.SUPPRESS)
    ap.add_argument("--_task", default="train", help=argparse.SUPPRESS)
    ap.add_argument("--_inputs", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_fastpath", default="", help=argparse.SUPPRESS)
    ap.add_argument("--_opts", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--net", default="tfstgram", help=argparse.SUPPRESS)
    ap.add_argument("--allocator", default="tuned", help=argparse.SUPPRESS)
    ap.add_argument("--no-ema", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a._child:
        a.task, a.inputs, a.row, a.fastpath, a.opts = a._task, a._inputs, a._row, a._fastpath, a._opts
        r = child_reference(a) if a._child == "reference" else child_auscult(a)
        print("RESULT " + json.dumps(r), flush=True)
        return 0

    if a.reference and not (Path(a.reference) / "model" / "net.py").is_file():
        print(f"--reference {a.reference}: no model/net.py there; clone github.com/huangswt/OS-SCL (see --help)",
              file=sys.stderr)
        return 2
    if not a.reference:
        print("no --reference (or AUSCULT_OSSCL_REFERENCE): the reference rows are skipped; see --help for how to "
              "get the OS-SCL code", file=sys.stderr)
    import torch

    t_start = time.perf_counter()
    info = {"cpu": cpu_summary(), "torch": torch.__version__, "load_start": loadavg(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with tempfile.TemporaryDirectory(prefix="auscult-bench-") as tmp:
        a._inputs_path = str(Path(tmp) / "inputs.npz")
        info["inputs"] = make_inputs(Path(a._inputs_path), a.batch)
        jobs = jobs_for(a)
        print(f"{len(jobs)} rows x {a.rounds} round(s); CPU flags: {info['cpu']['flags']}", file=sys.stderr, flush=True)
        results = []
        for rnd in range(a.rounds):
            order = jobs if rnd % 2 == 0 else list(reversed(jobs))
            print(f"round {rnd + 1}/{a.rounds}", file=sys.stderr, flush=True)
            for row, task, side, extra, env in order:
                r = run_child(a, row, task, side, extra, env)
                if r is not None:
                    r["round"] = rnd
                    results.append(r)
                    if side == "reference":
                        info["torchlibrosa"] = r.get("torchlibrosa")
    info["load_end"] = loadavg()
    info["minutes"] = (time.perf_counter() - t_start) / 60
    table = summarise(a, results, info)
    print(table)
    if a.markdown:
        Path(a.markdown).write_text(table + "\n")
    if a.json:
        Path(a.json).write_text(json.dumps({"info": info, "results": results}, indent=1))
    if a.logmel:
        print("\n### log-mel vs librosa (bench_features.py)\n", flush=True)
        subprocess.run([sys.executable, str(HERE / "bench_features.py"), "--threads", str(a.threads)],
                       env=dict(os.environ, PYTHONPATH=str(SRC)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
