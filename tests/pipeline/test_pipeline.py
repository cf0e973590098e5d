"""End to end: `auscult run` on a tiny synthetic set, leakage, resume of a killed run."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auscult.cli import app
from auscult.fileio import load_tree

EPOCHS = 2
FAST = [f"train.epochs={EPOCHS}", "train.batch_size=256"]


def _read_two_col(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {r[0]: r[1] for r in csv.reader(f)}


def _test_scores(run: Path) -> dict[str, float]:
    with open(run / "scores" / "test_scores.csv", newline="") as f:
        return {f"{r['machine']}/{r['name']}": float(r["score"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def cli_run(tiny_synth, wave_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ae"
    env = {"AUSCULT_CACHE": str(wave_cache), "AUSCULT_QUIET": "1"}
    res = CliRunner().invoke(app, ["run", "synthetic/autoencoder", "--data", str(tiny_synth), "--out", str(out),
                                   "--device", "cpu", "--quiet", *sum((["--set", s] for s in FAST), [])], env=env)
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


def test_cli_run_writes_official_files_and_report(cli_run, tiny_synth):
    from auscult.data.index import DatasetIndex

    run = cli_run
    idx = DatasetIndex.scan(tiny_synth)
    for machine in ("fan", "valve"):
        tests = {c.name: c for c in idx.select(machine=machine, split="test")}
        scores = _read_two_col(run / "submission" / f"anomaly_score_{machine}_section_00_test.csv")
        decisions = _read_two_col(run / "submission" / f"decision_result_{machine}_section_00_test.csv")
        assert set(scores) == set(tests) == set(decisions)
        assert all(np.isfinite(float(v)) for v in scores.values())
        assert set(decisions.values()) <= {"0", "1"}
        # decisions follow the threshold fitted on training normals
        thr = json.loads((run / "thresholds.json").read_text())[f"{machine}/00"]
        assert thr["method"] == "gamma" and thr["params"]["quantile"] == 0.9
        assert thr["n_scores"] == len(idx.select(machine=machine, split="train"))
        for name, v in scores.items():
            assert int(decisions[name]) == int(float(v) > thr["value"])
        # ground truth written from the dev names, in the official layout
        gt = _read_two_col(run / "ground_truth" / "ground_truth_data" / f"ground_truth_{machine}_section_00_test.csv")
        assert {n: ("anomaly" if v == "1" else "normal") for n, v in gt.items()} == {n: c.label for n, c in tests.items()}
        assert (run / "models" / machine / "model.npz").is_file()
        assert (run / "models" / machine / "checkpoints" / "best.pt").is_file()
        metrics = [json.loads(x) for x in (run / "models" / machine / "metrics.jsonl").read_text().splitlines()]
        assert sum(1 for m in metrics if m["kind"] == "epoch") == EPOCHS
        assert all("val_loss" in m for m in metrics if m["kind"] == "epoch")  # held-out training normals
    meta = json.loads((run / "run.json").read_text())
    assert meta["seed"] == 0 and "torch" in meta["versions"] and meta["stage"] == "evaluated"
    assert meta["groups_done"] == ["fan", "valve"]
    cfg = (run / "config.yaml").read_text()
    assert f"epochs: {EPOCHS}" in cfg and "model_per: machine" in cfg
    html = (run / "report.html").read_text()
    assert "<html" in html and "fan" in html and "valve" in html and "data:image/png;base64" in html
    # provenance: recipe (resolved), seed, version, commit, data root, date
    from auscult import __version__

    assert "Provenance" in html and "synthetic/autoencoder" in html and f"epochs: {EPOCHS}" in html
    assert "seed</th><td>0</td>" in html and str(tiny_synth.resolve()) in html and f"auscult {__version__}" in html
    assert meta["git_commit"] in html and meta["created"] in html
    result = json.loads((run / "report" / "result.json").read_text())
    assert 0.0 <= result["official_score"] <= 1.0
    assert {r["machine"] for r in result["machines"]} == {"fan", "valve"}
    assert (run / "report" / "sections.csv").is_file()
    assert (run / "logs" / "train.log").read_text().count("trained ") == 2


def test_cli_evaluate_run_and_rescore(cli_run, tiny_synth, wave_cache):
    env = {"AUSCULT_CACHE": str(wave_cache), "AUSCULT_QUIET": "1"}
    before = _test_scores(cli_run)
    res = CliRunner().invoke(app, ["score", str(cli_run), "--data", str(tiny_synth), "--device", "cpu"], env=env)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert _test_scores(cli_run) == before  # a reloaded model scores exactly as the trained one
    (cli_run / "report.html").unlink()
    res = CliRunner().invoke(app, ["evaluate", str(cli_run), "--json"], env=env)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])["year"] == 2023
    assert (cli_run / "report.html").is_file()


def test_evaluate_without_labels_asks_for_ground_truth(tmp_path):
    from auscult.errors import ConfigError
    from auscult.pipeline import resolve_run

    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "anomaly_score_fan_section_00_test.csv").write_text("a.wav,1.0\n")
    (tmp_path / "run.json").write_text(json.dumps({"stage": "scored", "year": 2023, "ground_truth": None}))
    with pytest.raises(ConfigError, match="--ground-truth"):
        resolve_run(tmp_path)
    assert resolve_run(tmp_path, tmp_path / "gt")[1] == tmp_path / "gt"


def _poisoned_copy(src: Path, dst: Path) -> dict[str, str]:
    """Copy of ``src`` whose *test* files have their labels swapped in the names (normal <-> anomaly).
    Returns {new name: original name}."""
    mapping = {}
    for p in sorted(src.rglob("*.wav")):
        rel = p.relative_to(src)
        name = p.name
        if "/test/" in f"/{rel.as_posix()}":
            name = name.replace("_normal_", "_@_").replace("_anomaly_", "_normal_").replace("_@_", "_anomaly_")
            mapping[name] = p.name
        q = dst / rel.parent / name
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, q)
    for p in src.rglob("attributes_*.csv"):
        q = dst / p.relative_to(src)
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, q)
    return mapping


def test_no_test_label_leakage(tiny_synth, wave_cache, tmp_path):
    """Poisoned test labels must not change a single training decision: same models, same
    thresholds, bit-identical test scores. A pipeline that trained, selected models or fitted
    thresholds on (labelled) test clips would fail this."""
    from auscult import pipeline

    poisoned = tmp_path / "poisoned"
    mapping = _poisoned_copy(tiny_synth, poisoned)
    assert any("_anomaly_" in k and "_normal_" in v for k, v in mapping.items())
    over = FAST + ["data.machines=[fan]"]
    runs = []
    for data, name in ((tiny_synth, "clean"), (poisoned, "poisoned")):
        rd = pipeline.train("synthetic/autoencoder", data, tmp_path / name, overrides=over, device="cpu",
                            quiet=True, cache_dir=wave_cache)
        pipeline.score(rd, data, device="cpu", cache_dir=wave_cache)
        runs.append(rd)
    clean, dirty = (_test_scores(r) for r in runs)
    assert len(clean) == len(dirty) == len(mapping) // 2
    assert {mapping[k.split("/", 1)[1]]: v for k, v in dirty.items()} == {k.split("/", 1)[1]: v for k, v in clean.items()}
    t_clean, t_dirty = (json.loads((r / "thresholds.json").read_text()) for r in runs)
    assert t_clean == t_dirty
    # only the evaluation reads the (poisoned) labels, so only the evaluation differs
    r_clean, r_dirty = pipeline.evaluate(runs[0]), pipeline.evaluate(runs[1])
    assert r_clean.official_score != r_dirty.official_score


def test_killed_run_resumes_to_the_same_end(tiny_synth, wave_cache, tmp_path, monkeypatch):
    """Interrupt training inside the second group's second epoch, resume through the pipeline, and
    compare with an uninterrupted run: identical weights, thresholds and test scores."""
    import torch

    from auscult import pipeline
    from auscult.engine import trainer as trainer_mod

    over = ["train.epochs=3", "train.batch_size=256", "train.checkpoint_every_steps=2"]
    full = pipeline.train("synthetic/autoencoder", tiny_synth, tmp_path / "full", overrides=over, device="cpu",
                          quiet=True, cache_dir=wave_cache)
    steps_per_group = sum(1 for line in (full / "models" / "fan" / "metrics.jsonl").read_text().splitlines()
                          if json.loads(line)["kind"] == "epoch")  # = epochs
    assert steps_per_group == 3

    class Killed(BaseException):
        pass

    real_step = trainer_mod.Trainer.train_step
    calls = {"n": 0}
    fan_steps = json.loads((full / "models" / "fan" / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    valve_steps = json.loads((full / "models" / "valve" / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    kill_at = fan_steps + valve_steps // 3 + 2  # inside valve's 2nd epoch, after a step checkpoint

    def dying_step(self, batch):
        calls["n"] += 1
        if calls["n"] > kill_at:
            raise Killed()
        return real_step(self, batch)

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", dying_step)
    with pytest.raises(Killed):
        pipeline.train("synthetic/autoencoder", tiny_synth, tmp_path / "killed", overrides=over, device="cpu",
                       quiet=True, cache_dir=wave_cache)
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", real_step)
    killed = tmp_path / "killed"
    meta = json.loads((killed / "run.json").read_text())
    assert meta["groups_done"] == ["fan"] and meta["stage"] == "training"
    assert (killed / "models" / "valve" / "checkpoints" / "last.pt").is_file()
    assert not (killed / "models" / "valve" / "model.npz").exists()
    with pytest.raises(Exception, match="training has not finished"):
        pipeline.score(killed, tiny_synth, device="cpu", cache_dir=wave_cache)
    # a different recipe cannot resume this run
    with pytest.raises(Exception, match="differs"):
        pipeline.train("synthetic/autoencoder", tiny_synth, killed, overrides=over + ["seed=1"], device="cpu",
                       quiet=True, cache_dir=wave_cache, resume=True)
    # resumed through the command line, which says where it picked up
    res = CliRunner().invoke(app, ["train", "synthetic/autoencoder", "--data", str(tiny_synth), "--out", str(killed),
                                   "--device", "cpu", "--quiet", "--resume", *sum((["--set", s] for s in over), [])],
                             env={"AUSCULT_CACHE": str(wave_cache), "AUSCULT_QUIET": "1"})
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "fan: already trained" in res.stderr
    resumed = [ln for ln in res.stderr.splitlines() if ln.startswith("resumed from epoch")]
    assert len(resumed) == 1 and resumed[0].startswith("resumed from epoch 2 of 3, step ") and \
        "models/valve/checkpoints/last.pt" in resumed[0], res.stderr
    for g in ("fan", "valve"):
        a = load_tree(full / "models" / g / "model.npz")[1]["state"]["net"]
        b = load_tree(killed / "models" / g / "model.npz")[1]["state"]["net"]
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (g, k)
    assert json.loads((full / "thresholds.json").read_text()) == json.loads((killed / "thresholds.json").read_text())
    assert (full / "scores" / "train_scores.csv").read_text().replace(str(full), "") == \
        (killed / "scores" / "train_scores.csv").read_text().replace(str(killed), "")
    for rd in (full, killed):
        pipeline.score(rd, tiny_synth, device="cpu", cache_dir=wave_cache)
    assert _test_scores(full) == _test_scores(killed)


def test_model_per_section_and_all_groups(tiny_synth, wave_cache, tmp_path):
    from auscult import pipeline
    from auscult.data.index import DatasetIndex

    clips = DatasetIndex.scan(tiny_synth).select(split="train")
    assert set(pipeline.group_clips(clips, "section")) == {"fan/section_00", "valve/section_00"}
    assert set(pipeline.group_clips(clips, "all")) == {"all"}
    rd = pipeline.train("synthetic/autoencoder", tiny_synth, tmp_path / "all",
                        overrides=["train.epochs=1", "model_per=all", "data.holdout=0"], device="cpu", quiet=True,
                        cache_dir=wave_cache)
    assert sorted(p.name for p in (rd / "models").iterdir()) == ["all"]
    thr = json.loads((rd / "thresholds.json").read_text())
    assert set(thr) == {"fan/00", "valve/00"}  # one threshold per section even with one model
    metrics = (rd / "models" / "all" / "metrics.jsonl").read_text()
    assert "val_loss" not in metrics  # data.holdout=0: no held-out slice, no validation


def test_score_refuses_untrained_machines(tiny_synth, wave_cache, tmp_path):
    from auscult import pipeline
    from auscult.errors import DataError

    rd = pipeline.train("synthetic/autoencoder", tiny_synth, tmp_path / "fan",
                        overrides=["train.epochs=1", "data.machines=[fan]"], device="cpu", quiet=True,
                        cache_dir=wave_cache)
    # the run recorded data.machines, so the same data scores fine ...
    pipeline.score(rd, tiny_synth, device="cpu", cache_dir=wave_cache)
    # ... but a run whose config lost that restriction cannot score valve
    cfg = (rd / "config.yaml").read_text().replace("machines:\n  - fan", "machines: null")
    (rd / "config.yaml").write_text(cfg)
    with pytest.raises(DataError, match="valve"):
        pipeline.score(rd, tiny_synth, device="cpu", cache_dir=wave_cache)


def test_list_and_errors_are_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0, res.output
    listing = json.loads(res.stdout)
    assert "autoencoder" in {m["name"] for m in listing["methods"]}
    assert "synthetic/autoencoder" in {r["name"] for r in listing["recipes"]}
    assert {"dcase2020/autoencoder", "dcase2021/autoencoder", "dcase2022/autoencoder",
            "dcase2023/autoencoder"} <= {r["name"] for r in listing["recipes"]}
    assert "selective_mahalanobis" in {b["name"] for b in listing["backends"]}
    assert "autoencoder" in {n["name"] for n in listing["nets"]}
    res = runner.invoke(app, ["train", "no/such", "--data", str(tmp_path)])
    assert res.exit_code != 0 and "unknown recipe" in str(res.exception)
    res = runner.invoke(app, ["score", str(tmp_path / "m.auscult")])
    assert res.exit_code != 0 and "audio files" in str(res.exception)


def test_demo_end_to_end_small(tmp_path, wave_cache):
    """`auscult demo` (here shrunk: one machine, a third of the clips, 2 epochs) ends with a report."""
    import io

    from rich.console import Console

    from auscult import api

    buf = io.StringIO()
    rd, result = api.demo(tmp_path / "demo", epochs=2, workers=1, machines=["fan"], scale=0.3,
                          console=Console(file=buf, width=120), cache_dir=wave_cache)
    text = buf.getvalue()
    assert (Path(rd) / "report.html").is_file() and str(Path(rd) / "report.html") in text
    assert "official score" in text and "fan" in text
    assert result.official_score is not None
    assert (tmp_path / "demo" / "data" / "dev_data" / "fan" / "train").is_dir()


def test_evaluation_names_need_and_use_ground_truth(tmp_path, wave_cache):
    """Anonymised eval-set names: scoring works without labels; evaluation asks for the official
    ground truth and then joins it by name."""
    from auscult import pipeline
    from auscult.data.synth import generate_dataset
    from auscult.errors import ConfigError

    data = generate_dataset("demo", tmp_path / "data", seed=1, machines=["fan"], scale=0.4, duration=2.0,
                            workers=1, probe=False, eval_names=True)
    rd, result = pipeline.run("synthetic/autoencoder", data, tmp_path / "run", overrides=["train.epochs=1"],
                              device="cpu", quiet=True, cache_dir=wave_cache)
    assert result is None and not (rd / "ground_truth").exists()
    names = _read_two_col(rd / "submission" / "anomaly_score_fan_section_00_test.csv")
    assert names and all(n.startswith("section_00_") for n in names)
    with pytest.raises(ConfigError, match="--ground-truth"):
        pipeline.evaluate(rd)
    res = CliRunner().invoke(app, ["evaluate", str(rd), "--ground-truth", str(data)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert json.loads((rd / "report" / "result.json").read_text())["official_score"] is not None
    assert (rd / "report.html").is_file()


def test_threshold_on_holdout_and_early_refusal(tiny_synth, wave_cache, tmp_path):
    from auscult import pipeline
    from auscult.errors import DataError

    # 10 % of 20 clips is too few held-out scores for a threshold: refused before any training
    with pytest.raises(DataError, match="threshold.on=train"):
        pipeline.train("synthetic/autoencoder", tiny_synth, tmp_path / "few", device="cpu", quiet=True,
                       overrides=["threshold.on=holdout", "data.machines=[fan]"], cache_dir=wave_cache)
    assert not list((tmp_path / "few").glob("models/*/checkpoints/*.pt"))
    rd = pipeline.train("synthetic/autoencoder", tiny_synth, tmp_path / "ok", device="cpu", quiet=True,
                        overrides=["threshold.on=holdout", "data.holdout=0.3", "data.machines=[fan]",
                                   "train.epochs=1", "threshold.method=percentile"], cache_dir=wave_cache)
    thr = json.loads((rd / "thresholds.json").read_text())["fan/00"]
    held = load_tree(rd / "models" / "fan" / "model.npz")[1]["val_clips"]
    assert thr["method"] == "percentile" and thr["fitted_on"] == "holdout" and thr["n_scores"] == len(held) >= 5
