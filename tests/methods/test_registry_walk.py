"""The METHODS registry walk: every registered method goes through both doors, on tiny synthetic data.

Research door: ``recipes/synthetic/<name>.yaml`` (one short epoch, small nets through ``--set``) ->
``run`` -> reload from the run folder -> identical scores -> ``bundle`` -> identical scores through
``Bundle.score_file`` and through the HTTP service -> ``export`` (where declared) with onnxruntime
scores matching to 1e-5 relative -> ``explain`` (where declared) returns a map of the right shape.

Engineer's door: ``auscult fit FOLDER --method NAME`` on a small folder of two machines, then the
bundle scores; the classification methods say what they do with a single class.

``METHODS.names()`` is walked, so a method registered later is tested the day it is added (it needs
a ``recipes/synthetic/<name>.yaml`` and, if its defaults are slow, an entry in ``FAST``).
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from auscult.methods import METHODS

#: per method: --set overrides that make one run cheap (one short epoch, small nets and queues)
FAST: dict[str, list[str]] = {
    "autoencoder": ["train.epochs=1", "train.batch_size=256"],
    "autoencoder_mc": ["train.epochs=1", "train.batch_size=256"],
    "logmel_knn": [],
    "bandstats": [],
    "encoder_knn": [],
    "encoder_ft": ["encoder_ft.epochs=1"],
    "clsia": ["train.epochs=1", "train.batch_size=8", "net.emb_dim=32", "clsia.queue_size=32",
              "augment.logmixupexp.bank_size=32", "audio.duration=2.0"],
    "osscl": ["train.epochs=1", "train.batch_size=8", "net.emb_dim=32", "audio.duration=2.0", "data.holdout=0.1"],
    "protoasd": ["train.epochs=1", "train.batch_size=8", "net.emb_dim=32", "protoasd.finetune.epochs=1",
                 "protoasd.finetune.n_per_class=2", "protoasd.crop_frames=32", "protoasd.crop_hop=32",
                 "audio.duration=2.0"],
    "ssl4asd": ["train.epochs=1", "train.batch_size=8", "backend.n_clusters=2", "backend.n_init=1"],
}
#: relative tolerance between onnxruntime and the bundle (torch) scores: |onnx - torch| <= 1e-5 x
#: max(|score|, threshold) -- relative to the score, or to the decision threshold for scores far below it
#: (OS-SCL's cross-entropy of a clearly normal clip is ~0.3 while float32 arithmetic moves it by ~1e-5:
#: its logits are 30 x a cosine)
EXPORT_RTOL = 1e-5
#: a clip scored alone vs in the run's batches: float32 kernels round differently per batch size, and
#: ProtoASD's Mahalanobis distance amplifies that (measured up to 2.7e-5 of its score); relative to
#: max(|score|, threshold) as EXPORT_RTOL. Scored in the run's batches, the bundle is bitwise the run.
SINGLE_RTOL = 1e-4
TOKEN = "walk-token-0123456789abcdef"


@pytest.fixture(scope="session")
def walk_data(synth_once):
    """fan + valve, section 00, 2 s clips: 20 training and 16 test clips per machine (labels in the names)."""
    from auscult.data.synth import generate_dataset

    return synth_once("walk_demo", lambda out: generate_dataset("demo", out, seed=0, machines=["fan", "valve"],
                                                                scale=0.4, duration=2.0, workers=1, probe=False))


def _test_scores(run: Path) -> dict[str, tuple[str, str, float, str]]:
    with open(run / "scores" / "test_scores.csv", newline="") as f:
        return {r["path"]: (r["machine"], r["section"], float(r["score"]), r["path"]) for r in csv.DictReader(f)}


def _close(a: float, b: float, threshold: float, rtol: float) -> bool:
    """``|a - b| <= rtol * max(|b|, |threshold|)``: relative to the score, or to the decision threshold
    for a score far below it (where float32 rounding is large relative to the score itself)."""
    return abs(a - b) <= rtol * max(abs(b), abs(threshold))


def _fast(name: str) -> list[str]:
    if name not in FAST:
        pytest.fail(f"method {name!r} is registered but the walk has no FAST settings for it: add them (and "
                    f"recipes/synthetic/{name}.yaml)")
    return FAST[name]


#: methods whose recipe trains a 2-D convolution net and scores with an inference copy (batch norm
#: folded, channels-last: the CPU fast path)
CONV_NET_METHODS = {"clsia", "osscl", "protoasd", "ssl4asd"}


def _spy_fast_paths(monkeypatch) -> dict[str, list]:
    """Record what the trainer's layout switch (:func:`auscult.engine.fastpath.to_training_layout`) and
    :func:`auscult.nets.inference.inference_copy` did during a run."""
    from torch import nn

    import auscult.engine.trainer as trainer_mod
    import auscult.nets.inference as inference_mod

    seen: dict[str, list] = {"layout": [], "copies": []}
    layout, copy = trainer_mod.to_training_layout, inference_mod.inference_copy

    def spy_layout(model, *args, **kwargs):
        converted = layout(model, *args, **kwargs)
        seen["layout"].append((any(isinstance(m, nn.Conv2d) for m in model.modules()), converted))
        return converted

    def spy_copy(*args, **kwargs):
        seen["copies"].append(type(args[0]).__name__)
        return copy(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "to_training_layout", spy_layout)
    monkeypatch.setattr(inference_mod, "inference_copy", spy_copy)
    return seen


@pytest.mark.parametrize("name", METHODS.names())
def test_method_walks_both_doors_from_a_run(name, walk_data, tmp_path, one_thread, monkeypatch):
    from auscult import pipeline
    from auscult.monitor.bundle import bundle_from_run, load_bundle
    from auscult.pipeline.recipe import find_recipe

    assert find_recipe(f"synthetic/{name}").is_file(), f"recipes/synthetic/{name}.yaml is missing"
    cache = tmp_path / "cache"
    fast = _spy_fast_paths(monkeypatch)
    rd, _ = pipeline.run(f"synthetic/{name}", walk_data, tmp_path / "run", overrides=_fast(name), device="cpu",
                         quiet=True, cache_dir=cache)
    # the recipe runs on the CPU fast paths by default: every conv net scored through an inference
    # copy (issue 18); trained in the default layout (channels-last training is opt-in)
    assert not any(converted for _, converted in fast["layout"]), (name, fast)
    if name in CONV_NET_METHODS:
        assert any(has_conv for has_conv, _ in fast["layout"]) and fast["copies"], (name, fast)
    first = _test_scores(rd)
    assert first and all(np.isfinite(v[2]) for v in first.values())
    # reload every group from the run folder (plain data, no pickle) and score again: identical
    pipeline.score(rd, walk_data, device="cpu", cache_dir=cache)
    assert _test_scores(rd) == first

    # the run as a bundle: each (machine, section) a machine, scores identical to the run's
    out = tmp_path / f"{name}.auscult"
    bundle_from_run(rd, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = load_bundle(out)
    assert sorted(bundle.machine_ids) == ["fan.section_00", "valve.section_00"]
    from auscult.audio import AudioConfig, decode_audio

    for machine in ("fan", "valve"):  # all test clips of a machine in the run's order: bitwise the run's scores
        rows = [v for v in first.values() if v[0] == machine]
        waves = [decode_audio(p, AudioConfig(sample_rate=bundle.sample_rate)) for _, _, _, p in rows]
        got = bundle.models[f"{machine}.section_00"].score_waves(waves)
        assert got.tolist() == [v[2] for v in rows], machine
    # one file at a time (batches of one: float32 kernels may round differently than in the run's batches)
    picks = sorted(first.values())[::7][:4]  # a few test clips of both machines
    for machine, section, score, path in picks:
        r = bundle.score_file(path, machine=f"{machine}.section_{section}")
        assert _close(r.score, score, r.threshold, SINGLE_RTOL), (path, r.score, score, r.threshold)

    # `auscult score BUNDLE FILE` and the same bundle behind the HTTP service: the same scores
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from auscult.cli import app as cli_app
    from auscult.monitor.service import ServiceConfig, create_app

    machine, section, _, path = picks[0]
    res = CliRunner().invoke(cli_app, ["score", str(out), path, "--machine", f"{machine}.section_{section}", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["score"] == bundle.score_file(path, machine=f"{machine}.section_{section}").score

    app = create_app(ServiceConfig(bundles=[bundle], token=TOKEN, state_dir=tmp_path / "svc", torch_threads=None))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        for machine, section, score, path in picks[:2]:
            res = client.post(f"/v1/machines/{machine}.section_{section}/score", content=Path(path).read_bytes(),
                              headers={"Content-Type": "audio/wav"})
            assert res.status_code == 200, res.text
            assert _close(res.json()["score"], score, res.json()["threshold"], SINGLE_RTOL)
            assert res.json()["score"] == bundle.score_file(path, machine=f"{machine}.section_{section}").score

    method = bundle.models["fan.section_00"].method
    assert method.name == name
    # watch: a stream of one window's length gives one window, scored as the bundle scores it
    from auscult.monitor.stream import StreamScorer

    wave = np.resize(decode_audio(picks[0][3], AudioConfig(sample_rate=bundle.sample_rate)), bundle.window_samples)
    mid = f"{picks[0][0]}.section_{picks[0][1]}"
    windows = [e for e in StreamScorer(bundle, mid).push(wave) if e["type"] == "window"]
    assert len(windows) == 1 and windows[0]["score"] == bundle.models[mid].score_waves([wave])[0]
    waves = [decode_audio(p, AudioConfig(sample_rate=bundle.sample_rate)) for _, _, _, p in picks
             if "/fan/" in p][:2]
    if method.supports("export"):
        pytest.importorskip("onnxruntime")
        from auscult.monitor.export import OnnxScorer, export_onnx

        res = export_onnx(bundle, tmp_path / "m.onnx", machine="fan.section_00", check_waves=waves)
        ref, got = np.asarray(res.torch_scores), np.asarray(res.onnx_scores)
        thr = bundle.models["fan.section_00"].threshold_value
        assert res.checked_clips == len(waves) == len(got)
        assert all(_close(g, r, thr, EXPORT_RTOL) for g, r in zip(got, ref)), (name, ref, got, thr)
        # the files alone (a fresh scorer) give the bundle's score of a clip
        fresh = OnnxScorer(res.onnx).score(np.stack([waves[0]]))[0]
        direct = bundle.score_waveform(waves[0], bundle.sample_rate, machine="fan.section_00").score
        assert _close(fresh, direct, thr, EXPORT_RTOL)
    else:
        from auscult.errors import CapabilityError
        from auscult.monitor.export import export_onnx

        with pytest.raises(CapabilityError, match="export"):
            export_onnx(bundle, tmp_path / "m.onnx", machine="fan.section_00")
    if method.supports("explain"):
        e = bundle.explain_waveform(waves[0], bundle.sample_rate, machine="fan.section_00")
        assert e.tf_map.shape == (len(e.freqs), len(e.times)) == e.spectrogram.shape
        assert e.frame_scores.shape == e.times.shape and np.isfinite(e.tf_map).all()
    else:
        from auscult.errors import CapabilityError

        with pytest.raises(CapabilityError, match="explain"):
            bundle.explain_waveform(waves[0], bundle.sample_rate, machine="fan.section_00")


# ---------------------------------------------------------------------------------------------------
# auscult fit FOLDER --method NAME
# ---------------------------------------------------------------------------------------------------
#: per method: window seconds and --set overrides for the fit door (SSL4ASD's spectrum branch needs
#: windows of at least ~4.4 s)
FIT_WINDOW = {"ssl4asd": 4.5}
FIT_FAST: dict[str, list[str]] = {
    "clsia": ["net.emb_dim=32", "clsia.queue_size=32", "train.batch_size=8", "augment.logmixupexp.bank_size=32"],
    "osscl": ["net.emb_dim=32", "train.batch_size=8"],
    "protoasd": ["net.emb_dim=32", "train.batch_size=8", "protoasd.crop_frames=16", "protoasd.crop_hop=16",
                 "protoasd.finetune.epochs=1", "protoasd.finetune.n_per_class=2"],
    "ssl4asd": ["train.batch_size=8", "backend.n_clusters=2", "backend.n_init=1"],
}


@pytest.fixture(scope="session")
def plant(tmp_path_factory):
    """Two simulated fan units as two machine folders: 12 recordings of 9 s each."""
    import soundfile as sf

    from auscult.data.synth import render_clip
    from auscult.data.synth.render import unit_for

    root = tmp_path_factory.mktemp("plant")
    for m, (section, seed) in {"fan-1": ("00", 500), "fan-2": ("01", 600)}.items():
        (root / m).mkdir()
        for i in range(12):
            x = render_clip("fan", unit=unit_for("fan", section, 0), seed=seed + i, duration=9.0)
            sf.write(str(root / m / f"r{i:02d}.wav"), x, 16000)
    return root


@pytest.mark.parametrize("name", METHODS.names())
def test_fit_command_takes_every_method(name, plant, tmp_path, one_thread):
    from typer.testing import CliRunner

    from auscult.cli import app
    from auscult.monitor.bundle import load_bundle

    out = tmp_path / "m.auscult"
    window = FIT_WINDOW.get(name, 1.5)
    args = ["fit", str(plant), "--out", str(out), "--method", name, "--window", str(window), "--json"]
    if name not in ("logmel_knn",):
        args += ["--epochs", "1"]
    for s in FIT_FAST.get(name, []):
        args += ["--set", s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    rep = json.loads(res.output[res.output.index("{"):])
    assert sorted(rep["machines"]) == ["fan-1", "fan-2"]
    assert {r["method"] for r in rep["machines"].values()} == {name}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = load_bundle(out)
    from auscult.audio import AudioConfig, decode_audio

    x = decode_audio(plant / "fan-2" / "r11.wav", AudioConfig(sample_rate=16000))
    r1, r2 = bundle.score_waveform(x, 16000, machine="fan-1"), bundle.score_waveform(x, 16000, machine="fan-2")
    assert np.isfinite([r1.score, r2.score]).all() and r1.threshold != r2.threshold
    cls = METHODS.get(name).factory
    if cls.classes is not None:  # one model over both machines (they are its classes)
        assert bundle.models["fan-1"].method is bundle.models["fan-2"].method
        assert rep["machines"]["fan-1"]["units_in_model"] == ["fan-1", "fan-2"]


@pytest.mark.parametrize("name", [n for n in METHODS.names() if METHODS.get(n).factory.classes is not None])
def test_fit_with_a_single_class_refuses_or_says_what_it_does(name, plant, tmp_path, one_thread):
    from auscult.errors import DataError
    from auscult.monitor.fit import FitConfig, fit_bundle

    cls = METHODS.get(name).factory
    cfg = FitConfig(method=name, window_s=FIT_WINDOW.get(name, 1.5), epochs=1, overrides=FIT_FAST.get(name, []))
    if cls.one_class == "refuse":
        with pytest.raises(DataError, match=r"single one.*--method auto \| autoencoder"):
            fit_bundle(plant / "fan-1", None, cfg)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, rep = fit_bundle(plant / "fan-1", None, cfg)
    assert rep.machines["fan-1"]["one_class"].startswith(f"one class (fan-1): {name} ")
    assert cls.one_class in rep.machines["fan-1"]["one_class"]
