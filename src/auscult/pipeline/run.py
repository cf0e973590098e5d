"""The end-to-end pipeline: train -> score -> evaluate, one run directory per run.

::

    runs/<name>/
      config.yaml                 the resolved recipe (defaults + --set overrides)
      run.json                    seed, versions, host, runtime, data root, year, stage status
      logs/train.log              the auscult logger
      models/<group>/             one model per group (model_per: all | machine | section)
        model.npz                 the method's state_dict + the clips it was fitted / held out on, in
                                  auscult's one save format (auscult.fileio: JSON + arrays, no pickle)
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

from ..data.clip import Clip
from ..errors import CheckpointError, ConfigError, DataError
from .recipe import Recipe

log = logging.getLogger("auscult.pipeline")

__all__ = ["train", "score", "evaluate", "run", "group_key", "group_clips", "default_cache_dir", "select_train_clips",
           "load_method", "load_group_model", "resolve_run", "group_dir", "Progress", "MODEL_FILE", "MODEL_FORMAT"]

MODEL_FILE = "model.npz"
MODEL_FORMAT = "auscult-run-model"
MODEL_FORMAT_VERSION = 1
#: the pickled model file of auscult before the one save format (refused, never unpickled)
LEGACY_MODEL_FILE = "model.pt"
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


def group_dir(run_dir: Union[str, Path], key: str) -> Path:
    """The folder of group ``key`` in a run directory (``models/<key with / as __>``)."""
    return Path(run_dir) / "models" / key.replace("/", "__")


def _group_dir(rd, key: str) -> Path:
    return group_dir(rd.path, key)


def _save_group_model(path: Path, record: Mapping[str, Any]) -> None:
    from ..fileio import save_tree, writer_versions

    save_tree(path, dict(record), {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
                                   "versions": writer_versions()})


def _write_json(path: Path, obj: Any) -> None:
    from ..engine.rundir import _jsonable

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
    from ..data.index import DatasetIndex

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
    from ..data.source import AudioSource

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
    from ..eval.thresholds import fit_threshold

    return fit_threshold(scores, tcfg["method"], quantile=float(tcfg["quantile"]),
                         percentile=float(tcfg["percentile"]), rate=float(tcfg["rate"]))


def _check_threshold_inputs(ref: Sequence[Clip], tcfg: Mapping[str, Any], group: str) -> None:
    from ..eval.thresholds import MIN_SCORES

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


def _clip_seconds(clips: Sequence[Clip], audio: Any) -> float:
    """The clip length a group was trained on (the fixed length, else the first clip's duration):
    the window a bundle made from the run cuts long recordings into."""
    if audio.n_samples:
        return float(audio.n_samples) / audio.sample_rate
    return float(audio.load(clips[0]).shape[0]) / audio.sample_rate


# ------------------------------------------------------------------------------------------------
# methods <-> run directory
# ------------------------------------------------------------------------------------------------
def load_group_model(run_dir: Union[str, Path], group: str) -> dict[str, Any]:
    """The saved record of ``group`` (``method``, ``state``, ``fit_clips``, ``val_clips``,
    ``clip_seconds``...), read without running any code (:func:`auscult.fileio.load_tree`).

    A model file in the pickled format of earlier auscult versions (``model.pt``) is refused with
    a :class:`CheckpointError` saying how to retrain it: it is never unpickled.
    """
    gdir = group_dir(run_dir, group)
    path = gdir / MODEL_FILE
    if not path.is_file():
        if (gdir / LEGACY_MODEL_FILE).is_file():
            raise CheckpointError(
                f"{gdir / LEGACY_MODEL_FILE}: a model in the pickled format of an earlier auscult; auscult no longer "
                f"loads pickles (opening one can run code). Retrain the group: delete {gdir} and run "
                f"'auscult train RECIPE --data DATA --out {Path(run_dir)} --resume' (finished groups are kept)")
        raise CheckpointError(f"{path}: no trained model for group {group!r} in this run; train it first "
                              f"(auscult train ... --out {Path(run_dir)} --resume)")
    from ..fileio import load_tree

    try:
        header, record = load_tree(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; retrain the group (delete {gdir} and run auscult train --resume)") from None
    if header.get("format") != MODEL_FORMAT or not isinstance(record, dict) or "state" not in record:
        raise CheckpointError(f"{path}: not an auscult run model (format {header.get('format')!r})")
    if int(header.get("format_version") or 0) > MODEL_FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer auscult (model format {header.get('format_version')}); "
                              f"upgrade auscult")
    return record


def load_method(run_dir: Union[str, Path], group: str, device: str = "auto"):
    """Rebuild the fitted method of ``group`` from a run directory (ready to ``score``)."""
    from ..engine import RunDir
    from ..methods import FitContext, build_method

    rd = RunDir.open(run_dir)
    cfg = rd.read_config()
    record = load_group_model(rd.path, group)
    if record.get("method") != cfg["method"]:
        raise CheckpointError(f"{group_dir(rd.path, group) / MODEL_FILE}: not a {cfg['method']!r} model of this run")
    method = build_method(cfg["method"], cfg, FitContext(device=device, seed=int(cfg.get("seed", 0)), group=group,
                                                         quiet=True))
    method.load_state_dict(record["state"])
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
    from ..engine import RunDir, holdout_split, setup_runtime
    from ..methods import FitContext, build_method
    from .recipe import load_recipe

    progress = progress or _progress_noop
    cfg = load_recipe(recipe, overrides)
    rec = Recipe.from_dict(cfg)
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
        rd = RunDir.create(out.parent, out.name, config=cfg, seed=int(rec.seed))
    handler = rd.attach_log()
    started = False  # set just before the first model trains: a failure before it leaves no run folder
    try:
        rt = setup_runtime(device=device)
        index = _scan(data)
        clips = select_train_clips(index, cfg)
        if not clips:
            raise DataError(f"{data}: no training clips found (expected <machine>/train/*.wav; "
                            f"data.machines={rec.data['machines']}, data.sections={rec.data['sections']})")
        year = _year_of(cfg, clips)
        groups = group_clips(clips, rec.model_per)
        meta = rd.read_meta()
        done: list[str] = list(meta.get("groups_done", [])) if resume else []
        rd.write_meta(seed=int(rec.seed), data=str(Path(data).resolve()), year=year, runtime=rt.__dict__,
                      groups=list(groups), groups_done=done, stage="training",
                      train_clips={k: len(v) for k, v in groups.items()},
                      skipped_files=[{"path": str(u.path), "reason": u.reason} for u in index.unparsed])
        if index.unparsed:
            progress(f"skipped {len(index.unparsed)} file(s) under {data} (names not understood or not audio; "
                     f"listed in {rd.meta_path}), e.g. {index.unparsed[0].path}: {index.unparsed[0].reason}",
                     0, len(groups))
        audio = _audio_source(cfg, cache_dir)
        thresholds: dict[str, Any] = _read_json(rd.path / "thresholds.json", {}) if resume else {}
        h = rec.data["holdout"] or 0.0
        for gi, (key, gclips) in enumerate(groups.items()):
            gdir = _group_dir(rd, key)
            if key in done and (gdir / MODEL_FILE).is_file():
                progress(f"{key}: already trained", gi + 1, len(groups))
                continue
            progress(f"training {key} ({len(gclips)} clips)", gi, len(groups))
            t0 = time.perf_counter()
            if h > 0 and len(gclips) >= 2:
                fit, val = holdout_split(gclips, h, seed=int(rec.seed),
                                         key=lambda c: (c.machine, c.section, c.domain))
            else:
                fit, val = list(gclips), []
            ref = list(gclips) if rec.threshold["on"] == "train" or not val else list(val)
            _check_threshold_inputs(ref, rec.threshold, key)  # before training, not after
            ctx = FitContext(run_dir=gdir, device=device, seed=int(rec.seed), group=key,
                             resume=bool(resume), quiet=quiet)
            method = build_method(rec.method, cfg, ctx)
            started = True
            method.fit(fit, val, audio)
            # thresholds from training normals only (all of them, or only the held-out ones)
            ref_scores = np.asarray(method.score(ref, audio), dtype=np.float64)
            by_sec: dict[tuple[str, str], list[int]] = defaultdict(list)
            for i, c in enumerate(ref):
                by_sec[(c.machine, c.section)].append(i)
            for (m, s), ii in sorted(by_sec.items()):
                thr = _fit_threshold(ref_scores[ii], rec.threshold)
                thresholds[f"{m}/{s}"] = {**thr.to_dict(), "group": key, "fitted_on": rec.threshold["on"]}
            _write_score_rows(gdir / "train_scores.csv", ref, ref_scores, None, [key] * len(ref))
            _save_group_model(gdir / MODEL_FILE, {
                "method": rec.method, "group": key, "state": method.state_dict(),
                "fit_clips": [str(c.path) for c in fit], "val_clips": [str(c.path) for c in val],
                "units": sorted({f"{c.machine}/{c.section}" for c in gclips}),
                "clip_seconds": _clip_seconds(fit, audio), "seconds": time.perf_counter() - t0})
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
    from ..data.groundtruth import write_ground_truth
    from ..engine import RunDir, setup_runtime
    from ..eval.submission import write_submission

    progress = progress or _progress_noop
    rd = RunDir.open(run_dir)
    cfg = rd.read_config()
    rec = Recipe.from_dict(cfg)
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
    tests = _filter([c for c in index.clips if c.split == "test"], rec.data)
    if not tests:
        raise DataError(f"{data}: no test clips found (expected <machine>/test/*.wav or eval_data/ folders)")
    groups = group_clips(tests, rec.model_per)
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
            raise DataError(f"method {rec.method!r} returned {s.shape} scores (finite: {bool(np.isfinite(s).all())}) "
                            f"for {len(gclips)} clips of {key}")
        for c, v in zip(gclips, s):
            t = thresholds.get(f"{c.machine}/{c.section}")
            if t is None:
                raise DataError(f"{c.path}: no threshold for {c.machine} section {c.section} (no training clips of it)")
            all_dec.append(int(v > t["value"]))
        if method.supports("embed"):  # the method has embeddings: keep them
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
    from ..engine import RunDir

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
    from ..engine import RunDir
    from ..eval.report import run_provenance, write_report, write_tables
    from ..eval.submission import evaluate_submission

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
