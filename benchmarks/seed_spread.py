"""How reliably does a short training beat chance? The "beats chance" tests' statistic over many seeds.

For CLSIA, ProtoASD and SSL4ASD this repeats the small training of the method's beats-chance test
(``tests/methods/test_<method>.py``) for several *training* seeds on one generated data set and prints
one JSON line per seed (the test's statistic = mean AUC over the (machine, section) groups, the
per-group AUCs, seconds) and a summary line: mean +- std over seeds, the pass rate for ``--bar``, and
the chance-level std of the statistic for this test size (AUC of random scores: sqrt((n0+n1+1)/(12 n0 n1))
per group, divided by sqrt(#groups)).

The data set's geometry and the training length are flags, so candidate test set-ups can be measured
before a test adopts one; ``--negate`` scores with the sign flipped (a broken method must fail the bar).
Run at one thread (``OMP_NUM_THREADS=1``); e.g. the tests as they were on main::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/seed_spread.py clsia --seeds 0-7
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/seed_spread.py protoasd --seeds 0-7
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/seed_spread.py ssl4asd --seeds 0-7

An AVX2-only CPU is emulated with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def clsia_config(epochs: int) -> dict:  # tests/methods/test_clsia.py::small_config
    return {
        "method": "clsia",
        "features": {"n_mels": 64},
        "net": {"name": "mobilefacenet", "activation": "relu"},
        "augment": {"rrc": {"freq_scale": [0.9, 1.1], "time_scale": [0.8, 1.2], "canvas_scale": [1.0, 1.2]}},
        "train": {"epochs": epochs, "batch_size": 8, "optimizer": "adam", "lr": 1e-3},
        "clsia": {"queue_size": 64, "momentum": 0.9},
    }


def protoasd_config(epochs: int, ft_epochs: int) -> dict:  # tests/methods/test_protoasd.py::small_config
    return {
        "method": "protoasd",
        "features": {"n_mels": 64},
        "net": {"name": "resnet18_tfap"},
        "train": {"epochs": epochs, "batch_size": 8, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                  "weight_decay": 5e-5},
        "protoasd": {"crop_frames": 32, "crop_hop": 16,
                     "finetune": {"epochs": ft_epochs, "n_classes": 4, "n_per_class": 4, "n_batches": 6,
                                  "milestones": []}},
    }


def ssl4asd_config(epochs: int) -> dict:  # tests/methods/test_ssl4asd.py::recipe
    from auscult.recipes import load_recipe

    cfg = load_recipe("synthetic/ssl4asd")
    cfg["train"] = {**cfg["train"], "batch_size": 8, "log_every": 0, "epochs": epochs}
    cfg["backend"] = {**cfg["backend"], "n_init": 2}
    return cfg


DEFAULTS = {  # the set-ups of the tests on main
    "clsia": dict(preset="easy", machines="fan", sections="00,01", train_source=20, train_target=4, test_n=6,
                  duration=2.0, data_seed=0, background=False, epochs=6),
    "protoasd": dict(preset="easy", machines="fan", sections="00,01", train_source=20, train_target=4, test_n=6,
                     duration=2.0, data_seed=0, background=False, epochs=15, ft_epochs=5),
    "ssl4asd": dict(preset="demo", machines="bearing,gearbox,pump", sections="00", train_source=20, train_target=5,
                    test_n=5, duration=5.0, data_seed=3, background=True, epochs=6),
}


def make_data(a, root: Path) -> Path:
    from auscult.data.synth import Preset, generate_dataset

    if a.method == "ssl4asd" and a.preset == "demo" and a.sections == "00" and a.train_source == 20 \
            and a.train_target == 5 and a.test_n == 5:
        spec = dict(preset="demo", machines=tuple(a.machines.split(",")), scale=0.5)  # the test's own call
    else:
        layout = "dcase2022" if a.method != "ssl4asd" else "dcase2023"
        spec = dict(preset=Preset("x", layout, tuple(a.machines.split(",")), tuple(a.sections.split(",")),
                                  a.train_source, a.train_target, a.test_n, a.test_n, a.duration))
    key = hashlib.sha1(json.dumps([repr(spec), a.duration, a.data_seed, a.background]).encode()).hexdigest()[:10]
    out = root / key
    if not (out / ".complete").exists():
        generate_dataset(spec.pop("preset"), out, seed=a.data_seed, duration=a.duration, severity_range=(0.9, 1.0),
                         background=a.background, workers=1, overwrite=True, probe=False, **spec)
        (out / ".complete").write_text("ok\n")
    return out


def make_gross(test, root: Path, kind: str = "add") -> list:
    """Each normal test clip plus white noise of the clip's own power (0 dB SNR), or (``replace``)
    that noise alone, as a test anomaly (as ``tests/methods/conftest.py::noisy_copies``)."""
    import dataclasses

    import soundfile as sf

    out = root / f"gross_{kind}"
    out.mkdir(exist_ok=True)
    clips = []
    for i, c in enumerate(c for c in test if c.label == "normal"):
        path = out / f"{c.machine}_{c.section}_{i:03d}.wav"
        if not path.exists():
            x, sr = sf.read(c.path, dtype="float64")
            n = np.random.default_rng(i).standard_normal(x.shape) * np.sqrt(np.mean(x ** 2))
            y = x + n if kind == "add" else n * (10 ** 0.5 if kind == "loud" else 1.0)
            sf.write(path, y / max(1.0, np.abs(y).max() / 0.99), sr, subtype="PCM_16")
        clips.append(dataclasses.replace(c, path=path, label="anomaly"))
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method", choices=sorted(DEFAULTS))
    ap.add_argument("--seeds", default="0-7", help="training seeds, e.g. 0-7 or 0,3,5")
    ap.add_argument("--preset")
    ap.add_argument("--machines")
    ap.add_argument("--sections")
    ap.add_argument("--train-source", type=int)
    ap.add_argument("--train-target", type=int)
    ap.add_argument("--test-n", type=int, help="test clips per domain and label, per section")
    ap.add_argument("--duration", type=float)
    ap.add_argument("--data-seed", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--ft-epochs", type=int)
    ap.add_argument("--average", type=int, default=1, help="average the scores of this many consecutive seeds")
    ap.add_argument("--bar", type=float, default=0.6)
    ap.add_argument("--negate", action="store_true", help="flip the scores' sign (a broken method)")
    ap.add_argument("--gross", action="store_true",
                    help="also score gross anomalies (each normal test clip plus white noise at 0 dB SNR) and print "
                         "AUC(normal test clips vs gross) and the share of gross clips above every normal one")
    ap.add_argument("--gross-kind", default="add", choices=("add", "replace", "loud"),
                    help="add: clip + white noise at 0 dB SNR; replace: white noise only, at the clip's power; "
                         "loud: white noise only, 10 dB above the clip's power")
    ap.add_argument("--root", type=Path, default=Path("runs/seed_spread_data"))
    a = ap.parse_args()
    for k, v in DEFAULTS[a.method].items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)

    import torch

    from auscult.audio import AudioConfig
    from auscult.data.index import DatasetIndex
    from auscult.data.source import AudioSource
    from auscult.eval.metrics import auc
    from auscult.methods import FitContext, build_method
    from auscult.recipes import load_recipe

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t = time.time()
    root = make_data(a, a.root)
    idx = DatasetIndex.scan(root)
    train = sorted(idx.select(split="train"), key=lambda c: str(c.path))
    test = sorted(idx.select(split="test"), key=lambda c: str(c.path))
    if a.method == "ssl4asd":
        audio = AudioSource(load_recipe("synthetic/ssl4asd")["audio"], memory=True)
    else:
        audio = AudioSource(AudioConfig(sample_rate=16000, length="tile", duration=a.duration), memory=True)
    groups = sorted({(c.machine, c.section) for c in test})
    y = np.array([c.label == "anomaly" for c in test])
    idxs = {g: np.array([i for i, c in enumerate(test) if (c.machine, c.section) == g]) for g in groups}
    n01 = [(int((~y[i]).sum()), int(y[i].sum())) for i in idxs.values()]
    chance = math.sqrt(statistics.mean((n0 + n1 + 1) / (12 * n0 * n1) for n0, n1 in n01) / len(groups))
    setup = {k: getattr(a, k) for k in DEFAULTS[a.method]} | {"average": a.average, "negate": a.negate}
    print(json.dumps({"setup": setup, "train_clips": len(train), "test_clips": len(test), "groups": len(groups),
                      "data_seconds": round(time.time() - t, 1),
                      "isa": os.environ.get("ATEN_CPU_CAPABILITY", "default")}), flush=True)
    gross = make_gross(test, root, a.gross_kind) if a.gross else []
    seeds = parse_seeds(a.seeds)
    stats = []
    for j in range(0, len(seeds) - a.average + 1, a.average):
        t = time.time()
        s = 0.0
        for seed in seeds[j:j + a.average]:
            if a.method == "clsia":
                cfg = clsia_config(a.epochs)
            elif a.method == "protoasd":
                cfg = protoasd_config(a.epochs, a.ft_epochs)
            else:
                cfg = ssl4asd_config(a.epochs)
            m = build_method(a.method, cfg, FitContext(seed=seed, quiet=True)).fit(train, [], audio)
            sc = np.asarray(m.score(test, audio), dtype=float)
            s = s + (sc - sc.mean()) / (sc.std() + 1e-12) if a.average > 1 else sc
        extra = {}
        if gross:
            gs = np.asarray(m.score(gross, audio), dtype=float)
            if a.negate:
                gs = -gs
            sg = -sc if a.negate else sc
            ga, above = [], []
            for g in groups:  # per (machine, section): normal test clips vs their noisy copies
                sn = sg[[i for i, c in enumerate(test) if (c.machine, c.section) == g and c.label == "normal"]]
                gg = gs[[i for i, c in enumerate(gross) if (c.machine, c.section) == g]]
                ga.append(float(auc([0] * len(sn) + [1] * len(gg), np.r_[sn, gg])))
                above.append(float(np.mean(gg > sn.max())))
            extra = {"gross_auc": round(float(np.mean(ga)), 4), "gross_auc_min": round(min(ga), 4),
                     "gross_above_all": round(float(np.mean(above)), 3)}
        if a.negate:
            s = -s
        aucs = {"/".join(g): float(auc(y[i], s[i])) for g, i in idxs.items()}
        stats.append(float(np.mean(list(aucs.values()))))
        print(json.dumps({"seeds": seeds[j:j + a.average], "stat": round(stats[-1], 4),
                          "auc": {k: round(v, 3) for k, v in aucs.items()},
                          "seconds": round(time.time() - t, 1)} | extra),
              flush=True)
    sd = statistics.stdev(stats) if len(stats) > 1 else float("nan")
    print(f"SUMMARY {a.method} mean {statistics.mean(stats):.3f} +- {sd:.3f} over {len(stats)} runs; "
          f"min {min(stats):.3f} max {max(stats):.3f}; pass rate (> {a.bar}) "
          f"{sum(v > a.bar for v in stats)}/{len(stats)}; chance-level std {chance:.3f}", flush=True)


if __name__ == "__main__":
    main()
