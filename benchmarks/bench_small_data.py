"""Small-data benchmark: the best detector for a few dozen to a hundred clips of one machine.

Protocol: fit on N normal clips of one unit (N = 25, 50, 95), score held-out normals and
anomalies; report AUC, pAUC (max FPR 0.1, McClish-standardised as in DCASE: ``auscult.eval``),
and at the threshold the detector fitted itself for a 1 % false-alarm target: the false-alarm
rate on the held-out normals and the recall on the anomalies. Mean +- std over seeds, wall times.

Data:

* ``gearbox`` -- the real DCASE 2021 gearbox clips (``../shared/data/dcase2021-gearbox-s00`` or
  ``$AUSCULT_SHARED_DATA``): the train pool is normals 0000-0094 (N < 95 takes the first N), the
  test set the other 100 normals and all 105 anomalies. One unit, so seeds only change what is
  random inside a detector (for a deterministic detector the std is 0 by construction).
* ``synth`` -- per-unit sets of the simulator through its public API (``generate_dataset`` with a
  one-section, no-domain preset: 95 train normals, 50 test normals, 50 anomalies of every kind,
  severities U(0.1, 1)). Seed ``s`` is a different physical unit (``unit_for(machine, "00", s)``);
  the encoder pre-training (``auscult.encoders.pretrain``) never uses section ``"00"`` units.

Detectors, side by side in one run:

* auscult as shipped: ``monitor:logmel_knn`` and ``monitor:autoencoder`` through
  ``auscult.monitor.fit.fit_bundle`` (a folder of the N clips; a quarter held out for the
  threshold, as ``auscult fit`` does today);
* auscult small-data candidates: an encoder from ``auscult.encoders`` x a back-end, fitted on all
  N clips with the threshold from leave-one-out scores (``EmbeddingDetector``), named
  ``<encoder>/<back-end>``; embeddings are cached on disk (``--cache``);
* PyOD 3.6's audio detectors (``EmbeddingOD.for_audio("balanced")``, ``("fast")``, ``AudioAE``)
  run by ``--pyod-python`` in a subprocess (see ``benchmarks/_pyod_worker.py`` for installing
  it); skipped with a note when that Python has no PyOD.

Selection: the candidates are a fixed list; ``--select-on synth`` names the candidate with the
best mean (AUC + pAUC) / 2 over the simulated units at the largest N -- chosen without looking at
the gearbox test clips -- and the table shows the spread of all candidates on the gearbox.

Speed (``--speed``): the N = 95 gearbox fit + threshold of every detector from waveforms (wall,
torch on 2 threads), and scoring of single 10 s clips (CPU seconds per clip, 1 thread).

Examples::

    PYTHONPATH=src python benchmarks/bench_small_data.py --data gearbox --pyod-python ~/venv-pyod/bin/python
    PYTHONPATH=src python benchmarks/bench_small_data.py --data gearbox synth --n 25 50 95 --seeds 0 1 2 --speed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RATE = 0.01
SR = 16000

# ----------------------------------------------------------------------------- the candidate list
ENCODERS: dict[str, dict[str, Any]] = {
    "logmel": {"name": "logmel_stats"},  # 128 mels, n_fft 1024, hop 512: the logmel_knn representation
    "bs32": {"name": "bandstats", "n_bands": 32, "stats": ["mean", "flux"]},
    "bs64": {"name": "bandstats", "n_bands": 64, "stats": ["mean", "flux"]},
    "bs32-mean": {"name": "bandstats", "n_bands": 32, "stats": ["mean"]},
    "bs32-flux": {"name": "bandstats", "n_bands": 32, "stats": ["flux"]},
    "mel64": {"name": "bandstats", "n_bands": 64, "stats": ["mean", "flux"], "scale": "mel"},
}
BACKENDS: dict[str, dict[str, Any]] = {
    "knn": {"name": "knn", "k": 1, "metric": "euclidean"},
    "knn-ld": {"name": "knn_norm", "normalize": "local"},
    "maha": {"name": "selective_mahalanobis"},
    # members' normal reference scores from 10 folds (leave-one-out inside the detector's own
    # leave-one-out threshold would be n^2 fits)
    "ens": {"name": "ensemble", "fusion": "rank", "folds": 10,
            "members": [{"name": "knn_norm", "normalize": "local"}, {"name": "selective_mahalanobis"}]},
}
#: members with different encoders, z-fused against their leave-one-out normal scores (FusedDetector).
#: Added after the first gearbox and simulator runs (see docs/benchmarks.md): a post-hoc candidate.
FUSED: dict[str, dict[str, Any]] = {
    "fused(bs32-mean+bs32-flux)/maha": {"members": ["bs32-mean", "bs32-flux"], "backend": "maha", "fusion": "z"},
}
MONITOR = ("monitor:logmel_knn", "monitor:autoencoder", "monitor:bandstats", "monitor:encoder_knn")
#: earlier results kept in a results file under another name (the bandstats default before fuse_stats)
RENAMED = ("monitor:bandstats(fuse_stats=false)",)
#: monitor detectors with nothing random in them (no training, no calibration split: leave-one-out
#: thresholds): fitted once per (unit, N) and recorded for every seed
DETERMINISTIC = ("monitor:bandstats", "monitor:encoder_knn")
PYOD = ("pyod:embedding_balanced", "pyod:embedding_fast", "pyod:audio_ae")


def every_name_order(dets: list[str]) -> list[str]:
    """auscult's monitor methods first, then the candidates, then PyOD (the table order)."""
    rank = lambda d: (0 if d.startswith("monitor:") else 2 if d.startswith("pyod:") else 1)  # noqa: E731
    return sorted(dets, key=lambda d: (rank(d), dets.index(d)))


def candidate_names(extra_encoders: dict[str, dict[str, Any]]) -> list[str]:
    return [f"{e}/{b}" for e in [*ENCODERS, *extra_encoders] for b in BACKENDS] + list(FUSED)


# ----------------------------------------------------------------------------------------- data
@dataclass
class UnitSet:
    """One unit: a train pool (in order) and a labelled test set, as files and waveforms."""

    key: str                       # "gearbox" or "synth/<machine>/seed<s>"
    train: list[Path]
    test: list[Path]
    y: np.ndarray                  # 1 = anomaly
    waves: dict[Path, np.ndarray] = field(default_factory=dict, repr=False)

    def load(self, paths):
        import soundfile as sf

        out = []
        for p in paths:
            if p not in self.waves:
                x, fs = sf.read(str(p), dtype="float32", always_2d=True)
                if fs != SR:
                    raise SystemExit(f"{p}: {fs} Hz, the benchmark expects {SR}")
                self.waves[p] = x.mean(axis=1)
            out.append(self.waves[p])
        return out


def shared_root() -> Optional[Path]:
    env = os.environ.get("AUSCULT_SHARED_DATA")
    root = Path(env) if env else ROOT.parent / "shared" / "data"
    return root if root.is_dir() else None


def gearbox_set() -> Optional[UnitSet]:
    root = shared_root()
    folder = None if root is None else root / "dcase2021-gearbox-s00" / "dev_data" / "gearbox" / "source_test"
    if folder is None or not folder.is_dir():
        print(f"# gearbox: skipped (real clips not found; set AUSCULT_SHARED_DATA)")
        return None
    pat = re.compile(r"section_00_source_test_(normal|anomaly)_(\d+)\.wav$")
    train, test, y = [], [], []
    for p in sorted(folder.glob("*.wav")):
        m = pat.search(p.name)
        if not m:
            continue
        if m.group(1) == "normal" and int(m.group(2)) <= 94:
            train.append(p)
        else:
            test.append(p)
            y.append(int(m.group(1) == "anomaly"))
    return UnitSet("gearbox", train, test, np.array(y))


def synth_sets(machines: list[str], seeds: list[int], cache: Path, n_train: int) -> list[UnitSet]:
    """One generated unit per (machine, seed); generated once into ``cache``."""
    from auscult.data.synth import Preset, generate_dataset, load_metadata

    out = []
    for seed in seeds:
        preset = Preset("bench-small-data", "dcase2020", tuple(machines), ("00",), n_train, 0, 50, 50, 10.0,
                        "one unit per machine, no domains")
        root = cache / f"synth-{'-'.join(machines)}-n{n_train}-seed{seed}"
        if not (root / "metadata.csv").is_file():
            print(f"# generating {root.name} ...", flush=True)
            generate_dataset(preset, root, seed=seed, workers=1, overwrite=True, probe=False)
        rows = load_metadata(root)
        for m in machines:
            mine = [r for r in rows if r["machine"] == m]
            train = [root / r["file"] for r in sorted((r for r in mine if r["split"] == "train"),
                                                      key=lambda r: int(r["index"]))]
            test_rows = [r for r in mine if r["split"] == "test"]
            out.append(UnitSet(f"synth/{m}/seed{seed}", train, [root / r["file"] for r in test_rows],
                               np.array([int(r["label"] == "anomaly") for r in test_rows])))
    return out


# ------------------------------------------------------------------------------------- metrics
def metrics(y: np.ndarray, scores: np.ndarray, decisions: np.ndarray) -> dict[str, float]:
    from auscult.eval.metrics import auc, pauc_mcclish

    return {"auc": 100 * auc(y, scores), "pauc": 100 * pauc_mcclish(y, scores, 0.1),
            "false_alarm": 100 * float(decisions[y == 0].mean()), "recall": 100 * float(decisions[y == 1].mean())}


# ------------------------------------------------------------------------------ embedding detectors
def build_encoder(spec: dict[str, Any]):
    from auscult.encoders import build_encoder as build

    return build(spec)


def cached_embeddings(us: UnitSet, enc_name: str, spec: dict[str, Any], cache: Path) -> np.ndarray:
    """Embeddings of train pool + test clips (in that order), cached by encoder config and files."""
    weights = {}
    if "weights" in spec:  # a retrained encoder at the same path must not reuse old embeddings
        npz = Path(spec["weights"]).with_suffix(".npz")
        weights = {"sha": hashlib.sha256(npz.read_bytes()).hexdigest()} if npz.is_file() else {}
    ident = json.dumps({"spec": spec, "weights": weights, "files": [str(p) for p in us.train + us.test]}, sort_keys=True)
    f = cache / "emb" / f"{hashlib.sha256(ident.encode()).hexdigest()[:20]}.npy"
    if f.is_file():
        return np.load(f)
    enc = build_encoder(spec)
    x = enc.embed(us.load(us.train + us.test))
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, f)
    return x


def run_candidate(us: UnitSet, name: str, emb: np.ndarray, n: int, seed: int) -> dict[str, Any]:
    from auscult.encoders import EmbeddingDetector

    be = BACKENDS[name.split("/")[1]]
    det = EmbeddingDetector({"name": "logmel_stats"}, be, seed=seed)  # encoder unused: embeddings given
    t0 = time.perf_counter()
    det.fit_embeddings(emb[:n])
    fit_s = time.perf_counter() - t0
    test = emb[len(us.train):]
    s = det.score_embeddings(test)
    return {"scores": s, "decisions": s > det.threshold, "fit_s_backend": fit_s,
            "threshold_method": det.threshold_["method"]}


def run_fused(us: UnitSet, name: str, embs: list[np.ndarray], n: int) -> dict[str, Any]:
    from auscult.encoders import EmbeddingDetector, FusedDetector

    spec = FUSED[name]
    members = [EmbeddingDetector({"name": "logmel_stats"}, BACKENDS[spec["backend"]]) for _ in spec["members"]]
    det = FusedDetector(members, spec["fusion"]).fit_embeddings([e[:n] for e in embs])
    s = det.score_embeddings([e[len(us.train):] for e in embs])
    return {"scores": s, "decisions": s > det.threshold, "threshold_method": det.threshold_["method"]}


def build_detector(name: str, encs: dict[str, dict[str, Any]]):
    """A detector of the candidate ``name`` with real encoders (for fitting from waveforms)."""
    from auscult.encoders import EmbeddingDetector, FusedDetector

    if name in FUSED:
        spec = FUSED[name]
        return FusedDetector([EmbeddingDetector(build_encoder(encs[e]), BACKENDS[spec["backend"]])
                              for e in spec["members"]], spec["fusion"])
    e, b = name.split("/")
    return EmbeddingDetector(build_encoder(encs[e]), BACKENDS[b])


# ------------------------------------------------------------------------------ monitor detectors
def run_monitor(us: UnitSet, kind: str, n: int, seed: int) -> dict[str, Any]:
    from auscult.monitor.fit import FitConfig, fit_bundle

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "machine"
        d.mkdir()
        for i, p in enumerate(us.train[:n]):
            (d / f"rec_{i:03d}.wav").symlink_to(p.resolve())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            b, rep = fit_bundle(d, None, FitConfig(method=kind, window_s=10.0, false_alarm_rate=RATE, seed=seed))
            fit_s = time.perf_counter() - t0
            waves = us.load(us.test)
            c0 = time.process_time()
            res = [b.score_waveform(w, SR) for w in waves]
            cpu = (time.process_time() - c0) / len(waves)
    r = rep.machines["machine"]
    return {"scores": np.array([x.score for x in res]), "decisions": np.array([x.decision for x in res]),
            "fit_s": fit_s, "score_cpu_s_per_clip": cpu, "threshold_method": r["threshold_method"],
            "note": f"{r['fit_windows']} fit / {r['calibration_windows']} calibration clips"}


# ------------------------------------------------------------------------------------ PyOD side
def pyod_available(python: Optional[str]) -> Optional[str]:
    if not python:
        return None
    try:
        out = subprocess.run([python, "-c", "import pyod, librosa, torch; print(pyod.__version__)"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def run_pyod(python: str, sets: list[UnitSet], ns: list[int], seeds: list[int], detectors: list[str],
             done: set, on_result) -> None:
    """Run the PyOD worker on every (unit, N, seed) not in ``done``; ``on_result(record)`` per line."""
    jobs = []
    for us in sets:
        for n in ns:
            if n > len(us.train):
                continue
            for seed in seeds:
                if all((us.key, n, seed, d) in done for d in detectors):
                    continue
                jobs.append({"key": f"{us.key}|{n}", "train": [str(p) for p in us.train[:n]],
                             "test": [str(p) for p in us.test], "seed": seed})
    if not jobs:
        return
    req = {"jobs": jobs, "detectors": [d.split(":", 1)[1] for d in detectors], "rate": RATE, "sr": SR, "threads": 2}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # PyOD's Python never sees auscult
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([python, str(ROOT / "benchmarks" / "_pyod_worker.py")], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(req))
        proc.stdin.close()
        for line in proc.stdout:
            if line.strip():
                on_result(json.loads(line))
        rc = proc.wait()
        if rc != 0:
            err.seek(0)
            print(err.read()[-3000:], file=sys.stderr)
            print(f"# the PyOD worker stopped with exit code {rc}; results so far are kept")


# ------------------------------------------------------------------------------------------ speed
def speed_table(us: UnitSet, names: list[str], extra: dict[str, dict[str, Any]], n: int = 95, n_score: int = 20
                ) -> list[dict[str, Any]]:
    """Fit + threshold from waveforms (2 torch threads) and single-clip scoring CPU (1 thread)."""
    import torch

    train = us.load(us.train[:n])
    probe = us.load(us.test[:n_score])
    rows = []
    encs = {**ENCODERS, **extra}
    for name in names:
        torch.set_num_threads(2)
        if name.startswith("monitor:"):  # the registered method through `auscult fit` (decoding included)
            rows.append(speed_monitor(us, name, n, probe))
            continue
        det = build_detector(name, encs)
        t0, c0 = time.perf_counter(), time.process_time()
        det.fit(train)
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        torch.set_num_threads(1)
        det.score(probe[:1])  # warm-up
        c0 = time.process_time()
        for w in probe:
            det.score([w])
        cpu = (time.process_time() - c0) / len(probe)
        rows.append({"detector": name, "fit_s": fit_s, "fit_cpu_s": fit_cpu, "score_cpu_ms": 1000 * cpu})
        print(f"# speed {name}: fit+threshold {fit_s:.1f} s wall / {fit_cpu:.1f} s CPU, score {1000 * cpu:.1f} ms "
              f"CPU/clip", flush=True)
    torch.set_num_threads(2)
    return rows


def speed_monitor(us: UnitSet, name: str, n: int, probe: list[np.ndarray]) -> dict[str, Any]:
    """``fit_bundle`` on a folder of the first ``n`` clips (2 torch threads: wall and CPU), then
    ``Bundle.score_waveform`` of single clips (1 thread, CPU per clip)."""
    import torch

    from auscult.monitor.fit import FitConfig, fit_bundle

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "machine"
        d.mkdir()
        for i, p in enumerate(us.train[:n]):
            (d / f"rec_{i:03d}.wav").symlink_to(p.resolve())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            b, _ = fit_bundle(d, None, FitConfig(method=name.split(":", 1)[1], window_s=10.0, false_alarm_rate=RATE))
            fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    torch.set_num_threads(1)
    b.score_waveform(probe[0], SR)  # warm-up
    c0 = time.process_time()
    for w in probe:
        b.score_waveform(w, SR)
    cpu = (time.process_time() - c0) / len(probe)
    torch.set_num_threads(2)
    print(f"# speed {name}: fit+threshold {fit_s:.1f} s wall / {fit_cpu:.1f} s CPU, score {1000 * cpu:.1f} ms CPU/clip",
          flush=True)
    return {"detector": name, "fit_s": fit_s, "fit_cpu_s": fit_cpu, "score_cpu_ms": 1000 * cpu}


# ----------------------------------------------------------------------------- domain-shift table
DOMAIN_BACKENDS: dict[str, dict[str, Any]] = {
    "knn (plain, min over domains)": {"name": "knn", "k": 1, "metric": "euclidean"},
    "knn_norm local": {"name": "knn_norm", "normalize": "local"},
    "knn_norm domain_z": {"name": "knn_norm", "normalize": "domain_z"},
    "knn_norm local + SMOTE to 90": {"name": "knn_norm", "normalize": "local", "smote_target": 90},
    "knn_norm domain_z + SMOTE to 90": {"name": "knn_norm", "normalize": "domain_z", "smote_target": 90},
    "selective_mahalanobis": {"name": "selective_mahalanobis"},
}


def domain_table(seeds: list[int], cache: Path, encoders: list[str]) -> list[dict[str, Any]]:
    """The back-ends where source and target differ: the simulator's DCASE 2023-style ``small``
    preset (per machine: 90 source + 10 target training clips; 10 + 10 test clips per domain and
    label). Per machine type and seed: AUC source / target (each domain's normals vs all anomalies),
    pAUC (all), on z-scored encoder features (training statistics of both domains)."""
    from auscult.backends import BACKENDS as REG, BackendMeta
    from auscult.data.synth import generate_dataset, load_metadata
    from auscult.eval.metrics import auc_domain_vs_all_anomalies, pauc_mcclish

    rows = []
    for seed in seeds:
        root = cache / f"synth-small-seed{seed}"
        if not (root / "metadata.csv").is_file():
            print(f"# generating {root.name} ...", flush=True)
            generate_dataset("small", root, seed=seed, workers=1, overwrite=True, probe=False)
        meta = load_metadata(root)
        for machine in sorted({r["machine"] for r in meta}):
            mine = [r for r in meta if r["machine"] == machine]
            tr = [r for r in mine if r["split"] == "train"]
            te = [r for r in mine if r["split"] == "test"]
            us = UnitSet(f"small/{machine}/seed{seed}", [root / r["file"] for r in tr], [root / r["file"] for r in te],
                         np.array([int(r["label"] == "anomaly") for r in te]))
            for e in encoders:
                emb = cached_embeddings(us, e, ENCODERS[e], cache)
                xtr, xte = emb[:len(tr)], emb[len(tr):]
                mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
                xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
                mtr = BackendMeta(n=len(tr), domain=[r["domain"] for r in tr])
                mte = BackendMeta(n=len(te), domain=[r["domain"] for r in te])
                doms = [r["domain"] for r in te]
                for name, spec in DOMAIN_BACKENDS.items():
                    spec = dict(spec)
                    be = REG.build(spec.pop("name"), group_by=None, **spec).fit(xtr, mtr)
                    sc = be.score(xte, mte)
                    rows.append({"seed": seed, "machine": machine, "encoder": e, "backend": name,
                                 "auc_source": 100 * auc_domain_vs_all_anomalies(us.y, sc, doms, "source"),
                                 "auc_target": 100 * auc_domain_vs_all_anomalies(us.y, sc, doms, "target"),
                                 "pauc": 100 * pauc_mcclish(us.y, sc, 0.1)})
    print("\n| encoder | back-end | AUC source | AUC target | pAUC |")
    print("|---|---|---|---|---|")
    for e in encoders:
        for name in DOMAIN_BACKENDS:
            rs = [r for r in rows if r["encoder"] == e and r["backend"] == name]
            # mean over machine types per seed, then mean +- std over seeds
            per_seed = {k: [np.mean([r[k] for r in rs if r["seed"] == s]) for s in seeds]
                        for k in ("auc_source", "auc_target", "pauc")}
            cell = lambda k: f"{np.mean(per_seed[k]):.1f} ± {np.std(per_seed[k], ddof=1) if len(seeds) > 1 else 0:.1f}"
            print(f"| {e} | {name} | {cell('auc_source')} | {cell('auc_target')} | {cell('pauc')} |")
    return rows


# ------------------------------------------------------------------------------------------ tables
def aggregate(results: list[dict[str, Any]]) -> dict[tuple, dict[str, tuple[float, float, int]]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["set"], r["n"], r["detector"]), []).append(r)
    out = {}
    for k, rs in groups.items():
        agg = {}
        for m in ("auc", "pauc", "false_alarm", "recall", "fit_s"):
            v = np.array([r[m] for r in rs if r.get(m) is not None], dtype=float)
            agg[m] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)) if len(v) else None
        out[k] = agg
    return out


def fmt(a) -> str:
    return "-" if a is None else f"{a[0]:.1f} ± {a[1]:.1f}"


def print_table(agg, set_name: str, ns: list[int], detectors: list[str]) -> None:
    print(f"\n### {set_name}\n")
    print("| detector | N | AUC | pAUC | false alarms % | recall % | fit s |")
    print("|---|---|---|---|---|---|---|")
    for d in detectors:
        for n in ns:
            a = agg.get((set_name, n, d))
            if a is None:
                continue
            print(f"| {d} | {n} | {fmt(a['auc'])} | {fmt(a['pauc'])} | {fmt(a['false_alarm'])} | {fmt(a['recall'])} | "
                  f"{fmt(a['fit_s'])} |")


def environment() -> dict[str, Any]:
    flags = ""
    try:
        flags = " ".join(sorted(set(re.findall(r"avx\w*", Path("/proc/cpuinfo").read_text()))))
    except OSError:
        pass
    return {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            "cpu_flags": flags, "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch_threads": __import__("torch").get_num_threads()}


# -------------------------------------------------------------------------------------------- main
def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", nargs="+", default=["gearbox"], choices=["gearbox", "synth"])
    ap.add_argument("--n", nargs="+", type=int, default=[25, 50, 95])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--synth-machines", nargs="+", default=["gearbox", "fan", "bearing"])
    ap.add_argument("--detectors", nargs="+", default=None,
                    help="subset (names or prefixes: 'monitor:', 'pyod:', 'bs32/'); default: all")
    ap.add_argument("--encoder-weights", default=None,
                    help="a pre-trained CNN encoder (auscult.encoders.cnn) to add as 'cnn/<back-end>' candidates")
    ap.add_argument("--pyod-python", default=os.environ.get("AUSCULT_PYOD_PYTHON"),
                    help="a Python with pyod, librosa and torch (see benchmarks/_pyod_worker.py); "
                         "default $AUSCULT_PYOD_PYTHON; without it the PyOD side is skipped")
    ap.add_argument("--select-on", default="synth", choices=["synth", "none"])
    ap.add_argument("--speed", action="store_true", help="also time fit + threshold and scoring from waveforms")
    ap.add_argument("--cache", default=str(ROOT / "runs" / "bench_small_data"))
    ap.add_argument("--out", default=None, help="results JSON (default: <cache>/results.json), saved as it grows")
    ap.add_argument("--resume", action="store_true", help="keep the results already in --out and run only the rest")
    ap.add_argument("--table-only", nargs="+", default=None, metavar="JSON",
                    help="only print the tables of these results files (merged; every detector in them)")
    ap.add_argument("--domain-table", action="store_true",
                    help="only the source/target back-end table on the simulator's 'small' preset")
    args = ap.parse_args(argv)

    if args.table_only:
        results = [r for f in args.table_only for r in json.loads(Path(f).read_text())["results"]]
        agg = aggregate(results)
        set_names = sorted({r["set"] for r in results}, key=lambda s: (s != "gearbox", s))
        dets = list(dict.fromkeys(r["detector"] for r in results))
        for s in set_names:
            print_table(agg, s, sorted({r["n"] for r in results}), [d for d in every_name_order(dets)])
        return

    import torch

    torch.set_num_threads(2)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    env = environment()
    print(f"# {env['uptime']}\n# CPU flags: {env['cpu_flags']}; {env['cpus']} CPUs; torch threads {env['torch_threads']}",
          flush=True)

    if args.domain_table:
        rows = domain_table(args.seeds, cache, ["bs32", "logmel"])
        Path(args.out or cache / "domain_table.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
        return

    extra: dict[str, dict[str, Any]] = {}
    if args.encoder_weights:
        extra["cnn"] = {"name": "cnn", "weights": str(Path(args.encoder_weights).resolve())}
    cands = candidate_names(extra)
    every = [*MONITOR, *cands, *PYOD]
    wanted = every if not args.detectors else [d for d in every if any(d == w or d.startswith(w) for w in args.detectors)]

    sets: list[UnitSet] = []
    if "gearbox" in args.data:
        g = gearbox_set()
        if g is not None:
            sets.append(g)
    if "synth" in args.data:
        sets += synth_sets(args.synth_machines, args.seeds, cache, max(args.n))
    if not sets:
        raise SystemExit("no data to benchmark")

    out = Path(args.out) if args.out else cache / "results.json"
    results: list[dict[str, Any]] = []
    if args.resume and out.is_file():
        results = json.loads(out.read_text())["results"]  # all of them: a narrower run must not drop the rest
        print(f"# resuming: {len(results)} results read from {out}")
    done = {(r["unit"], r["n"], r["seed"], r["detector"]) for r in results}
    pyod_version = None
    failures: list[str] = []

    def save(selection=None, speed=None) -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"argv": sys.argv, "env": env, "pyod_version": pyod_version, "results": results,
                                   "failures": failures, "selection": selection, "speed": speed}, indent=1,
                                  default=float))
        os.replace(tmp, out)

    def record(us: UnitSet, n: int, seed: int, det: str, r: dict[str, Any]) -> None:
        m = metrics(us.y, np.asarray(r["scores"], float), np.asarray(r["decisions"], bool))
        set_name = "gearbox" if us.key == "gearbox" else "synth/" + us.key.split("/")[1]
        results.append({"set": set_name, "unit": us.key, "n": n, "seed": seed, "detector": det, **m,
                        "fit_s": r.get("fit_s"), "score_cpu_s_per_clip": r.get("score_cpu_s_per_clip"),
                        "threshold_method": r.get("threshold_method"), "note": r.get("note")})
        done.add((us.key, n, seed, det))

    # auscult candidates (cached embeddings; deterministic given the data -> one run per seed is identical,
    # so they are run once and recorded for every seed)
    encs = {**ENCODERS, **extra}
    for us in sets:
        for e in encs:
            names = [f"{e}/{b}" for b in BACKENDS if f"{e}/{b}" in wanted]
            if not names:
                continue
            t0 = time.perf_counter()
            emb = cached_embeddings(us, e, encs[e], cache)
            print(f"# {us.key}: {e} embeddings {emb.shape} ({time.perf_counter() - t0:.1f} s)", flush=True)
            for name in names:
                for n in args.n:
                    if n > len(us.train) or all((us.key, n, s, name) in done for s in args.seeds):
                        continue
                    r = run_candidate(us, name, emb, n, 0)
                    for seed in args.seeds:
                        if (us.key, n, seed, name) not in done:
                            record(us, n, seed, name, r)
            save()
    for us in sets:
        for name in [f for f in FUSED if f in wanted]:
            embs = [cached_embeddings(us, e, encs[e], cache) for e in FUSED[name]["members"]]
            for n in args.n:
                if n > len(us.train) or all((us.key, n, s, name) in done for s in args.seeds):
                    continue
                r = run_fused(us, name, embs, n)
                for seed in args.seeds:
                    if (us.key, n, seed, name) not in done:
                        record(us, n, seed, name, r)
        save()
    # auscult monitor detectors (seeded: the calibration split, the AE's training)
    for us in sets:
        for kind in [d for d in MONITOR if d in wanted]:
            for n in args.n:
                if n > len(us.train):
                    continue
                r_once = None
                for seed in args.seeds:
                    if (us.key, n, seed, kind) in done:
                        continue
                    if kind in DETERMINISTIC and r_once is not None:
                        record(us, n, seed, kind, r_once)
                        continue
                    r = run_monitor(us, kind.split(":")[1], n, seed)
                    if kind in DETERMINISTIC:
                        r_once = r
                    record(us, n, seed, kind, r)
                    save()
                    print(f"# {us.key} N={n} seed {seed} {kind}: AUC {results[-1]['auc']:.1f} pAUC "
                          f"{results[-1]['pauc']:.1f} ({r['fit_s']:.0f} s)", flush=True)
    # PyOD
    pyod_dets = [d for d in PYOD if d in wanted]
    if pyod_dets:
        pyod_version = pyod_available(args.pyod_python)
        if pyod_version is None:
            print(f"# PyOD: skipped ({args.pyod_python!r} cannot import pyod, librosa and torch; install it as "
                  f"benchmarks/_pyod_worker.py says and pass --pyod-python)")
        else:
            by_key = {us.key: us for us in sets}

            def on_result(r: dict[str, Any]) -> None:
                key, n = r["key"].rsplit("|", 1)
                if "error" in r:
                    failures.append(f"pyod:{r['detector']} {r['key']} seed {r['seed']}: {r['error']}")
                    print(f"# {failures[-1]}", flush=True)
                    return
                record(by_key[key], int(n), r["seed"], "pyod:" + r["detector"], r)
                print(f"# {key} N={n} seed {r['seed']} pyod:{r['detector']}: AUC {results[-1]['auc']:.1f} pAUC "
                      f"{results[-1]['pauc']:.1f} ({r['fit_s']:.0f} s)", flush=True)
                save()

            run_pyod(args.pyod_python, sets, args.n, args.seeds, pyod_dets, done, on_result)

    agg = aggregate(results)
    set_names = sorted({r["set"] for r in results}, key=lambda s: (s != "gearbox", s))
    order = [d for d in every if d in wanted]
    for s in set_names:
        print_table(agg, s, args.n, order)

    selection = None
    if args.select_on == "synth" and any(s.startswith("synth/") for s in set_names):
        n_max = max(args.n)
        means = {}
        for c in [d for d in cands if d in wanted]:
            vals = [(r["auc"] + r["pauc"]) / 2 for r in results if r["detector"] == c and r["n"] == n_max
                    and r["set"].startswith("synth/")]
            if vals:
                means[c] = float(np.mean(vals))
        if means:
            best = max(means, key=means.get)
            selection = {"rule": f"best mean (AUC + pAUC) / 2 over simulated units at N = {n_max}", "chosen": best,
                         "synth_means": means}
            print(f"\n# selection ({selection['rule']}): {best} ({means[best]:.1f})")
    if "gearbox" in set_names:
        n_max = max(args.n)
        vals = {c: agg[("gearbox", n_max, c)] for c in cands if ("gearbox", n_max, c) in agg}
        if vals:
            aucs = np.array([v["auc"][0] for v in vals.values()])
            paucs = np.array([v["pauc"][0] for v in vals.values()])
            print(f"# spread of the {len(vals)} candidates on gearbox N={n_max}: AUC min {aucs.min():.1f} / median "
                  f"{np.median(aucs):.1f} / max {aucs.max():.1f}; pAUC min {paucs.min():.1f} / median "
                  f"{np.median(paucs):.1f} / max {paucs.max():.1f}")

    speed = None
    if args.speed and any(us.key == "gearbox" for us in sets):
        g = next(us for us in sets if us.key == "gearbox")
        speed = speed_table(g, [c for c in [*cands, *MONITOR] if c in wanted and (c in cands or c in DETERMINISTIC)],
                            extra)
        print("\n| detector | fit + threshold, s wall (N=95, 2 threads) | fit + threshold, s CPU | score, ms CPU per 10 s clip (1 thread) |")
        print("|---|---|---|---|")
        for row in speed:
            print(f"| {row['detector']} | {row['fit_s']:.1f} | {row['fit_cpu_s']:.1f} | {row['score_cpu_ms']:.1f} |")
        for d in [*MONITOR, *PYOD]:
            rs = [r for r in results if r["set"] == "gearbox" and r["n"] == 95 and r["detector"] == d]
            if rs:
                print(f"| {d} (from the quality runs) | {np.mean([r['fit_s'] for r in rs]):.1f} | - | "
                      f"{1000 * np.mean([r['score_cpu_s_per_clip'] for r in rs]):.1f} |")

    save(selection, speed)
    if failures:
        print(f"\n# {len(failures)} failed run(s): " + "; ".join(failures[:5]))
    print(f"\n# raw results: {out}")


if __name__ == "__main__":
    main()
