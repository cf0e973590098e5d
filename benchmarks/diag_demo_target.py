"""Why is a machine's AUC(target) low in ``auscult demo``? Decompose it on the demo's own clips.

Not part of CI. Takes the output folder of ``auscult demo`` (``<demo>/data`` and ``<demo>/run``) and,
for one machine type:

1. renders the *healthy twin* of every anomalous test clip (the same clip seed with the fault
   switched off: the simulator draws the machine, its level and the background from streams that
   do not depend on the fault, so the twin differs from the faulty clip by the fault alone), writes
   them under the faulty clips' names into ``<work>/data`` and scores them with a copy of the run.
   If AUC(target) is the same with the faults removed, the faults are not what ranks the clips;
2. prints the official AUCs (DCASE 2022+: a domain's normals against the anomalies of *both*
   domains) next to the within-domain AUCs and the domain offset (how often a target normal
   outscores a source normal / a source anomaly), with and without the faults;
3. with ``--extra N``: renders N more normal and N more anomalous clips per domain (indices from
   1000 up: seeds the demo never used), plus the healthy twin of each anomaly, and scores them with
   the same run: the within-domain AUC on 2N clips and the per-kind paired score change;
4. per clip, from separate renders: the fault's effect on the machine alone (faulty minus healthy
   log-mel, 8 groups of 16 of 128 mel bands), the background alone (clip minus machine) and the SNR,
   averaged over anomalous and normal clips.

    OMP_NUM_THREADS=1 PYTHONPATH=src auscult demo --out /tmp/demo --workers 1
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diag_demo_target.py --demo /tmp/demo --machine fan \
        --work /tmp/demo_diag --extra 40
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def auc(pos, neg) -> float:
    p, n = np.asarray(pos, float), np.asarray(neg, float)
    if not len(p) or not len(n):
        return float("nan")
    return float(((p[:, None] > n[None]).sum() + 0.5 * (p[:, None] == n[None]).sum()) / (len(p) * len(n)))


def _config(data: Path):
    from auscult.data.synth.writer import Preset, SynthConfig

    d = json.loads((data / "synth_config.json").read_text())
    pd = dict(d["preset"])
    pd["machines"], pd["sections"] = tuple(pd["machines"]), tuple(pd["sections"])
    return SynthConfig(Preset(**pd), d["seed"], d["sample_rate"], d["subtype"], tuple(d["severity_range"]),
                       d["eval_names"], d["background"])


def _logmel(x: np.ndarray, fb: np.ndarray) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    fr = sliding_window_view(np.pad(np.asarray(x, float), 512), 1024)[::512] * np.hanning(1024)
    return 10.0 * np.log10((np.abs(np.fft.rfft(fr, axis=1)) ** 2) @ fb.T + 1e-10).mean(0)


def _groups(v) -> np.ndarray:
    return np.asarray(v).reshape(8, -1).mean(1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", type=Path, required=True, help="output folder of `auscult demo`")
    ap.add_argument("--machine", default="fan")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--extra", type=int, default=0, help="extra normal + anomalous clips per domain")
    args = ap.parse_args(argv)

    import soundfile as sf

    import auscult.api as ac
    from auscult.data.synth.render import get_machine, render_clip
    from auscult.data.synth.writer import ClipJob, _clip_seed, dev_file_name, machine_model, machine_unit, plan
    from auscult.features import FeatureConfig
    from auscult.features.filterbank import mel_filterbank

    data, mach = args.demo / "data", args.machine
    cfg = _config(data)
    model = machine_model(mach)
    sr, dur = cfg.sample_rate, cfg.preset.duration
    fb = mel_filterbank(FeatureConfig(n_mels=128, n_fft=1024, hop_length=512, sample_rate=sr))
    if args.work.exists():
        shutil.rmtree(args.work)
    test_dir = args.work / "data" / "dev_data" / mach / "test"
    test_dir.mkdir(parents=True)
    jobs = [j for j in plan(cfg) if j.machine == mach and j.split == "test"]
    if not jobs:
        raise SystemExit(f"{args.demo}: no test clips of {mach}")
    unit = {s: machine_unit(mach, s, cfg.seed) for s in {j.section for j in jobs}}
    kinds = sorted(get_machine(model).kinds)
    rng = np.random.default_rng(1234)
    if args.extra:
        for sec in sorted(unit):
            for dom in ("source", "target"):
                for lab in ("normal", "anomaly"):
                    for i in range(1000, 1000 + args.extra):
                        kind = kinds[i % len(kinds)] if lab == "anomaly" else None
                        sev = round(float(rng.uniform(*cfg.severity_range)), 4) if kind else 0.0
                        jobs.append(ClipJob(mach, sec, dom, "test", lab, i, kind, sev, "", ""))
    rows = []
    for j in jobs:
        kw = dict(seed=_clip_seed(cfg.seed, j), domain=j.domain, unit=unit[j.section], sample_rate=sr,
                  duration=dur)
        full, info = render_clip(model, anomaly=j.kind, severity=j.severity, return_info=True, **kw)
        extra = j.index >= 1000
        if extra:  # the demo never wrote this clip: write it (anomalies: their twins go next to them)
            name = dev_file_name(cfg.preset.layout, j.section, j.domain, "test", j.label, j.index, info.params["attrs"])
            sf.write(test_dir / name, full, sr, subtype=cfg.subtype)
        else:
            name = Path(j.relpath).name
        row = dict(name=name, section=j.section, dom=j.domain, label=j.label, kind=j.kind or "", sev=j.severity,
                   snr=info.snr_db, limited=info.peak_limited, extra=extra)
        if j.kind:
            healthy = render_clip(model, anomaly=None, **kw)
            mach_f = render_clip(model, anomaly=j.kind, severity=j.severity, background=False, **kw)
            mach_h = render_clip(model, anomaly=None, background=False, **kw)
            row["fault_db"] = (_logmel(mach_f, fb) - _logmel(mach_h, fb)).tolist()
            twin = name if not extra else dev_file_name(cfg.preset.layout, j.section, j.domain, "test", "normal",
                                                        j.index + 1000, info.params["attrs"])
            row["twin"] = twin
            sf.write(test_dir / twin, healthy, sr, subtype=cfg.subtype)
        mach_only = render_clip(model, anomaly=j.kind, severity=j.severity, background=False, **kw)
        row["bg_minus_machine_db"] = (_logmel(full.astype(float) - mach_only, fb) - _logmel(mach_only, fb)).tolist()
        rows.append(row)
    for j in (j for j in jobs if j.index < 1000 and not j.kind):  # the demo's normals, unchanged
        shutil.copy2(data / j.relpath, test_dir / Path(j.relpath).name)
    run = args.work / "run"
    shutil.copytree(args.demo / "run", run)
    ac.score(run, args.work / "data", device="cpu", cache_dir=None)
    with open(args.demo / "run" / "scores" / "test_scores.csv", newline="") as fh:
        orig = {r["name"]: float(r["score"]) for r in csv.DictReader(fh) if r["machine"] == mach}
    with open(run / "scores" / "test_scores.csv", newline="") as fh:
        new = {r["name"]: float(r["score"]) for r in csv.DictReader(fh) if r["machine"] == mach}
    (args.work / "clips.json").write_text(json.dumps(rows))

    demo = [r for r in rows if not r["extra"]]
    for r in demo:
        r["faulty"] = orig[r["name"]]
        r["healthy"] = new[r["name"]] if r["kind"] else orig[r["name"]]
        if not r["kind"]:
            assert abs(new[r["name"]] - orig[r["name"]]) <= 1e-6 * max(1.0, abs(orig[r["name"]])), r["name"]

    def sel(rs, dom=None, lab=None, key="faulty"):
        return [r[key] for r in rs if (dom is None or r["dom"] == dom) and (lab is None or r["label"] == lab)]

    print(f"# {mach}: the demo's test clips ({args.demo}), seed {cfg.seed}")
    print("| clips | AUC(source) official | AUC(target) official | within source | within target | "
          "target normals > source normals | target normals > source anomalies |")
    print("|---|---|---|---|---|---|---|")
    for key, what in (("faulty", "as generated"), ("healthy", "faults removed (healthy twins)")):
        an, sn, tn = sel(demo, None, "anomaly", key), sel(demo, "source", "normal", key), sel(demo, "target", "normal", key)
        print(f"| {what} | {auc(an, sn):.3f} | {auc(an, tn):.3f} | {auc(sel(demo, 'source', 'anomaly', key), sn):.3f} | "
              f"{auc(sel(demo, 'target', 'anomaly', key), tn):.3f} | {auc(tn, sn):.3f} | "
              f"{auc(tn, sel(demo, 'source', 'anomaly', key)):.3f} |")
    for dom in ("source", "target"):
        print(f"# mean score {dom}: normals {np.mean(sel(demo, dom, 'normal')):.2f}, anomalies "
              f"{np.mean(sel(demo, dom, 'anomaly')):.2f}, their healthy twins {np.mean(sel(demo, dom, 'anomaly', 'healthy')):.2f}; "
              f"SNR normals {np.mean(sel(demo, dom, 'normal', 'snr')):.2f} dB, anomalies "
              f"{np.mean(sel(demo, dom, 'anomaly', 'snr')):.2f} dB; peak-limited clips "
              f"{sum(r['limited'] for r in demo if r['dom'] == dom)}")
    print("# per mel group (8 x 16 of 128 mels, low to high), dB:")
    for dom in ("source", "target"):
        fa = np.mean([_groups(r["fault_db"]) for r in demo if r["dom"] == dom and r["kind"]], 0)
        bgn = np.mean([_groups(r["bg_minus_machine_db"]) for r in demo if r["dom"] == dom and r["label"] == "normal"], 0)
        bga = np.mean([_groups(r["bg_minus_machine_db"]) for r in demo if r["dom"] == dom and r["label"] == "anomaly"], 0)
        print(f"#   {dom}: fault effect on the machine alone (faulty - healthy)   " + " ".join(f"{v:+5.1f}" for v in fa))
        print(f"#   {dom}: background - machine, normals                         " + " ".join(f"{v:+5.1f}" for v in bgn))
        print(f"#   {dom}: background - machine, anomalies                       " + " ".join(f"{v:+5.1f}" for v in bga))
    if args.extra:
        ex = [r for r in rows if r["extra"]]
        print(f"\n# {args.extra} + {args.extra} extra clips per domain (seeds the demo never used), same run")
        print("| domain | kind | n | AUC vs the extra normals | its healthy twins vs the same normals | "
              "paired score change (faulty - twin), mean | faulty > twin |")
        print("|---|---|---|---|---|---|---|")
        for dom in ("source", "target"):
            nor = [new[r["name"]] for r in ex if r["dom"] == dom and not r["kind"]]
            for kind in [None, *kinds]:
                an = [r for r in ex if r["dom"] == dom and r["kind"] and (kind is None or r["kind"] == kind)]
                f, t = np.array([new[r["name"]] for r in an]), np.array([new[r["twin"]] for r in an])
                print(f"| {dom} | {kind or 'all'} | {len(an)} | {auc(f, nor):.3f} | {auc(t, nor):.3f} | "
                      f"{np.mean(f - t):+.2f} | {np.mean(f > t):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
