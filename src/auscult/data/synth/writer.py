"""Presets, DCASE layouts and file names, and the dataset writer.

``generate_dataset`` renders every clip of a preset (optionally over several processes; each clip's
randomness derives only from ``(seed, machine, section, domain, split, label, index)``, so the bytes
do not depend on the worker count) and writes::

    <out>/dev_data/<machine>/{train,test}/<DCASE name>.wav      (eval_data/ with eval_names=True)
    <out>/dev_data/<machine>/attributes_SS.csv                   (2022/2023 layouts)
    <out>/ground_truth_data/ground_truth_<type>_section_SS_test.csv   rows name,label (1 = anomaly)
    <out>/ground_truth_domain/ground_truth_<type>_section_SS_test.csv rows name,domain (1 = target)
    <out>/metadata.csv        one row per clip: kind, severity, onset/offset, band, parameters
    <out>/synth_config.json   every parameter needed to regenerate the dataset bit for bit
    <out>/README.md           the dataset card (parameters, seed, version, probe AUC per machine)
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from ...errors import ConfigError
from .render import get_machine, render_clip, seed_sequence, unit_for

LAYOUTS = ("dcase2020", "dcase2022", "dcase2023", "dcase2026")
SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT")
DCASE_MACHINES = ("ToyCar", "ToyTrain", "bearing", "fan", "gearbox", "slider", "valve")
#: the DCASE 2026 development machine types, as the challenge names them (the ``dcase2026`` preset)
DCASE2026_MACHINES = ("ToyCar", "ToyCarEmu", "bearingEmu", "fan", "gearboxEmu", "sliderEmu", "valveEmu")
#: machine types the simulator renders with another type's model (the one place this mapping lives;
#: documented in docs/synth.md). DCASE 2026's ``...Emu`` types are emulated machines of a physical
#: kind the simulator models once. The per-clip seeds of ``bearingEmu`` etc. are drawn from the
#: model's name (a bearingEmu clip is the bearing clip the same seed gave before the types were
#: renamed); ``ToyCarEmu`` is a second toy car beside ``ToyCar`` (listed in ``OWN_SEED_TYPES``): it
#: draws from its own name, so its unit and clips differ from ToyCar's.
MACHINE_ALIASES = {"ToyCarEmu": "ToyCar", "bearingEmu": "bearing", "gearboxEmu": "gearbox",
                   "sliderEmu": "slider", "valveEmu": "valve"}
OWN_SEED_TYPES = frozenset({"ToyCarEmu"})


def machine_model(machine: str) -> str:
    """The simulator model that renders machine type ``machine`` (itself unless it is an alias);
    raises :class:`ConfigError` for a type the simulator cannot render."""
    model = MACHINE_ALIASES.get(machine, machine)
    get_machine(model)
    return model


def seed_name(machine: str) -> str:
    """The name the per-clip and per-unit seeds of machine type ``machine`` are drawn from."""
    return machine if machine in OWN_SEED_TYPES else MACHINE_ALIASES.get(machine, machine)


def machine_unit(machine: str, section: str, seed: int) -> dict:
    """:func:`unit_for` of a machine type, aliases included (the model's unit of the type's product
    line, drawn from :func:`seed_name`): for a type that is its own model, exactly ``unit_for``, so
    every section of a dataset is a unit of one product line."""
    return unit_for(machine_model(machine), section, seed, name=seed_name(machine))


@dataclass(frozen=True)
class Preset:
    """Counts and layout of a generated dataset (per section; test counts per domain and label)."""

    name: str
    layout: str
    machines: tuple[str, ...]
    sections: tuple[str, ...]
    train_source: int
    train_target: int
    test_normal: int
    test_anomaly: int
    duration: float = 10.0
    description: str = ""

    def scaled(self, scale: float) -> "Preset":
        """Counts multiplied by ``scale`` (at least one clip wherever the preset has any)."""
        if scale <= 0:
            raise ConfigError(f"scale must be positive, got {scale}")

        def s(c: int) -> int:
            return 0 if c == 0 else max(1, int(round(c * scale)))

        return replace(self, train_source=s(self.train_source), train_target=s(self.train_target),
                       test_normal=s(self.test_normal), test_anomaly=s(self.test_anomaly))


PRESETS: dict[str, Preset] = {
    "demo": Preset("demo", "dcase2023", ("fan", "bearing", "valve"), ("00",), 40, 10, 10, 10, 4.0,
                   "three machines, short clips: the five-minute tour"),
    "small": Preset("small", "dcase2023", DCASE_MACHINES, ("00", "01", "02"), 30, 5, 10, 10, 10.0,
                    "seven machines x three units, 35 train + 40 test clips per unit: tests and benchmarks"),
    "dcase2023": Preset("dcase2023", "dcase2023", DCASE_MACHINES, ("00",), 990, 10, 50, 50, 10.0,
                        "DCASE 2023 development-set layout: one section per machine"),
    "dcase2022": Preset("dcase2022", "dcase2022", DCASE_MACHINES, ("00", "01", "02"), 990, 10, 50, 50,
                        10.0, "DCASE 2022 development-set layout: three sections (machine units)"),
    "dcase2020": Preset("dcase2020", "dcase2020", ("fan", "pump", "slider", "valve", "ToyCar"),
                        ("00", "02", "04", "06"), 900, 0, 100, 100, 10.0,
                        "DCASE 2020 development-set layout: machine IDs, no domains"),
    "dcase2026": Preset("dcase2026", "dcase2026", DCASE2026_MACHINES, ("00",), 990, 10, 50, 50, 10.0,
                        "DCASE 2026 development-set layout: stereo clips (near mic, far mic), "
                        "noise condition in the names"),
}


@dataclass(frozen=True)
class ClipJob:
    """One clip to render and write (picklable)."""

    machine: str
    section: str
    domain: Optional[str]
    split: str
    label: str
    index: int
    kind: Optional[str]
    severity: float
    relpath: str
    dev_name: str


@dataclass
class SynthConfig:
    """Everything that determines a generated dataset's bytes."""

    preset: Preset
    seed: int = 0
    sample_rate: int = 16000
    subtype: str = "PCM_16"
    severity_range: tuple[float, float] = (0.1, 1.0)
    eval_names: bool = False
    background: bool = True
    scale: float = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preset"] = asdict(self.preset)
        return d


# -- names ------------------------------------------------------------------------------------
def attr_string(attrs: Sequence[tuple[str, str]]) -> str:
    """``[("spd", "28V"), ("mic", "1")]`` → ``"spd_28V_mic_1"``."""
    return "_".join(f"{k}_{v}" for k, v in attrs)


def dev_file_name(layout: str, section: str, domain: Optional[str], split: str, label: str, index: int,
                  attrs: Sequence[tuple[str, str]]) -> str:
    """The development-set file name of a clip in ``layout``."""
    if layout == "dcase2020":
        return f"{label}_id_{section}_{index:08d}.wav"
    tail = attr_string(attrs)
    return f"section_{section}_{domain}_{split}_{label}_{index:04d}" + (f"_{tail}" if tail else "") + ".wav"


def eval_file_name(layout: str, section: str, index: int) -> str:
    """An anonymised evaluation-set name (label and domain only in the ground truth)."""
    if layout == "dcase2020":
        return f"id_{section}_{index:08d}.wav"
    return f"section_{section}_{index:04d}.wav"


def ground_truth_stem(layout: str, machine: str, section: str) -> str:
    kind = "id" if layout == "dcase2020" else "section"
    return f"ground_truth_{machine}_{kind}_{section}_test.csv"


# -- planning ---------------------------------------------------------------------------------
def _clip_seed(seed: int, job: ClipJob) -> int:
    ss = seed_sequence(seed, seed_name(job.machine), job.section, job.domain, job.split, job.label, job.index)
    return int(ss.generate_state(1, np.uint32)[0])


def plan(cfg: SynthConfig) -> list[ClipJob]:
    """Every clip of the dataset, in a fixed order, with its anomaly kind and severity."""
    p = cfg.preset
    lo, hi = cfg.severity_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise ConfigError(f"severity range must satisfy 0 <= lo <= hi <= 1, got {cfg.severity_range}")
    top = "eval_data" if cfg.eval_names else "dev_data"
    domains: list[Optional[str]] = [None] if p.layout == "dcase2020" else ["source", "target"]
    jobs: list[ClipJob] = []
    for mach in p.machines:
        kinds = sorted(get_machine(machine_model(mach)).kinds)
        for sec in p.sections:
            for dom in domains:
                n_train = p.train_source if dom in (None, "source") else p.train_target
                for i in range(n_train):
                    jobs.append(ClipJob(mach, sec, dom, "train", "normal", i, None, 0.0, "", ""))
            test: list[ClipJob] = []
            for dom in domains:
                rng = np.random.default_rng(seed_sequence(cfg.seed, "anomalies", seed_name(mach), sec, dom))
                order = [kinds[j % len(kinds)] for j in range(p.test_anomaly)]
                order = [order[j] for j in rng.permutation(len(order))]
                sev = rng.uniform(lo, hi, p.test_anomaly)
                test += [ClipJob(mach, sec, dom, "test", "normal", i, None, 0.0, "", "")
                         for i in range(p.test_normal)]
                test += [ClipJob(mach, sec, dom, "test", "anomaly", i, order[i], round(float(sev[i]), 4), "", "")
                         for i in range(p.test_anomaly)]
            if cfg.eval_names:  # anonymised names in a seeded shuffled order
                rng = np.random.default_rng(seed_sequence(cfg.seed, "shuffle", seed_name(mach), sec))
                test = [test[j] for j in rng.permutation(len(test))]
            jobs += test
    out = []
    eval_counter: dict[tuple, int] = {}
    for j in jobs:
        j_seed = _clip_seed(cfg.seed, j)
        attrs = _params_for(cfg, j, j_seed)["attrs"]
        if p.layout == "dcase2026":  # the noise condition is the last attribute (2026 grammar)
            from .stereo import noise_condition

            attrs = list(attrs) + [("noise", str(noise_condition(j_seed, machine_model(j.machine))))]
        dev = dev_file_name(p.layout, j.section, j.domain, j.split, j.label, j.index, attrs)
        name = dev
        if cfg.eval_names and j.split == "test":
            k = (j.machine, j.section)
            name = eval_file_name(p.layout, j.section, eval_counter.get(k, 0))
            eval_counter[k] = eval_counter.get(k, 0) + 1
        out.append(replace(j, relpath=f"{top}/{j.machine}/{j.split}/{name}", dev_name=dev))
    return out


def _params_for(cfg: SynthConfig, job: ClipJob, clip_seed: int) -> dict:
    """The operating point of a clip without rendering it (same draws as :func:`render_clip`)."""
    model = machine_model(job.machine)
    rng = np.random.default_rng(seed_sequence(clip_seed, "clip", model))
    dom = job.domain if job.domain in ("source", "target") else "source"
    return get_machine(model).sample_params(rng, machine_unit(job.machine, job.section, cfg.seed), dom)


# -- rendering --------------------------------------------------------------------------------
def _render_job(args) -> tuple[dict, np.ndarray]:
    import soundfile as sf

    from .difficulty import clip_feature

    cfg, job, out_dir = args
    p = cfg.preset
    stereo = None
    model = machine_model(job.machine)  # the simulator model behind the type's name
    if p.layout == "dcase2026":  # two microphones: [n, 2] audio, near mic first
        from .stereo import render_stereo_clip

        audio, (info, stereo) = render_stereo_clip(
            model, anomaly=job.kind, severity=job.severity, seed=_clip_seed(cfg.seed, job),
            domain=job.domain, unit=machine_unit(job.machine, job.section, cfg.seed), sample_rate=cfg.sample_rate,
            duration=p.duration, background=cfg.background, return_info=True)
    else:
        audio, info = render_clip(model, anomaly=job.kind, severity=job.severity,
                                  seed=_clip_seed(cfg.seed, job), domain=job.domain,
                                  unit=machine_unit(job.machine, job.section, cfg.seed),
                                  sample_rate=cfg.sample_rate, duration=p.duration,
                                  background=cfg.background, return_info=True)
    path = Path(out_dir) / job.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()  # encode in memory, then one write: much faster than libsndfile's small writes
    sf.write(buf, audio, cfg.sample_rate, subtype=cfg.subtype, format="WAV")
    path.write_bytes(buf.getvalue())
    params = {k: v for k, v in info.params.items() if k != "attrs"}
    row = {
        "file": job.relpath, "name": Path(job.relpath).name, "dev_name": job.dev_name,
        "machine": job.machine, "section": job.section, "domain": job.domain or "",
        "split": job.split, "label": job.label, "index": job.index,
        "anomaly_kind": job.kind or "", "severity": f"{job.severity:.4f}" if job.kind else "0",
        "region": get_machine(model).kinds[job.kind].region if job.kind else "",
        "onset_s": _fmt(info.onset_s), "offset_s": _fmt(info.offset_s),
        "band_lo_hz": _fmt(info.band_hz[0] if info.band_hz else None),
        "band_hi_hz": _fmt(info.band_hz[1] if info.band_hz else None),
        "events_s": ";".join(f"{t:.4f}" for t in info.events_s),
        "attributes": attr_string(info.attrs), "snr_db": f"{info.snr_db:.2f}",
        "peak_limited": int(info.peak_limited),
        "params": json.dumps(params, sort_keys=True, default=_json_default),
    }
    if stereo is not None:  # both SNRs and the recording chain (see stereo.py)
        row.update({"noise": stereo.noise, "snr_near_db": f"{stereo.snr_near_db:.2f}",
                    "snr_far_db": f"{stereo.snr_far_db:.2f}", "far_distance_m": f"{stereo.far_distance_m:.3f}",
                    "delay_ms": f"{stereo.delay_ms:.3f}", "rt60_s": f"{stereo.rt60_s:.3f}",
                    "coherence": f"{stereo.coherence:.3f}"})
        return row, clip_feature(audio[:, 0], cfg.sample_rate)  # the probe hears the near mic
    return row, clip_feature(audio, cfg.sample_rate)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return time.process_time()
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _pool_context():
    """``fork`` where available: no ``if __name__ == "__main__"`` guard needed in user scripts, and
    workers only run numpy/scipy (no OpenMP), so a parent that already used torch is fine."""
    if "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return mp.get_context("spawn")  # pragma: no cover - Windows/macOS defaults


def _single_thread():
    """Limit BLAS/OpenMP pools of this process to one thread (returns the limiter, or None)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - ships with scikit-learn
        return None
    return threadpool_limits(1)


def _fmt(v) -> str:
    return "" if v is None else f"{float(v):.4f}"


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


METADATA_COLUMNS = ["file", "name", "dev_name", "machine", "section", "domain", "split", "label",
                    "index", "anomaly_kind", "severity", "region", "onset_s", "offset_s",
                    "band_lo_hz", "band_hi_hz", "events_s", "attributes", "snr_db", "peak_limited",
                    "params"]
#: extra columns of a two-microphone (``dcase2026``) dataset: ``snr_db`` is the near mic's
STEREO_COLUMNS = ["noise", "snr_near_db", "snr_far_db", "far_distance_m", "delay_ms", "rt60_s", "coherence"]


def generate_dataset(preset: str | Preset, out_dir: str | os.PathLike, seed: int = 0,
                     machines: Optional[Iterable[str]] = None, scale: float = 1.0, *,
                     duration: Optional[float] = None, sample_rate: int = 16000,
                     subtype: str = "PCM_16", severity_range: tuple[float, float] = (0.1, 1.0),
                     eval_names: bool = False, background: bool = True, workers: int = 1,
                     overwrite: bool = False, probe: bool = True, progress=None) -> Path:
    """Generate a DCASE-layout dataset and return ``out_dir``.

    Args:
        preset: a name from :data:`PRESETS` (``demo``, ``small``, ``dcase2020``, ``dcase2022``,
            ``dcase2023``) or a :class:`Preset`.
        out_dir: target folder; must not already hold a generated dataset unless ``overwrite``.
        seed: the only source of randomness; same arguments → identical bytes.
        machines: subset of machine types (default: the preset's).
        scale: multiplies every clip count (at least one clip per group).
        duration: clip length in seconds (default: the preset's).
        sample_rate, subtype: WAV format (``PCM_16`` default; ``PCM_24``, ``PCM_32``, ``FLOAT``).
        severity_range: anomaly severities are drawn uniformly from this range.
        eval_names: write test clips with anonymised eval-style names (``section_00_0000.wav``)
            under ``eval_data/``; labels and domains are then only in the ground-truth files.
        background: mix the factory background (off: machine only, for physics checks).
        workers: processes to render with (results do not depend on it).
        probe: measure the difficulty probe (Mahalanobis AUC per machine) for the card.
        progress: optional callable ``progress(done, total)``.
    """
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        preset = PRESETS[preset]
    if machines:
        machines = tuple(machines)
        for m in machines:
            machine_model(m)
        preset = replace(preset, machines=machines)
    if duration is not None:
        if duration <= 0:
            raise ConfigError(f"duration must be positive, got {duration}")
        preset = replace(preset, duration=float(duration))
    if subtype not in SUBTYPES:
        raise ConfigError(f"unknown WAV subtype {subtype!r}; choose one of {SUBTYPES}")
    if sample_rate < 8000:
        raise ConfigError(f"sample_rate {sample_rate} is too low for the machine models (>= 8000)")
    preset = preset.scaled(scale)
    cfg = SynthConfig(preset, int(seed), int(sample_rate), subtype, tuple(severity_range), eval_names,
                      background, float(scale))
    out = Path(out_dir)
    _prepare_out(out, overwrite)
    jobs = plan(cfg)
    rows: list[dict] = []
    feats: list[np.ndarray] = []
    args = [(cfg, j, str(out)) for j in jobs]
    workers = max(1, int(workers))
    # one BLAS/OpenMP thread per process: the per-clip matrix work is tiny, and oversubscribed
    # BLAS threads made it 10-50x slower on a busy 2-core machine
    limits = _single_thread()
    if workers == 1:
        it = map(_render_job, args)
        pool = None
    else:
        pool = _pool_context().Pool(workers, initializer=_single_thread)
        it = pool.imap(_render_job, args, chunksize=4)
    try:
        for k, (row, f) in enumerate(it):
            rows.append(row)
            feats.append(f)
            if progress:
                progress(k + 1, len(args))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    render_s = time.perf_counter() - t0
    timing = {"wall_s": render_s, "cpu_s": _cpu_seconds() - cpu0, "workers": workers,
              "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")}
    _write_metadata(out, rows)
    _write_ground_truth(out, cfg, rows)
    if preset.layout != "dcase2020":
        _write_attributes(out, cfg, rows)
    (out / "synth_config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    auc = None
    if probe:
        from .difficulty import probe as run_probe

        auc = run_probe(rows, np.stack(feats))
        (out / "difficulty.json").write_text(json.dumps(auc, indent=2, sort_keys=True) + "\n")
    if limits is not None:
        limits.restore_original_limits()
    from .card import write_card

    write_card(out, cfg, rows, auc, timing)
    return out


def _prepare_out(out: Path, overwrite: bool) -> None:
    generated = ["dev_data", "eval_data", "ground_truth_data", "ground_truth_domain", "metadata.csv",
                 "synth_config.json", "difficulty.json", "README.md"]
    present = [g for g in generated if (out / g).exists()]
    if any(g in present for g in ("dev_data", "eval_data", "metadata.csv")) and not overwrite:
        raise ConfigError(f"{out} already holds a generated dataset ({', '.join(present)}); "
                          f"choose a new folder or pass overwrite=True (--overwrite)")
    for g in present:
        target = out / g
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_metadata(out: Path, rows: list[dict]) -> None:
    cols = METADATA_COLUMNS + (STEREO_COLUMNS if rows and "snr_far_db" in rows[0] else [])
    with open(out / "metadata.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _write_ground_truth(out: Path, cfg: SynthConfig, rows: list[dict]) -> None:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["split"] == "test":
            groups.setdefault((r["machine"], r["section"]), []).append(r)
    for (mach, sec), rs in groups.items():
        stem = ground_truth_stem(cfg.preset.layout, mach, sec)
        data = "".join(f"{r['name']},{int(r['label'] == 'anomaly')}\n" for r in rs)
        (out / "ground_truth_data").mkdir(parents=True, exist_ok=True)
        (out / "ground_truth_data" / stem).write_text(data)
        if cfg.preset.layout != "dcase2020":
            dom = "".join(f"{r['name']},{int(r['domain'] == 'target')}\n" for r in rs)
            (out / "ground_truth_domain").mkdir(parents=True, exist_ok=True)
            (out / "ground_truth_domain" / stem).write_text(dom)


def _write_attributes(out: Path, cfg: SynthConfig, rows: list[dict]) -> None:
    """``attributes_SS.csv`` per machine and section, as the DCASE 2022/2023 sets ship them."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        if cfg.eval_names and r["split"] == "test":
            continue  # attributes of anonymised eval clips are hidden, as in the real eval sets
        top = r["file"].split("/")[0]
        groups.setdefault((top, r["machine"], r["section"]), []).append(r)
    for (top, mach, sec), rs in groups.items():
        width = max(len(r["attributes"].split("_")) // 2 for r in rs)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file_name"] + [x for i in range(1, width + 1) for x in (f"d{i}p", f"d{i}v")])
        for r in rs:
            parts = r["attributes"].split("_") if r["attributes"] else []
            kv = [parts[i] for i in range(len(parts))]
            w.writerow([f"{mach}/{r['split']}/{r['name']}"] + kv + [""] * (2 * width - len(kv)))
        (out / top / mach / f"attributes_{sec}.csv").write_text(buf.getvalue())


def regenerate(config_path: str | os.PathLike, out_dir: str | os.PathLike, *, workers: int = 1,
               overwrite: bool = False) -> Path:
    """Generate the dataset described by a ``synth_config.json`` again (same bytes, any preset)."""
    path = Path(config_path)
    if path.is_dir():
        path = path / "synth_config.json"
    try:
        d = json.loads(path.read_text())
        pd = dict(d["preset"])
        pd["machines"] = tuple(pd["machines"])
        pd["sections"] = tuple(pd["sections"])
        preset = Preset(**pd)  # counts are stored already scaled
        kw = dict(seed=d["seed"], sample_rate=d["sample_rate"], subtype=d["subtype"],
                  severity_range=tuple(d["severity_range"]), eval_names=d["eval_names"],
                  background=d["background"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable synth_config.json ({exc}); "
                          f"point to the file written next to a generated dataset") from None
    return generate_dataset(preset, out_dir, workers=workers, overwrite=overwrite, **kw)


def load_metadata(root: str | os.PathLike) -> list[dict]:
    """Rows of ``<root>/metadata.csv`` (strings, as written)."""
    path = Path(root) / "metadata.csv"
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {root} a dataset written by auscult synth?")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


__all__ = ["PRESETS", "Preset", "SynthConfig", "generate_dataset", "regenerate", "plan", "load_metadata",
           "dev_file_name", "eval_file_name", "attr_string"]
