"""The end-to-end pipeline: train -> score -> evaluate, one run directory per run.

::

    runs/<name>/
      config.yaml                 the resolved recipe (defaults + --set overrides)
      run.json                    seed, versions, host, runtime, data root, year, stage status
      logs/train.log              the auscult logger
      models/<group>/             one model per group (model_per: all | machine | section)
        model.pt                  the method's state_dict + the clips it was fitted / held out on
        metrics.jsonl             per step / epoch training metrics (the engine's)
        checkpoints/{last,best}.pt
      thresholds.json             per (machine, section): the decision threshold and how it was fitted
      scores/train_scores.csv     scores of the training normals (what the thresholds are fitted on)
      scores/test_scores.csv      one row per test clip: name, machine, section, domain, label, score, decision
      embeddings/<group>.npz      the method's test embeddings (when it has any)
      submission/                 official anomaly_score_* / decision_result_* files
      ground_truth/               official ground-truth files, written when the test names carry labels
      report/                     evaluation tables (CSV + Markdown) and result.json
      report.html                 the self-contained HTML report

No test-set leakage: training, model selection (the held-out slice of the *training* normals)
and thresholds (training normals only) never read a test clip; test labels are read only by
:func:`evaluate`.
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from .data.clip import Clip
from .errors import CheckpointError, ConfigError, DataError

log = logging.getLogger("auscult.pipeline")

__all__ = ["train", "score", "evaluate", "run", "group_key", "group_clips", "default_cache_dir", "select_train_clips",
           "load_method", "Progress"]

MODEL_FILE = "model.pt"
Progress = Callable[[str, int, int], None]  # (stage message, done, total)


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """The shared decoded-waveform cache: ``$AUSCULT_CACHE`` or ``~/.cache/auscult/waveforms``."""
    env = os.environ.get("AUSCULT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "auscult" / "waveforms"


def group_key(clip: Clip, model_per: str) -> str:
    """The model a clip belongs to: ``"all"``, ``"<machine>"`` or ``"<machine>/section_<SS>"``."""
    if model_per == "all":
        return "all"
    if model_per == "machine":
        return clip.machine
    if model_per == "section":
        return f"{clip.machine}/section_{clip.section}"
    raise ConfigError(f"model_per must be one of all, machine, section; got {model_per!r}")


def group_clips(clips: Iterable[Clip], model_per: str) -> dict[str, list[Clip]]:
    """Clips grouped by :func:`group_key`, groups in sorted order, clip order kept."""
    out: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        out[group_key(c, model_per)].append(c)
    return {k: out[k] for k in sorted(out)}


def _group_dir(rd, key: str) -> Path:
    return rd.path / "models" / key.replace("/", "__")


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    from .fileio import atomic_write

    atomic_write(path, lambda fh: torch.save(obj, fh))


def _write_json(path: Path, obj: Any) -> None:
    from .engine.rundir import _jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def _filter(clips: Iterable[Clip], data_cfg: Mapping[str, Any]) -> list[Clip]:
    machines, sections = data_cfg.get("machines"), data_cfg.get("sections")
    return [c for c in clips if (not machines or c.machine in machines) and (not sections or c.section in sections)]


def _scan(data: Union[str, Path]):
    from .data.index import DatasetIndex

    idx = DatasetIndex.scan(data)
    if idx.unparsed:
        log.warning("%s: %d file(s) skipped (unparsed names or not audio), e.g. %s (%s)", data, len(idx.unparsed),
                    idx.unparsed[0].path, idx.unparsed[0].reason)
    return idx


def select_train_clips(index, cfg: Mapping[str, Any]) -> list[Clip]:
    """The training normals a recipe trains on (split ``train``, plus ``supplemental`` if asked)."""
    splits = ("train", "supplemental") if cfg["data"].get("include_supplemental") else ("train",)
    clips = _filter([c for c in index.clips if c.split in splits], cfg["data"])
    anomalous = [c for c in clips if c.label == "anomaly"]
    if anomalous:
        raise DataError(f"{anomalous[0].path}: {len(anomalous)} training clip(s) are labelled anomalous; "
                        f"training uses normal clips only — move them out of the train folder")
    return clips


def _year_of(cfg: Mapping[str, Any], clips: Sequence[Clip]) -> int:
    if cfg.get("year"):
        return int(cfg["year"])
    years = [c.year for c in clips if c.year]
    if years:
        return max(set(years), key=years.count)
    return 2023 if any(c.domain for c in clips) else 2020


def _audio_source(cfg: Mapping[str, Any], cache_dir: Union[str, Path, None]):
    from .data.source import AudioSource

    return AudioSource(cfg.get("audio") or {}, cache_dir=default_cache_dir() if cache_dir is None else cache_dir)


def _write_score_rows(path: Path, clips: Sequence[Clip], scores: np.ndarray, decisions: Optional[np.ndarray],
                      groups: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "machine", "section", "domain", "split", "label", "group", "score", "decision", "path"])
        for i, c in enumerate(clips):
            w.writerow([c.name, c.machine, c.section, c.domain or "", c.split, c.label or "", groups[i],
                        repr(float(scores[i])), "" if decisions is None else int(decisions[i]), str(c.path)])


def _fit_threshold(scores: np.ndarray, tcfg: Mapping[str, Any]):
    from .eval.thresholds import false_alarm_threshold, gamma_threshold, percentile_threshold

    if tcfg["method"] == "gamma":
        return gamma_threshold(scores, quantile=float(tcfg["quantile"]))
    if tcfg["method"] == "percentile":
        return percentile_threshold(scores, percentile=float(tcfg["percentile"]))
    return false_alarm_threshold(scores, rate=float(tcfg["rate"]))


def _check_threshold_inputs(ref: Sequence[Clip], tcfg: Mapping[str, Any], group: str) -> None:
    from .eval.thresholds import MIN_SCORES

    counts: dict[tuple[str, str], int] = defaultdict(int)
    for c in ref:
        counts[(c.machine, c.section)] += 1
    few = {f"{m} section {s}": n for (m, s), n in sorted(counts.items()) if n < MIN_SCORES}
    if few:
        where = "held-out" if tcfg["on"] == "holdout" else "training"
        raise DataError(f"{group}: thresholds need at least {MIN_SCORES} {where} normal clips per section, got {few}; "
                        + ("use threshold.on=train or a larger data.holdout" if tcfg["on"] == "holdout"
                           else "add training clips"))


def _progress_noop(msg: str, done: int, total: int) -> None:
    pass


# ------------------------------------------------------------------------------------------------
# methods <-> run directory
# ------------------------------------------------------------------------------------------------
def load_method(run_dir: Union[str, Path], group: str, device: str = "auto"):
    """Rebuild the fitted method of ``group`` from a run directory (ready to ``score``)."""
    import torch

    from .engine import RunDir
    from .methods import FitContext, build_method

    rd = RunDir.open(run_dir)
    cfg = rd.read_config()
    path = _group_dir(rd, group) / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no trained model for group {group!r} in this run; train it first "
                              f"(auscult train ... --out {rd.path} --resume)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds on a truncated/corrupt file
        raise CheckpointError(f"{path}: cannot read the model ({exc.__class__.__name__}: {exc}); retrain the group "
                              f"(delete the file and run auscult train --resume)") from None
    if not isinstance(blob, dict) or "state" not in blob or blob.get("method") != cfg["method"]:
        raise CheckpointError(f"{path}: not a {cfg['method']!r} model of this run")
    method = build_method(cfg["method"], cfg, FitContext(device=device, seed=int(cfg.get("seed", 0)), group=group,
                                                         quiet=True))
    method.load_state_dict(blob["state"])
    return method


# ------------------------------------------------------------------------------------------------
# train
# ------------------------------------------------------------------------------------------------
def _default_out(cfg: Mapping[str, Any]) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = str(cfg.get("name") or cfg["method"]).replace("/", "-")
    return Path("runs") / f"{name}-{stamp}"


def train(recipe: Union[str, Path, Mapping[str, Any]], data: Union[str, Path], out: Union[str, Path, None] = None,
          overrides: Sequence[str] = (), device: str = "auto", resume: bool = False, quiet: bool = False,
          cache_dir: Union[str, Path, None] = None, progress: Optional[Progress] = None) -> Path:
    """Train one model per group of a recipe on the training normals under ``data``.

    Args:
        recipe: a ``<dataset>/<method>`` name, a YAML path or a recipe mapping.
        data: dataset root (DCASE layout, own folders, or a manifest CSV).
        out: run directory (default ``runs/<recipe>-<UTC time>``).
        overrides: ``key.path=value`` strings applied to the recipe.
        device: ``auto`` | ``cpu`` | ``cuda[:N]`` | ``mps``.
        resume: continue a killed run in ``out``: finished groups are kept, the interrupted one
            resumes from its last checkpoint (exactly where it stopped), the rest are trained.
        cache_dir: decoded-waveform cache (default :func:`default_cache_dir`).
        progress: optional ``progress(message, done, total)`` callback (per group).

    Returns:
        The run directory.
    """
    from .engine import RunDir, holdout_split, setup_runtime
    from .methods import FitContext, build_method
    from .recipes import load_recipe

    progress = progress or _progress_noop
    cfg = load_recipe(recipe, overrides)
    out = Path(out) if out is not None else _default_out(cfg)
    if resume:
        if not (out / "config.yaml").is_file():
            raise ConfigError(f"{out}: nothing to resume (no config.yaml); drop --resume to start a new run")
        rd = RunDir.open(out)
        saved = rd.read_config()
        if json.dumps(saved, sort_keys=True, default=str) != json.dumps(json.loads(json.dumps(cfg, default=str)), sort_keys=True, default=str):
            diff = sorted(k for k in set(saved) | set(cfg) if saved.get(k) != cfg.get(k))
            raise ConfigError(f"{out}: the recipe differs from the run's config.yaml in {diff}; resume with the "
                              f"same recipe and --set values (or start a new run with another --out)")
    else:
        rd = RunDir.create(out.parent, out.name, config=cfg, seed=int(cfg["seed"]))
    handler = rd.attach_log()
    started = False  # set just before the first model trains: a failure before it leaves no run folder
    try:
        rt = setup_runtime(device=device)
        index = _scan(data)
        clips = select_train_clips(index, cfg)
        if not clips:
            raise DataError(f"{data}: no training clips found (expected <machine>/train/*.wav; "
                            f"data.machines={cfg['data']['machines']}, data.sections={cfg['data']['sections']})")
        year = _year_of(cfg, clips)
        groups = group_clips(clips, cfg["model_per"])
        meta = rd.read_meta()
        done: list[str] = list(meta.get("groups_done", [])) if resume else []
        rd.write_meta(seed=int(cfg["seed"]), data=str(Path(data).resolve()), year=year, runtime=rt.__dict__,
                      groups=list(groups), groups_done=done, stage="training",
                      train_clips={k: len(v) for k, v in groups.items()},
                      skipped_files=[{"path": str(u.path), "reason": u.reason} for u in index.unparsed])
        if index.unparsed:
            progress(f"skipped {len(index.unparsed)} file(s) under {data} (names not understood or not audio; "
                     f"listed in {rd.meta_path}), e.g. {index.unparsed[0].path}: {index.unparsed[0].reason}",
                     0, len(groups))
        audio = _audio_source(cfg, cache_dir)
        thresholds: dict[str, Any] = _read_json(rd.path / "thresholds.json", {}) if resume else {}
        h = cfg["data"]["holdout"] or 0.0
        for gi, (key, gclips) in enumerate(groups.items()):
            gdir = _group_dir(rd, key)
            if key in done and (gdir / MODEL_FILE).is_file():
                progress(f"{key}: already trained", gi + 1, len(groups))
                continue
            progress(f"training {key} ({len(gclips)} clips)", gi, len(groups))
            t0 = time.perf_counter()
            if h > 0 and len(gclips) >= 2:
                fit, val = holdout_split(gclips, h, seed=int(cfg["seed"]),
                                         key=lambda c: (c.machine, c.section, c.domain))
            else:
                fit, val = list(gclips), []
            ref = list(gclips) if cfg["threshold"]["on"] == "train" or not val else list(val)
            _check_threshold_inputs(ref, cfg["threshold"], key)  # before training, not after
            ctx = FitContext(run_dir=gdir, device=device, seed=int(cfg["seed"]), group=key,
                             resume=bool(resume), quiet=quiet)
            method = build_method(cfg["method"], cfg, ctx)
            started = True
            method.fit(fit, val, audio)
            # thresholds from training normals only (all of them, or only the held-out ones)
            ref_scores = np.asarray(method.score(ref, audio), dtype=np.float64)
            by_sec: dict[tuple[str, str], list[int]] = defaultdict(list)
            for i, c in enumerate(ref):
                by_sec[(c.machine, c.section)].append(i)
            for (m, s), ii in sorted(by_sec.items()):
                thr = _fit_threshold(ref_scores[ii], cfg["threshold"])
                thresholds[f"{m}/{s}"] = {**thr.to_dict(), "group": key, "fitted_on": cfg["threshold"]["on"]}
            _write_score_rows(gdir / "train_scores.csv", ref, ref_scores, None, [key] * len(ref))
            _atomic_torch_save({"method": cfg["method"], "group": key, "state": method.state_dict(),
                                "fit_clips": [str(c.path) for c in fit], "val_clips": [str(c.path) for c in val],
                                "seconds": time.perf_counter() - t0}, gdir / MODEL_FILE)
            _write_json(rd.path / "thresholds.json", thresholds)
            done.append(key)
            rd.write_meta(groups_done=done)
            log.info("trained %s on %d clips (%d held out) in %.1f s", key, len(fit), len(val), time.perf_counter() - t0)
            progress(f"trained {key}", gi + 1, len(groups))
        # one table of every group's training-normal scores (what the thresholds were fitted on)
        merged = rd.scores / "train_scores.csv"
        with open(merged, "w", newline="", encoding="utf-8") as out_f:
            header_written = False
            for key in groups:
                part = _group_dir(rd, key) / "train_scores.csv"
                if not part.is_file():
                    continue
                lines = part.read_text(encoding="utf-8").splitlines(keepends=True)
                out_f.writelines(lines if not header_written else lines[1:])
                header_written = True
        rd.write_meta(stage="trained")
        return rd.path
    except BaseException:
        if not resume and not started:
            logging.getLogger("auscult").removeHandler(handler)
            handler.close()
            rd.discard_unstarted()
        raise
    finally:
        logging.getLogger("auscult").removeHandler(handler)
        handler.close()


# ------------------------------------------------------------------------------------------------
# score
# ------------------------------------------------------------------------------------------------
def score(run_dir: Union[str, Path], data: Union[str, Path, None] = None, device: str = "auto",
          cache_dir: Union[str, Path, None] = None, progress: Optional[Progress] = None) -> Path:
    """Score the test clips under ``data`` (default: the run's training data root) with a trained run.

    Writes ``scores/test_scores.csv``, the official submission files (anomaly scores and 0/1
    decisions from the training-normal thresholds) and, when every test name carries its label,
    the matching official ground-truth files under ``ground_truth/``. Returns ``submission/``.
    """
    from .data.groundtruth import write_ground_truth
    from .engine import RunDir, setup_runtime
    from .eval.submission import write_submission
    from .methods import Method

    progress = progress or _progress_noop
    rd = RunDir.open(run_dir)
    cfg = rd.read_config()
    meta = rd.read_meta()
    if meta.get("stage") not in ("trained", "scored", "evaluated"):
        raise ConfigError(f"{rd.path}: training has not finished (stage {meta.get('stage')!r}); "
                          f"finish it with auscult train ... --out {rd.path} --resume")
    if data is None:
        if not meta.get("data"):
            raise ConfigError(f"{rd.path}: the run does not record its data root; pass --data ROOT")
        data = meta["data"]
    setup_runtime(device=device)
    index = _scan(data)
    trained = set(meta.get("groups_done", []))
    tests = _filter([c for c in index.clips if c.split == "test"], cfg["data"])
    if not tests:
        raise DataError(f"{data}: no test clips found (expected <machine>/test/*.wav or eval_data/ folders)")
    groups = group_clips(tests, cfg["model_per"])
    missing = sorted(set(groups) - trained)
    if missing:
        raise DataError(f"{data}: test clips of {missing} but the run trained only {sorted(trained)}; score data of "
                        f"the same machine types/sections (or set data.machines to restrict)")
    thresholds = _read_json(rd.path / "thresholds.json", {})
    audio = _audio_source(cfg, cache_dir)
    year = int(meta.get("year") or _year_of(cfg, tests))
    all_clips: list[Clip] = []
    all_scores: list[float] = []
    all_dec: list[int] = []
    all_groups: list[str] = []
    for gi, (key, gclips) in enumerate(groups.items()):
        progress(f"scoring {key} ({len(gclips)} clips)", gi, len(groups))
        method = load_method(rd.path, key, device=device)
        s = np.asarray(method.score(gclips, audio), dtype=np.float64)
        if s.shape != (len(gclips),) or not np.isfinite(s).all():
            raise DataError(f"method {cfg['method']!r} returned {s.shape} scores (finite: {bool(np.isfinite(s).all())}) "
                            f"for {len(gclips)} clips of {key}")
        for c, v in zip(gclips, s):
            t = thresholds.get(f"{c.machine}/{c.section}")
            if t is None:
                raise DataError(f"{c.path}: no threshold for {c.machine} section {c.section} (no training clips of it)")
            all_dec.append(int(v > t["value"]))
        if type(method).embed is not Method.embed:  # the method has embeddings: keep them
            emb = np.asarray(method.embed(gclips, audio))
            np.savez(rd.embeddings / f"{key.replace('/', '__')}_test.npz", embeddings=emb,
                     names=np.array([c.name for c in gclips]), scores=s)
        all_clips += gclips
        all_scores += s.tolist()
        all_groups += [key] * len(gclips)
        progress(f"scored {key}", gi + 1, len(groups))
    scores_arr = np.asarray(all_scores)
    dec = np.asarray(all_dec, dtype=np.int64)
    _write_score_rows(rd.scores / "test_scores.csv", all_clips, scores_arr, dec, all_groups)
    sub = rd.submission
    for p in sub.glob("*.csv"):
        p.unlink()
    write_submission(all_clips, scores_arr, dec, sub, year)
    gt_dir = rd.path / "ground_truth"
    labelled = all(c.label in ("normal", "anomaly") and (year == 2020 or c.domain) for c in all_clips)
    if labelled:
        import shutil

        shutil.rmtree(gt_dir, ignore_errors=True)
        write_ground_truth(all_clips, gt_dir, year)
    rd.write_meta(stage="scored", scored_data=str(Path(data).resolve()), year=year,
                  skipped_test_files=[{"path": str(u.path), "reason": u.reason} for u in index.unparsed],
                  ground_truth=str(gt_dir) if labelled else None, n_test=len(all_clips))
    return sub


# ------------------------------------------------------------------------------------------------
# evaluate
# ------------------------------------------------------------------------------------------------
def resolve_run(run_dir: Union[str, Path], ground_truth: Union[str, Path, None] = None) -> tuple[Path, Path, int]:
    """``(submission_dir, ground_truth_dir, year)`` of a scored run."""
    from .engine import RunDir

    rd = RunDir.open(run_dir)
    meta = rd.read_meta()
    if meta.get("stage") not in ("scored", "evaluated") or not any(rd.submission.glob("anomaly_score_*.csv")):
        raise ConfigError(f"{rd.path}: the run has no submission files yet; run auscult score {rd.path} --data ROOT")
    gt = Path(ground_truth) if ground_truth is not None else (Path(meta["ground_truth"]) if meta.get("ground_truth") else None)
    if gt is None:
        raise ConfigError(f"{rd.path}: the test clip names carry no labels (evaluation data); "
                          f"pass --ground-truth DIR with the official ground-truth files")
    return rd.submission, gt, int(meta["year"])


def evaluate(run_dir: Union[str, Path], ground_truth: Union[str, Path, None] = None, year: Optional[int] = None,
             title: Optional[str] = None):
    """Evaluate a scored run with the official protocol; writes ``report/`` tables and ``report.html``.

    Labels come from the ground truth the run wrote from the dev names, or ``ground_truth``.
    Returns the :class:`auscult.eval.Result`.
    """
    from .engine import RunDir
    from .eval.report import run_provenance, write_report, write_tables
    from .eval.submission import evaluate_submission

    sub, gt, run_year = resolve_run(run_dir, ground_truth)
    year = int(year or run_year)
    rd = RunDir.open(run_dir)
    result = evaluate_submission(sub, gt, year)
    thresholds = _read_json(rd.path / "thresholds.json", {})
    for g in result.groups:
        t = thresholds.get(f"{g.machine}/{g.section}")
        if t is not None:
            g.threshold = float(t["value"])
    write_tables(result, rd.report)
    _write_json(rd.report / "result.json", result.to_dict())
    cfg = rd.read_config()
    write_report(result, rd.path / "report.html", provenance=run_provenance(rd.path),
                 title=title or f"auscult · {cfg.get('name') or cfg['method']} · {result.protocol}")
    headline = {"official_score": result.official_score, "official_definition": result.official_definition,
                **{k: v for k, v in result.aggregates.items()}}
    rd.write_meta(stage="evaluated", evaluation=headline)
    return result


# ------------------------------------------------------------------------------------------------
# run = train + score + evaluate
# ------------------------------------------------------------------------------------------------
def run(recipe: Union[str, Path, Mapping[str, Any]], data: Union[str, Path], out: Union[str, Path, None] = None,
        overrides: Sequence[str] = (), device: str = "auto", resume: bool = False, quiet: bool = False,
        ground_truth: Union[str, Path, None] = None, cache_dir: Union[str, Path, None] = None,
        progress: Optional[Progress] = None):
    """Train, score and evaluate in one go. Returns ``(run_dir, result_or_None)``; the result is
    ``None`` when the test clips carry no labels and no ``ground_truth`` was given."""
    rd = train(recipe, data, out, overrides=overrides, device=device, resume=resume, quiet=quiet,
               cache_dir=cache_dir, progress=progress)
    score(rd, data, device=device, cache_dir=cache_dir, progress=progress)
    meta = json.loads((Path(rd) / "run.json").read_text())
    if ground_truth is None and not meta.get("ground_truth"):
        return rd, None
    return rd, evaluate(rd, ground_truth)


def print_headline(result, console) -> None:
    """The official score and a per-machine table (AUC source/target, pAUC, ...) on ``console``."""
    from rich.table import Table

    if result is None:
        return
    if result.official_score is not None:
        console.print(f"[bold]official score: {result.official_score:.4f}[/bold]  [dim]({result.official_definition})[/dim]")
    cols = [c for c in result.machine_columns if c != "machine"]
    t = Table(title="per machine", title_justify="left")
    t.add_column("machine")
    for c in cols:
        t.add_column(c, justify="right")
    for m in result.machines:
        t.add_row(str(m.get("machine")), *[f"{m[c]:.3f}" if isinstance(m.get(c), float) else str(m.get(c, ""))
                                            for c in cols])
    console.print(t)


# ------------------------------------------------------------------------------------------------
# demo
# ------------------------------------------------------------------------------------------------
def demo(out: Union[str, Path] = "runs/demo", seed: int = 0, epochs: int = 30, workers: int = 2,
         overwrite: bool = True, preset: str = "demo", console=None, scale: float = 1.0,
         machines: Optional[Sequence[str]] = None, cache_dir: Union[str, Path, None] = None):
    """The five-minute tour: generate a small synthetic dataset (``auscult.data.synth``), train the
    autoencoder baseline, score, evaluate and write the HTML report. Returns ``(run_dir, result)``.

    ``scale`` and ``machines`` shrink the generated dataset (tests)."""
    import shutil

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .data.synth import PRESETS, generate_dataset

    console = console or Console(stderr=True)
    out = Path(out)
    data_dir, run_dir = out / "data", out / "run"
    if out.exists() and overwrite:
        for p in (data_dir, run_dir):
            shutil.rmtree(p, ignore_errors=True)
    elif run_dir.exists():
        raise ConfigError(f"{out}: an earlier demo is here; pass --overwrite or another --out")
    t0 = time.perf_counter()
    p = PRESETS[preset]
    mlist = list(machines) if machines else list(p.machines)
    console.print(f"[bold]1/3[/bold] generating the '{preset}' synthetic dataset: {', '.join(mlist)} "
                  f"({p.duration:g} s clips) -> {data_dir}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("rendering clips", total=None)
        generate_dataset(preset, data_dir, seed=seed, workers=workers, overwrite=True, probe=False, scale=scale,
                         machines=mlist, progress=lambda d, n: bar.update(task, completed=d, total=n))
    console.print(f"    done in {time.perf_counter() - t0:.0f} s")
    console.print(f"[bold]2/3[/bold] training the autoencoder baseline (one model per machine, {epochs} epochs)")
    t1 = time.perf_counter()

    def prog(msg: str, done: int, total: int) -> None:
        console.print(f"    [dim][{done}/{total}][/dim] {msg}")

    rd = train("synthetic/autoencoder", data_dir, run_dir, overrides=[f"train.epochs={int(epochs)}", f"seed={int(seed)}"],
               device="auto", quiet=False, progress=prog, cache_dir=cache_dir)
    console.print(f"    done in {time.perf_counter() - t1:.0f} s")
    console.print("[bold]3/3[/bold] scoring the test clips, writing the submission files and the report")
    score(rd, data_dir, progress=prog, cache_dir=cache_dir)
    result = evaluate(rd, title="auscult demo · autoencoder baseline on synthetic machines")
    console.print()
    print_headline(result, console)
    console.print(f"\nreport:      {Path(rd) / 'report.html'}")
    console.print(f"submission:  {Path(rd) / 'submission'}")
    console.print(f"total time:  {time.perf_counter() - t0:.0f} s")
    return rd, result
