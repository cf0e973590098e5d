"""``auscult fit / explain / watch / export`` and the bundle form of ``auscult score``.

Heavy imports (torch, numpy, matplotlib) happen inside the commands so ``auscult --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..errors import ConfigError
from .alerting import DEFAULT_K, DEFAULT_N


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


#: figure formats ``auscult explain --out`` writes (matplotlib backends that need nothing extra)
EXPLAIN_FORMATS = (".png", ".svg", ".pdf", ".jpg", ".jpeg")


def _check_out(path: Path, option: str, formats: Optional[tuple] = None) -> None:
    """Refuse, before any work, an output path whose folder does not exist (no folders are made
    on the user's behalf: a typo should not silently create a tree) or whose suffix is not one of
    ``formats``."""
    if formats is not None and path.suffix.lower() not in formats:
        raise ConfigError(f"{option} {path}: unsupported format {path.suffix or '(no suffix)'!r}; "
                          f"use one of {', '.join(formats)}")
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: the folder {parent} does not exist; create it first "
                          f"(mkdir -p {parent}) or pick another path")


def _parse_features(items: Optional[List[str]]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise ConfigError(f"--feature {it!r}: use KEY=VALUE, e.g. --feature n_mels=64")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


# ------------------------------------------------------------------------------------------------
# fit
# ------------------------------------------------------------------------------------------------
def fit_cmd(
    data: Path = typer.Argument(..., help="Folder of normal recordings (DIR/*.wav = one machine, DIR/<machine>/... = "
                                          "several), one audio file, or a manifest CSV."),
    out: Path = typer.Option(..., "--out", "-o", help="The model bundle to write (e.g. model.auscult)."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Machine id for a single-machine folder "
                                                                  "(default: the folder name)."),
    method: str = typer.Option("auto", "--method", help="auto (by data size) or any method of 'auscult list': "
                                                        "autoencoder, logmel_knn, clsia, osscl, protoasd, ssl4asd."),
    window: float = typer.Option(5.0, "--window", help="Clip length in seconds (long recordings are cut)."),
    hop: Optional[float] = typer.Option(None, "--hop", help="Hop of scoring windows for long inputs and watch "
                                                            "(default: window / 2)."),
    false_alarm_rate: float = typer.Option(0.01, "--false-alarm-rate", help="Target fraction of normal windows "
                                                                            "flagged."),
    calibration: float = typer.Option(0.25, "--calibration", help="Share of recordings held out for the threshold."),
    threshold: str = typer.Option("auto", "--threshold", help="auto | empirical | gamma."),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="Everything is resampled to this rate."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs of a neural method (default: its "
                                                                "preset; the autoencoder's scale with the data)."),
    min_net_windows: Optional[int] = typer.Option(None, "--min-net-windows", help="Opt in: from this many training "
                                                  "windows on, auto trains the autoencoder (default: auto always "
                                                  "picks bandstats, measured ahead at every size; docs/benchmarks.md, "
                                                  "small data)."),
    feature: Optional[List[str]] = typer.Option(None, "--feature", help="Front-end option KEY=VALUE (repeatable), "
                                                                        "e.g. --feature n_mels=64."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a setting of the method's recipe, "
                                                                 "YAML-typed: --set net.emb_dim=64 (repeatable)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda[:N] | auto (where networks train)."),
    json_out: bool = typer.Option(False, "--json", help="Print the fit report as JSON."),
    channel: str = typer.Option("mean", "--channel", help="How a multi-channel recording is read: mean (default), "
                                                          "near / far (channel 0 / 1 of a DCASE 2026 two-microphone "
                                                          "recording) or a channel index; the bundle reads "
                                                          "multi-channel input the same way."),
) -> None:
    """Fit a method on normal recordings (one model per machine, or one for all machines for the
    classification methods) and write one model bundle."""
    from ..engine import setup_runtime
    from .fit import FitConfig, fit_bundle

    _check_out(out, "--out")
    setup_runtime(device=device)  # CPU threads and the allocator tuning measured to speed up training
    cfg = FitConfig(method=method, sample_rate=sample_rate, window_s=window, hop_s=hop,
                    false_alarm_rate=false_alarm_rate, calibration_fraction=calibration, threshold=threshold,
                    epochs=epochs, min_net_windows=min_net_windows, features=_parse_features(feature),
                    overrides=list(set_ or []), seed=seed, device=device, channel=channel)
    bundle, report = fit_bundle(data, out, cfg, machine=machine, log=_err)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=1, default=str))
        return
    for m, r in report.machines.items():
        typer.echo(f"{m}: {r['detector']} on {r['fit_windows']} windows ({r['split']})")
        typer.echo(f"  why: {r['detector_reason']}")
        if r.get("one_class"):
            typer.echo(f"  note: {r['one_class']}")
        typer.echo(f"  threshold {r['threshold']:.6g} ({r['threshold_method']}, expected false-alarm rate "
                   f"{r['expected_false_alarm_rate']:.3g}; {r['empirical_false_alarm_rate']:.3g} on "
                   f"{r['calibration_windows']} held-out windows)")
    if report.skipped:
        by_reason: dict[str, list[str]] = {}
        for p, why in report.skipped:
            by_reason.setdefault(why, []).append(p)
        typer.echo(f"skipped {len(report.skipped)} file(s) (--json lists every one):")
        for why, paths in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            typer.echo(f"  {len(paths)} x {why}; e.g. {paths[0]}")
    if report.input_faults:
        kinds: dict[str, list[str]] = {}
        for f in report.input_faults:
            kinds.setdefault(f["fault"], []).append(f["path"])
        typer.echo(f"left out {len(report.input_faults)} recording(s) as input faults, not machine sound "
                   f"(--json lists every one):")
        for code, paths in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
            typer.echo(f"  {len(paths)} x INPUT FAULT ({code}); e.g. {paths[0]}")
    typer.echo(f"wrote {out} in {report.seconds:.1f} s")


# ------------------------------------------------------------------------------------------------
# score (dispatched from auscult.pipeline.cli for .auscult targets)
# ------------------------------------------------------------------------------------------------
def score_files(bundle_path: Path, files: List[Path], machine: Optional[str] = None, output: str = "table") -> int:
    """Score audio files with a bundle and print one row per file; returns the exit code.

    ``output``: ``table`` (aligned text), ``json`` (one list) or ``csv``. Columns: file, machine,
    score, decision, threshold, expected_false_alarm_rate, calibration_exceedance, status
    (``scored``, ``input_fault`` or ``error``), fault (the input-fault code: ``silent``,
    ``clipped``, ...), reason, error. An input fault (:mod:`auscult.data.quality`) has no score and
    no decision. Every file gets its row.

    Exit code: 1 when a file could not be read, else 3 when a file was an input fault, else 0.
    """
    import csv
    import warnings

    from ..audio import ResampleWarning
    from ..data.quality import InputFaultError
    from ..errors import AuscultError
    from .bundle import load_bundle

    if output not in ("table", "json", "csv"):
        raise ConfigError(f"output must be table, json or csv, got {output!r}")
    bundle = load_bundle(bundle_path)
    machine = bundle.model(machine)[0]  # an unknown or missing machine is one error, before any file
    rows: list[dict[str, Any]] = []
    failed = faults = 0
    def row(f: Path, machine: str, status: str, **kw: Any) -> dict[str, Any]:
        r = {"file": str(f), "machine": machine, "score": None, "decision": None, "threshold": None,
             "expected_false_alarm_rate": None, "calibration_exceedance": None, "status": status, "fault": None,
             "reason": None, "error": None}
        r.update(kw)
        return r

    resampled = 0
    for f in files:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResampleWarning)
                r = bundle.score_file(f, machine=machine)
            resampled += any(issubclass(w.category, ResampleWarning) for w in caught)
            rows.append(row(f, r.machine, "scored", score=r.score, decision=r.decision, threshold=r.threshold,
                            expected_false_alarm_rate=r.expected_false_alarm_rate,
                            calibration_exceedance=r.extra.get("calibration_exceedance")))
        except InputFaultError as exc:
            faults += 1
            mm = bundle.model(machine)[1]
            rows.append(row(f, machine, "input_fault", threshold=mm.threshold_value, fault=exc.fault.code,
                            reason=exc.fault.reason))
        except AuscultError as exc:
            failed += 1
            rows.append(row(f, machine, "error", error=str(exc)))
    if output == "json":
        typer.echo(json.dumps(rows, indent=1))
    elif output == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["file"], lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    else:
        width = max([len(r["file"]) for r in rows] + [4])
        typer.echo(f"{'file':<{width}}  {'machine':<12} {'score':>12} {'decision':>9} {'threshold':>12} {'exp.FA':>7}")
        for r in rows:
            if r["status"] == "error":
                typer.echo(f"{r['file']:<{width}}  error: {r['error']}")
                continue
            if r["status"] == "input_fault":
                typer.echo(f"{r['file']:<{width}}  {r['machine']:<12} INPUT FAULT ({r['fault']}): {r['reason']}")
                continue
            typer.echo(f"{r['file']:<{width}}  {r['machine']:<12} {r['score']:>12.6g} "
                       f"{'ANOMALY' if r['decision'] else 'normal':>9} {r['threshold']:>12.6g} "
                       f"{r['expected_false_alarm_rate']:>7.3g}")
    if resampled:
        _err(f"warning: {resampled} file(s) recorded at a higher rate were resampled to the model's "
             f"{bundle.sample_rate} Hz")
    if faults:
        _err(f"{faults} of {len(files)} file(s) are input faults (not machine sound; not scored)")
    if failed:
        _err(f"{failed} of {len(files)} file(s) could not be scored")
    return 1 if failed else 3 if faults else 0


# ------------------------------------------------------------------------------------------------
# explain
# ------------------------------------------------------------------------------------------------
def explain_cmd(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="The .auscult model bundle."),
    file: Path = typer.Argument(..., help="The audio file to explain."),
    out: Path = typer.Option(..., "--out", "-o", help="Figure to write: .png, .svg, .pdf or .jpg (the folder "
                                                      "must exist)."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Machine id, when the bundle holds several."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the curve and map as JSON."),
    start: float = typer.Option(0.0, "--start", help="Explain from this second of the file."),
    end: Optional[float] = typer.Option(None, "--end", help="... to this second (default: the end)."),
) -> None:
    """Draw where in time and frequency a recording is anomalous (curve + heat map)."""
    import warnings

    import numpy as np

    from .bundle import load_bundle
    from .explain import explanation_to_dict, plot_explanation

    _check_out(out, "--out", EXPLAIN_FORMATS)
    if json_path is not None:
        _check_out(json_path, "--json")
    bundle = load_bundle(bundle_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # its own rate (the input-quality check sees a missing band); channels as the machine reads them
        x, sr = bundle.decode_file(file, machine)
        a = int(round(max(0.0, start) * sr))
        b = x.size if end is None else min(x.size, int(round(end * sr)))
        if b <= a:
            raise ConfigError(f"{file}: --start {start:g} / --end {end} select no audio (the file is "
                              f"{x.size / sr:.2f} s long)")
        expl = bundle.explain_waveform(x[a:b], sr, machine=machine)
    if a:
        expl.times = np.asarray(expl.times) + a / sr  # times in the file's own timeline
        expl.peak_time_s = float(expl.peak_time_s) + a / sr
    plot_explanation(expl, out, title=f"{file.name} ({expl.machine})")
    if json_path is not None:
        json_path.write_text(json.dumps(explanation_to_dict(expl)), encoding="utf-8")
    typer.echo(f"{file}: score {expl.score:.6g} ({'ANOMALY' if expl.decision else 'normal'}, threshold "
               f"{expl.threshold:.6g}); most anomalous frame at {expl.peak_time_s:.2f} s, band around "
               f"{expl.peak_band_hz:.0f} Hz -> {out}")


# ------------------------------------------------------------------------------------------------
# watch
# ------------------------------------------------------------------------------------------------
def watch_cmd(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="The .auscult model bundle."),
    input: str = typer.Option(..., "--input", "-i", help="Audio file, folder of files, '-' for raw PCM on stdin, or "
                                                         "'mic' / 'mic:DEVICE' (needs the 'mic' extra)."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Machine id, when the bundle holds several."),
    window: Optional[float] = typer.Option(None, "--window", help="Window seconds (default: the bundle's)."),
    hop: Optional[float] = typer.Option(None, "--hop", help="Hop seconds (default: the bundle's)."),
    k: int = typer.Option(DEFAULT_K, "--k", help="Alert when at least k ..."),
    n: int = typer.Option(DEFAULT_N, "--n", help="... of the last n windows are anomalous."),
    fmt: str = typer.Option("s16le", "--format", help="stdin PCM: s16le | s32le | f32le."),
    rate: int = typer.Option(16000, "--rate", help="stdin PCM sample rate."),
    channels: int = typer.Option(1, "--channels", help="stdin PCM interleaved channels (read with the model's channel policy: near/far mic of a 2-channel input, or their mean)."),
    chunk: float = typer.Option(0.5, "--chunk", help="Seconds read at a time (smallest detected gap)."),
    gap_timeout: Optional[float] = typer.Option(None, "--gap-timeout", help="stdin: report a gap after this many "
                                                                            "seconds without data."),
    realtime: bool = typer.Option(False, "--realtime", help="Pace file input at real time."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds of audio."),
    alerts_only: bool = typer.Option(False, "--alerts-only", help="Print alert/gap/bad-chunk/end events only."),
) -> None:
    """Score a long recording, a folder or a live PCM stream window by window; JSON lines out.

    Exit code 1 when nothing could be scored (every input skipped, unreadable or too short)."""
    from .bundle import load_bundle
    from .stream import WatchConfig, watch

    cfg = WatchConfig(window_s=window, hop_s=hop, k=k, n=n, format=fmt, rate=rate, channels=channels, chunk_s=chunk,
                      gap_timeout_s=gap_timeout, realtime=realtime, duration_s=duration)
    bundle = load_bundle(bundle_path)
    out = sys.stdout
    events = watch(bundle, input, machine=machine, config=cfg)
    end: Optional[dict] = None
    try:  # warnings (e.g. stdin resampled) go to stderr as one line each; events are stdout's alone
        for ev in events:
            if ev["type"] == "end":
                end = ev
            if alerts_only and ev["type"] == "window":
                continue
            out.write(json.dumps(ev) + "\n")
            out.flush()
    except KeyboardInterrupt:  # Ctrl-C on a live stream: close the input, still print the summary
        events.close()
        _err("interrupted")
    except BrokenPipeError:  # the reader went away (e.g. | head): stop quietly
        return
    if end is not None and not end.get("interrupted") and end["windows"] == 0:
        problems = [f"{end[k]} {k.replace('_', ' ')}" for k in ("skipped", "errors", "gaps", "bad_chunks") if end[k]]
        _err(f"nothing could be scored ({', '.join(problems) or 'no audio'}; the events above say why)")
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------------
def export_cmd(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="The .auscult model bundle."),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write (.json/.npz sidecars beside it)."),
    machine: Optional[str] = typer.Option(None, "--machine", help="Machine id, when the bundle holds several."),
    check: Optional[List[Path]] = typer.Option(None, "--check", help="Audio file(s) to compare torch and "
                                                                     "onnxruntime scores on (default: synthetic clips)."),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="Fail when the relative score difference exceeds it."),
) -> None:
    """Export a machine's scoring module (front-end + network + score) to one ONNX graph, back-end state
    beside it, and check it against the bundle (methods that declare 'export')."""
    import warnings

    from .bundle import load_bundle
    from .export import export_onnx

    _check_out(onnx, "--onnx")
    bundle = load_bundle(bundle_path)
    waves = None
    if check:
        name = bundle.model(machine)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # a multi-channel file as the machine reads it (its channel policy), at the bundle's rate
            waves = [bundle.decode_file(p, name, sample_rate=bundle.sample_rate)[0] for p in check]
    res = export_onnx(bundle, onnx, machine=machine, check_waves=waves)
    typer.echo(f"wrote {res.onnx} (+ {Path(res.sidecar_json).name}, {Path(res.sidecar_npz).name}) for "
               f"{res.machine} ({res.method}, output {res.output})")
    typer.echo(f"torch vs onnxruntime on {res.checked_clips} clip(s): max abs diff {res.max_abs_diff:.3g}, "
               f"max rel diff {res.max_rel_diff:.3g}")
    if res.max_rel_diff is not None and res.max_rel_diff > tolerance:
        _err(f"the exported graph differs from the bundle by more than {tolerance:g} (relative)")
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------
# bundle: a research run as a bundle
# ------------------------------------------------------------------------------------------------
def bundle_cmd(
    run: Path = typer.Argument(..., help="A trained run directory (auscult run / train)."),
    out: Path = typer.Option(..., "--out", "-o", help="The model bundle to write (e.g. fan.auscult)."),
    calibrate_explain: int = typer.Option(32, "--calibrate-explain", help="Clips used to calibrate explanations "
                                                                          "(methods that explain; 0: none)."),
) -> None:
    """Turn a research run into a model bundle: every (machine, section) of the run becomes a machine
    '<machine>.section_<SS>' that score, watch, serve, explain and export take."""
    from .bundle import bundle_from_run

    b = bundle_from_run(run, out, calibrate_explain=calibrate_explain, log=_err)
    typer.echo(f"wrote {out}: {len(b.machine_ids)} machine(s) {', '.join(b.machine_ids)} "
               f"({b.info.get('method')}, window {b.window_s:g} s)")


def register(app: typer.Typer) -> None:
    """Add ``fit``, ``bundle``, ``explain``, ``watch`` and ``export`` to the root app (``score`` lives in
    :mod:`auscult.pipeline.cli`)."""
    app.command("fit")(fit_cmd)
    app.command("bundle")(bundle_cmd)
    app.command("explain")(explain_cmd)
    app.command("watch")(watch_cmd)
    app.command("export")(export_cmd)
