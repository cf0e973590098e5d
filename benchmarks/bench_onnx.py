"""Single-clip scoring latency at one thread: torch (the bundle) vs onnxruntime (the exported graph).

For each detector kind (fitted as in ``bench_stream.py``) and clip length, with one thread each:

* ``torch bundle``: ``detector.score_waves([clip])`` -- what ``auscult score`` / ``watch`` / the service
  run (torch.stft front-end in float64, the method's Python around it);
* ``torch graph``: the exact module that is exported (conv STFT, float32), called directly;
* ``onnxruntime``: the exported ``.onnx`` (+ the k-NN back-end in numpy for ``logmel_knn``).

Prints median wall and CPU milliseconds over ``--repeats`` calls (after a warm-up) and the largest
relative score difference between onnxruntime and the torch bundle on the timed clips.

    .venv/bin/python benchmarks/bench_onnx.py [--lengths 5 10 --repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import make_bundles  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=float, nargs="+", default=[5.0, 10.0])
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()

    import torch

    from auscult.data.synth import render_clip
    from auscult.data.synth.render import unit_for
    from auscult.monitor.export import OnnxScorer, export_onnx

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bundles = make_bundles(Path(tmp), window_s=5.0)
        for kind, b in bundles.items():
            det = b.models["fan"].detector
            onnx_path = Path(tmp) / f"{kind}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export_onnx(b, onnx_path, check_waves=[])
            ort_scorer = OnnxScorer(onnx_path, threads=1)
            graph = b.models["fan"].scoring_graph().module  # the exported module, in torch
            for seconds in args.lengths:
                x = render_clip("fan", unit=unit_for("fan", "00", 0), seed=123, duration=seconds)
                xt = torch.from_numpy(x[None])

                def torch_graph():
                    with torch.no_grad():
                        graph(xt)

                tb = timed(lambda: det.score_waves([x]), args.repeats)
                tg = timed(torch_graph, args.repeats)
                to = timed(lambda: ort_scorer.score(x), args.repeats)
                ref = float(det.score_waves([x])[0])
                rel = abs(float(ort_scorer.score(x)[0]) - ref) / abs(ref)
                rows.append((kind, seconds, tb, tg, to, rel))
    print(f"# one thread each (torch.set_num_threads(1), onnxruntime intra_op_num_threads=1); median of "
          f"{args.repeats}; wall / CPU ms", file=sys.stderr)
    print("| detector | clip s | torch bundle ms | torch graph (conv STFT) ms | onnxruntime ms | "
          "speed-up ORT vs bundle (CPU) | max rel. score diff |")
    print("|---|---|---|---|---|---|---|")
    for kind, sec, tb, tg, to, rel in rows:
        print(f"| {kind} | {sec:g} | {tb[0]:.2f} / {tb[1]:.2f} | {tg[0]:.2f} / {tg[1]:.2f} | {to[0]:.2f} / {to[1]:.2f} "
              f"| {tb[1] / max(to[1], 1e-9):.1f}x | {rel:.1e} |")


if __name__ == "__main__":
    main()
