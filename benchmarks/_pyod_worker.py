"""PyOD side of ``bench_small_data.py``, run in a separate Python that has PyOD (not auscult).

PyOD is the peer an engineer would otherwise pick, never an auscult dependency. Install it in
its own virtual environment (CPU torch pinned, so pip does not pull CUDA wheels)::

    python3 -m venv ~/venv-pyod
    ~/venv-pyod/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    ~/venv-pyod/bin/pip install "pyod[audio]==3.6.*" soundfile

and point the benchmark at it with ``--pyod-python ~/venv-pyod/bin/python``.

Protocol (one JSON request on stdin; one JSON line per (job, detector) result on stdout, written as
soon as it exists, with ``"error"`` instead of scores when that detector failed)::

    {"jobs": [{"key": ..., "train": [wav paths], "test": [wav paths], "seed": 0}],
     "detectors": ["embedding_balanced", "embedding_fast", "audio_ae"], "rate": 0.01, "sr": 16000}

Each detector is built as an engineer would: the documented constructor, the data's sample rate,
``contamination = rate`` (PyOD's threshold: the ``1 - rate`` quantile of the training clips'
own scores), ``random_state = seed``. Result per (job, detector): test scores, ``predict``
decisions, fit wall seconds, and scoring CPU seconds per clip.
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def build(name: str, rate: float, seed: int, sr: int):
    if name == "embedding_balanced":
        from pyod.models.embedding import EmbeddingOD

        return EmbeddingOD.for_audio("balanced", contamination=rate, random_state=seed)
    if name == "embedding_fast":
        from pyod.models.embedding import EmbeddingOD

        return EmbeddingOD.for_audio("fast", contamination=rate, random_state=seed)
    if name == "audio_ae":
        from pyod.models.audio_ae import AudioAE

        return AudioAE(sr=sr, contamination=rate, random_state=seed, device="cpu")
    raise SystemExit(f"unknown PyOD detector {name!r}")


def main() -> None:
    req = json.load(sys.stdin)
    import numpy as np
    import soundfile as sf
    import torch

    torch.set_num_threads(int(req.get("threads", 2)))
    sr = int(req.get("sr", 16000))
    cache: dict[str, "np.ndarray"] = {}

    def load(p: str):
        if p not in cache:
            x, fs = sf.read(p, dtype="float32", always_2d=True)
            cache[p] = (x.mean(axis=1), fs)
        return cache[p]

    version = __import__("pyod").__version__
    for job in req["jobs"]:
        train = [load(p) for p in job["train"]]
        test = [load(p) for p in job["test"]]
        for name in req["detectors"]:
            rec = {"key": job["key"], "detector": name, "seed": job["seed"], "pyod_version": version}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    det = build(name, float(req["rate"]), int(job["seed"]), sr)
                    t0 = time.perf_counter()
                    det.fit(train)
                    fit_s = time.perf_counter() - t0
                    c0 = time.process_time()
                    scores = np.asarray(det.decision_function(test), dtype=float)
                    cpu_per_clip = (time.process_time() - c0) / max(1, len(test))
                    decisions = np.asarray(det.predict(test), dtype=int)
                rec.update({"scores": scores.tolist(), "decisions": decisions.tolist(), "fit_s": fit_s,
                            "score_cpu_s_per_clip": cpu_per_clip,
                            "threshold": float(getattr(det, "threshold_", float("nan")))})
                print(f"# pyod {name} {job['key']} seed {job['seed']}: fit {fit_s:.1f} s", file=sys.stderr, flush=True)
            except Exception as exc:  # one broken detector must not lose the others' results
                rec["error"] = f"{type(exc).__name__}: {exc}"
                print(f"# pyod {name} {job['key']} seed {job['seed']}: FAILED {rec['error']}", file=sys.stderr, flush=True)
            sys.stdout.write(json.dumps(rec) + "\n")  # one JSON line per result, as soon as it exists
            sys.stdout.flush()

if __name__ == "__main__":
    main()
