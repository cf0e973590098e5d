"""Back-end speed on synthetic embeddings, and quality on the real gearbox clips.

Prints two tables:

1. fit and score seconds per back-end (median of ``--repeats`` runs) for 3 sections x
   (990 source + 10 target) training rows and 3 x 200 test rows of ``--dim``-d embeddings,
   with the library thread pools unlimited (``set_threads(None)``) and at one thread (the default);
2. AUC per back-end on the DCASE 2021 gearbox section 00 clips in ``../shared/data`` (train on
   normals 0000-0094, test on the other 100 normals and all 105 anomalies), with a simple
   hand-made embedding: mean and standard deviation over time of 64 log band energies
   (scipy STFT, n_fft 1024, hop 512). It measures the back-ends, not a trained net: the
   numbers are a floor to compare learned embeddings with. Skipped when the clips are absent.

    .venv/bin/python benchmarks/bench_backends.py [--repeats 3] [--dim 128]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path


def synthetic(dim: int, seed: int = 0):
    import numpy as np

    from auscult.backends import BackendMeta

    rng = np.random.default_rng(seed)

    def make(n_src: int, n_tgt: int):
        xs, sec, dom, att = [], [], [], []
        for s in ("00", "01", "02"):
            xs.append(rng.normal(size=(n_src + n_tgt, dim)))
            sec += [s] * (n_src + n_tgt)
            dom += ["source"] * n_src + ["target"] * n_tgt
            att += [f"a{i % 4}" for i in range(n_src + n_tgt)]
        x = np.concatenate(xs)
        n = len(x)
        meta = BackendMeta(n=n, section=sec, domain=dom, attribute=att, machine=["fan"] * n,
                           class_id=np.arange(n) % 6, logits=rng.normal(size=(n, 6)))
        return x, meta

    return make(990, 10), make(100, 100)


def speed_table(repeats: int, dim: int) -> None:
    from auscult.backends import BACKENDS, set_threads

    (tr, trm), (te, tem) = synthetic(dim)
    print(f"\nspeed: 3 sections x (990 source + 10 target) train rows, {len(te)} test rows, D={dim}; median of {repeats}")
    print("unlimited = set_threads(None), library thread pools untouched; 1 thread = set_threads(1), the default")
    print(f"{'backend':24s} {'fit s':>8s} {'score s':>8s} {'fit s 1thr':>11s} {'score s 1thr':>13s} {'fit ratio':>10s}")
    for name in BACKENDS.names():
        row = []
        for threads in (None, 1):
            set_threads(threads)
            f, s = _time(name, tr, trm, te, tem, repeats)
            row += [f, s]
        set_threads(1)
        print(f"{name:24s} {row[0]:8.3f} {row[1]:8.3f} {row[2]:11.3f} {row[3]:13.3f} {row[0] / max(row[2], 1e-9):10.1f}")


def _time(name, tr, trm, te, tem, repeats):
    """Median fit and score seconds of back-end ``name`` over ``repeats`` fresh fits."""
    from auscult.backends import BACKENDS

    fits, scores = [], []
    for _ in range(repeats):
        be = BACKENDS.build(name)
        t0 = time.perf_counter()
        be.fit(tr, trm)
        t1 = time.perf_counter()
        be.score(te, tem)
        t2 = time.perf_counter()
        fits.append(t1 - t0)
        scores.append(t2 - t1)
    return statistics.median(fits), statistics.median(scores)


def band_embedding(path: Path, n_fft: int = 1024, hop: int = 512, n_bands: int = 64):
    import numpy as np
    import soundfile as sf
    from scipy.signal import stft

    wav, sr = sf.read(path, dtype="float32", always_2d=True)
    wav = wav.mean(axis=1)
    _, _, z = stft(wav, fs=sr, nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=False)
    power = np.abs(z) ** 2  # [freq, frames]
    edges = np.unique(np.geomspace(1, power.shape[0], n_bands + 1).astype(int))
    bands = np.stack([power[a:b].sum(0) for a, b in zip(edges[:-1], edges[1:])])
    logb = np.log(bands + 1e-10)
    return np.concatenate([logb.mean(1), logb.std(1)])


def gearbox_table() -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from auscult.backends import BACKENDS, BackendMeta

    root = Path(os.environ.get("AUSCULT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    folder = root / "dcase2021-gearbox-s00" / "dev_data" / "gearbox" / "source_test"
    if not folder.is_dir():
        print(f"\nquality: skipped ({folder} not found)")
        return
    pat = re.compile(r"section_00_source_test_(normal|anomaly)_(\d+)\.wav$")
    train, test, y = [], [], []
    for p in sorted(folder.glob("*.wav")):
        m = pat.search(p.name)
        if not m:
            continue
        emb = band_embedding(p)
        if m.group(1) == "normal" and int(m.group(2)) <= 94:
            train.append(emb)
        else:
            test.append(emb)
            y.append(int(m.group(1) == "anomaly"))
    train, test, y = np.stack(train), np.stack(test), np.array(y)
    mu, sd = train.mean(0), train.std(0) + 1e-8  # standardise with training statistics only
    train, test = (train - mu) / sd, (test - mu) / sd
    print(f"\nquality: gearbox s00, {len(train)} train normals, {int((y == 0).sum())} test normals, "
          f"{int(y.sum())} anomalies; 128-d band-energy statistics")
    print(f"{'backend':24s} {'AUC':>6s}")
    for name in BACKENDS.names():
        if name == "classifier":
            print(f"{name:24s} {'n/a':>6s}  (needs classifier logits)")
            continue
        be = BACKENDS.build(name, group_by=None)
        s = be.fit(train, BackendMeta(n=len(train))).score(test, BackendMeta(n=len(test)))
        print(f"{name:24s} {roc_auc_score(y, s):6.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dim", type=int, default=128)
    args = ap.parse_args(argv)
    speed_table(args.repeats, args.dim)
    gearbox_table()


if __name__ == "__main__":
    sys.exit(main())
