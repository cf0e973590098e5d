"""Training throughput: is the data loader ever the bottleneck? (issue 6)

MobileFaceNet on log-mel (10 s / 16 kHz clips, 128 mels, n_fft 1024, hop 512), batch 32, 2 threads:

* **loader**: clips/s of the training loader alone — ``ClipDataset`` over an ``AudioSource``
  (decoded-waveform cache, already warm as from the second epoch on) in a ``DataLoader``
  (shuffled, batch 32) — waveform batches ``[32, 160000]`` ready for the step;
* **model**: clips/s of one training step alone on an in-memory batch — log-mel on the device,
  MobileFaceNet forward, a linear classifier head, cross-entropy, backward, Adam step;
* **loader + model**: the two together, as in training (loader in the same process, or in
  ``--workers`` worker processes);
* **inference**: clips/s of log-mel + forward in eval mode under ``torch.inference_mode``; then
  the eval model and its :func:`~auscult.nets.inference.inference_copy` (batch norm folded into the
  convolutions, ``channels_last``) interleaved batch by batch, so their ratio is taken under one load.

Targets (issue 6): loader >= 5x model throughput; model >= 14 clips/s; inference >= 90 clips/s.
Each figure is the median over ``--iters`` batches after ``--warmup`` batches; all rows come from
one run. The glibc allocator is tuned first (``auscult.engine.setup_runtime``).

    .venv/bin/python benchmarks/bench_train.py                    # 2 threads, batch 32
    .venv/bin/python benchmarks/bench_train.py --iters 10 --workers 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _write_clips(root: Path, n: int, seconds: float, sr: int, seed: int) -> list[Path]:
    """``n`` machine-like clips (harmonics + filtered noise), 16-bit WAV, in a DCASE-style folder."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    d = root / "fan" / "train"
    d.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        f0 = rng.uniform(40, 120)
        x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 8))
        x = 0.1 * x + 0.05 * np.convolve(rng.standard_normal(t.size), np.ones(8) / 8, mode="same")
        p = d / f"section_00_source_train_normal_{i:04d}_spd_{i % 3}.wav"
        sf.write(p, (x / np.abs(x).max() * 0.5).astype(np.float32), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def _median_rate(times: list[float], batch: int) -> tuple[float, float]:
    med = statistics.median(times)
    return batch / med, med


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--iters", type=int, default=5, help="timed batches per measurement")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for the loader rows")
    ap.add_argument("--clips", type=int, default=0, help="clips on disk (default: enough for every batch)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from auscult.engine import setup_runtime

    rt = setup_runtime(device="cpu", num_threads=args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from auscult.audio import AudioConfig
    from auscult.data.datasets import ClipDataset, collate_waveforms
    from auscult.data.index import DatasetIndex
    from auscult.data.source import AudioSource
    from auscult.features import FeatureConfig, LogMel
    from auscult.nets import NETS
    from auscult.nets.layers import ClipGeometry

    torch.manual_seed(args.seed)
    sr, b = 16000, args.batch
    n_batches = args.warmup + args.iters
    n_clips = args.clips or b * n_batches
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    _write_clips(tmp / "data", n_clips, args.duration, sr, args.seed)
    clips = DatasetIndex.scan(tmp / "data").clips
    audio = AudioSource(AudioConfig(sample_rate=sr, length="tile", duration=args.duration), cache_dir=tmp / "cache")
    for c in clips:  # warm the cache: every epoch after the first reads decoded waveforms
        audio.load(c)

    fcfg = FeatureConfig(sample_rate=sr, n_fft=1024, hop_length=512, n_mels=128)
    logmel = LogMel(fcfg)
    geo = ClipGeometry(duration=args.duration, sample_rate=sr, n_fft=1024, hop_length=512, n_mels=128)
    from auscult.nets.registry import build_for_clip

    net = build_for_clip("mobilefacenet", geo)
    n_classes = 16
    head = torch.nn.Linear(net.output_shape[0] if hasattr(net, "output_shape") else 128, n_classes)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def make_loader():
        ds = ClipDataset(clips, audio, targets=[i % n_classes for i in range(len(clips))], seed=args.seed)
        return torch.utils.data.DataLoader(ds, batch_size=b, shuffle=True, collate_fn=collate_waveforms,
                                           num_workers=args.workers, drop_last=True,
                                           persistent_workers=False)

    def train_step(wave, y):
        net.train()
        opt.zero_grad(set_to_none=True)
        feats = logmel(wave).unsqueeze(1)
        loss = torch.nn.functional.cross_entropy(head(net(feats)), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    # loader alone
    times = []
    it = iter(make_loader())
    for i in range(n_batches):
        t0 = time.perf_counter()
        wave, y, _ = next(it)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    loader_rate, loader_med = _median_rate(times, b)
    assert wave.shape == (b, audio.n_samples)

    # model alone, on one in-memory batch
    wave_fixed, y_fixed = wave.clone(), y.clone()
    times = []
    for i in range(n_batches):
        t0 = time.perf_counter()
        train_step(wave_fixed, y_fixed)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    model_rate, model_med = _median_rate(times, b)

    # loader + model, as in training
    times = []
    it = iter(make_loader())
    t_prev = time.perf_counter()
    for i in range(n_batches):
        wave, y, _ = next(it)
        train_step(wave, y)
        t_now = time.perf_counter()
        if i >= args.warmup:
            times.append(t_now - t_prev)
        t_prev = t_now
    both_rate, both_med = _median_rate(times, b)

    # inference
    net.eval()
    times = []
    with torch.inference_mode():
        for i in range(n_batches):
            t0 = time.perf_counter()
            net(logmel(wave_fixed).unsqueeze(1))
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    infer_rate, infer_med = _median_rate(times, b)

    # inference with the inference copy (batch norm folded, channels_last), interleaved with the
    # plain eval model so that both see the same machine load; outputs checked against each other
    from auscult.nets.inference import inference_copy

    fast = inference_copy(net)
    plain_t, fast_t = [], []
    with torch.inference_mode():
        feats = logmel(wave_fixed).unsqueeze(1)
        rel = float((fast(feats) - net(feats)).abs().max() / net(feats).abs().max())
        for i in range(n_batches):
            for model, out in ((net, plain_t), (fast, fast_t)):
                t0 = time.perf_counter()
                model(logmel(wave_fixed).unsqueeze(1))
                if i >= args.warmup:
                    out.append(time.perf_counter() - t0)
    plain_rate, plain_med = _median_rate(plain_t, b)
    fast_rate, fast_med = _median_rate(fast_t, b)

    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = float("nan")
    print(f"# MobileFaceNet on log-mel, {args.duration:g} s clips, batch {b}, {args.threads} threads, "
          f"workers {args.workers}, allocator tuned: {rt.allocator_tuned}, median of {args.iters} batches "
          f"after {args.warmup} warm-up; load average {load:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| measurement | s / batch | clips/s | target |")
    print("|---|---:|---:|---|")
    print(f"| loader alone (cached waveforms -> [B, T]) | {loader_med:.3f} | {loader_rate:.1f} | >= 5x model |")
    print(f"| model alone (log-mel + MFN + head, fwd/bwd/Adam) | {model_med:.3f} | {model_rate:.1f} | >= 14 |")
    print(f"| loader + model (training) | {both_med:.3f} | {both_rate:.1f} | ~ model |")
    print(f"| inference (log-mel + MFN forward) | {infer_med:.3f} | {infer_rate:.1f} | >= 90 |")
    print(f"| inference, interleaved: eval model | {plain_med:.3f} | {plain_rate:.1f} | |")
    print(f"| inference, interleaved: inference_copy (BN folded, channels_last) | {fast_med:.3f} | {fast_rate:.1f} "
          f"| >= 90 |")
    print()
    ratio = loader_rate / model_rate
    print(f"loader / model throughput = x{ratio:.1f} (target >= 5: {'met' if ratio >= 5 else 'NOT met'}); "
          f"loader+model / model = {both_rate / model_rate:.2f}; "
          f"model {'meets' if model_rate >= 14 else 'misses'} 14 clips/s; "
          f"inference {'meets' if infer_rate >= 90 else 'misses'} 90 clips/s; inference_copy "
          f"x{fast_rate / plain_rate:.2f} of the eval model ({fast_rate:.1f} clips/s: "
          f"{'meets' if fast_rate >= 90 else 'misses'} 90; max relative output difference {rel:.1e})")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
