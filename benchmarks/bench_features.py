"""Log-mel throughput of auscult's front-end against librosa on the same clips.

    .venv/bin/python benchmarks/bench_features.py                 # batch 32 x 10 s, 2 threads
    .venv/bin/python benchmarks/bench_features.py --batch 8 --repeats 9 --seconds 12

Every repeat times every implementation once, in turn (interleaved), so a busy machine slows
all of them alike; the table shows the median over repeats, clips/s, and the ratio to
librosa. librosa is timed two ways: one call on the whole [B, T] batch (its fastest use) and
a loop of per-clip calls (the way most DCASE code calls it). "CPU ms" is the process CPU time
(all threads) per batch: on a shared machine it is the steadier figure. The numerics check
prints the largest |dB| difference of each implementation from librosa run in float64.

Each timed call starts after a short pause (--settle, default 0.2 s, not timed): numpy's
OpenBLAS threads keep spinning for a while after librosa's matmul, and torch's OpenMP threads
after a parallel region; without the pause whichever row runs next pays for the previous
row's spinning threads (measured: auscult 190 ms right after librosa, 36 ms after a pause).

Rows: the default (chunks of one clip spread over ``--threads`` worker threads, each on one
OpenMP thread; the mel product reads the interleaved squared STFT, ``CPU_PAIRED_MEL``), the same
on one core (``CPU_THREAD_POOL = False``), and the previous default (power spectrum, then the mel
product, one core).

--profile prints the time of each stage of the previous one-core CPU log-mel path (framing, rfft,
power, mel product, log) on the same batch, one clip per chunk, at 1 thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32, help="clips per batch (default 32)")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and BLAS (default 2)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per implementation (default 7)")
    p.add_argument("--allocator", choices=["tuned", "default"], default="tuned",
                   help="glibc malloc: 'tuned' = auscult.engine.runtime.tune_allocator() (default)")
    p.add_argument("--settle", type=float, default=0.2,
                   help="untimed pause in seconds before each timed call (default 0.2)")
    p.add_argument("--profile", action="store_true", help="also print a per-stage profile")
    p.add_argument("--data", type=Path, default=None,
                   help="folder of real clips (default: ../shared/data if present, else synthetic)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy/torch load: librosa's BLAS gets the same

    tuned = False
    if args.allocator == "tuned":
        try:
            from auscult.engine.runtime import tune_allocator

            tuned = tune_allocator()
        except ImportError:
            tuned = False

    import numpy as np
    import soundfile as sf
    import torch

    import librosa
    from auscult.features import FeatureConfig, LogMel

    torch.set_num_threads(args.threads)
    sr, n = args.sample_rate, int(round(args.seconds * args.sample_rate))
    clips, source = load_clips(args, n, np, sf)
    base = FeatureConfig(sample_rate=sr, n_fft=1024, hop_length=512, n_mels=128)
    lib_kw = dict(sr=sr, n_fft=base.n_fft, hop_length=base.hop_length, n_mels=base.n_mels)

    def librosa_batch():
        return librosa.power_to_db(librosa.feature.melspectrogram(y=clips, **lib_kw),
                                   ref=1.0, amin=base.eps, top_db=None)

    def librosa_loop():
        return np.stack([librosa.power_to_db(librosa.feature.melspectrogram(y=y, **lib_kw),
                                             ref=1.0, amin=base.eps, top_db=None) for y in clips])

    from auscult.features import frontends

    wave = torch.from_numpy(clips)
    # (module, CPU_PAIRED_MEL, CPU_THREAD_POOL) per row; the defaults are the first row's
    modules = {
        "auscult LogMel default (float32)": (LogMel(base), frontends.CPU_PAIRED_MEL, frontends.CPU_THREAD_POOL),
        "auscult, one core (no worker pool)": (LogMel(base), True, False),
        "auscult, power then mel, one core": (LogMel(base), False, False),
        "auscult LogMel, float64 STFT": (LogMel(base.replace(stft_precision="float64")), frontends.CPU_PAIRED_MEL,
                                         frontends.CPU_THREAD_POOL),
        "auscult conv (ONNX path)": (LogMel(base.replace(stft_impl="conv")), True, False),
    }

    def run_module(m, paired, pool):
        saved = frontends.CPU_PAIRED_MEL, frontends.CPU_THREAD_POOL
        frontends.CPU_PAIRED_MEL, frontends.CPU_THREAD_POOL = paired, pool
        try:
            with torch.inference_mode():
                return m(wave).numpy()
        finally:
            frontends.CPU_PAIRED_MEL, frontends.CPU_THREAD_POOL = saved

    impls = {"librosa, one batched call": librosa_batch, "librosa, per-clip loop": librosa_loop}
    impls.update({name: (lambda v=v: run_module(*v)) for name, v in modules.items()})

    load_before = os.getloadavg()[0]
    outputs = {name: fn() for name, fn in impls.items()}  # warm-up (librosa's first call is slow)
    times: dict[str, list[float]] = {name: [] for name in impls}
    cpu: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(args.repeats):
        for name, fn in impls.items():
            time.sleep(args.settle)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    load_after = os.getloadavg()[0]

    ref64 = librosa.power_to_db(librosa.feature.melspectrogram(y=clips.astype(np.float64), **lib_kw),
                                ref=1.0, amin=base.eps, top_db=None)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    lib_b, lib_l = med["librosa, one batched call"], med["librosa, per-clip loop"]

    print(f"log-mel, batch {args.batch} x {args.seconds:g} s @ {sr} Hz ({source}); n_fft 1024, hop 512, "
          f"128 mels; {args.threads} threads; allocator {'tuned' if tuned else 'default'}; "
          f"median of {args.repeats} interleaved repeats; load avg {load_before:.1f} -> {load_after:.1f}")
    from auscult.engine.fastpath import cpu_flags_summary

    print(f"torch {torch.__version__}, librosa {librosa.__version__}, numpy {np.__version__}; CPU flags: "
          f"{cpu_flags_summary()}")
    header = f"| {'implementation':<35} | {'ms/batch':>9} | {'CPU ms/batch':>12} | {'clips/s':>8} | {'x librosa batch':>15} | {'x librosa loop':>14} | {'max dB diff vs librosa f64':>24} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name in impls:
        diff = float(np.abs(outputs[name].astype(np.float64) - ref64).max())
        print(f"| {name:<35} | {med[name] * 1e3:9.1f} | {statistics.median(cpu[name]) * 1e3:12.1f} | "
              f"{args.batch / med[name]:8.1f} | "
              f"{lib_b / med[name]:15.2f} | {lib_l / med[name]:14.2f} | {diff:24.2e} |")
    if args.profile:
        profile(wave, base, args, torch, np)
    return 0


def profile(wave, base, args, torch, np) -> None:
    """Per-stage times of the CPU log-mel path, chunk by chunk (one clip each), 1 thread."""
    from auscult.features import Spectrogram
    from auscult.features.frontends import _mel_blocks, _to_db_, mel_filterbank_tensor
    from auscult.features.stft import _abs2, hann_window

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    spec, fb = Spectrogram(base), mel_filterbank_tensor(base)
    window, pad = hann_window(base), base.n_fft // 2
    totals: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        stage = dict.fromkeys(["pad + frames x window", "rfft", "re^2 + im^2", "mel (banded)",
                               "mel (dense matmul, for scale)", "log (in place)", "to [B, mels, frames]"], 0.0)
        with torch.inference_mode():
            for clip in wave.split(1):
                t = [time.perf_counter()]
                padded = clip.new_zeros(1, clip.shape[1] + 2 * pad)
                padded[:, pad:pad + clip.shape[1]] = clip
                frames = padded.unfold(-1, base.n_fft, base.hop_length) * window
                t.append(time.perf_counter())
                z = torch.fft.rfft(frames, dim=-1)
                t.append(time.perf_counter())
                power = _abs2(z)
                t.append(time.perf_counter())
                mel = torch.cat([torch.matmul(power[..., k0:k1], w) for k0, k1, w in _mel_blocks(base, fb)], -1)
                t.append(time.perf_counter())
                torch.matmul(power, fb.t())
                t.append(time.perf_counter())
                _to_db_(mel, base.eps)
                t.append(time.perf_counter())
                mel.transpose(1, 2).contiguous()
                t.append(time.perf_counter())
                for key, a, b in zip(stage, t, t[1:]):
                    stage[key] += b - a
        for key, value in stage.items():
            totals.setdefault(key, []).append(value)
    torch.set_num_threads(threads)
    print(f"\nstage profile, 1 thread, {len(wave)} clips one at a time (median of {args.repeats}):")
    for key, values in totals.items():
        print(f"  {key:<32} {statistics.median(values) * 1e3:8.1f} ms/batch")
    path = sum(statistics.median(v) for k, v in totals.items() if "dense" not in k)
    print(f"  {'total (without the dense row)':<32} {path * 1e3:8.1f} ms/batch")


def load_clips(args, n: int, np, sf):
    """``batch`` clips of ``n`` samples: real ones (tiled/cropped) when available, else synthetic."""
    root = args.data
    if root is None:
        here = Path(__file__).resolve().parents[1]
        env = os.environ.get("AUSCULT_SHARED_DATA")
        root = Path(env) if env else here.parent / "shared" / "data"
    paths = sorted(root.rglob("*.wav"))[: args.batch] if root.is_dir() else []
    clips = []
    for p in paths:
        y, sr = sf.read(p, dtype="float32", always_2d=True)
        if sr != args.sample_rate:
            continue
        y = y.mean(axis=1)
        clips.append(np.resize(y, n))  # tile or crop to the benchmark length
    if clips:
        while len(clips) < args.batch:
            clips.append(clips[len(clips) % len(paths)])
        return np.ascontiguousarray(np.stack(clips[: args.batch])), f"real clips from {root}"
    rng = np.random.default_rng(0)
    t = np.arange(n) / args.sample_rate
    tone = np.sin(2 * np.pi * 997 * t)
    return (0.1 * rng.standard_normal((args.batch, n)) + 0.05 * tone).astype(np.float32), "synthetic"


if __name__ == "__main__":
    sys.exit(main())
