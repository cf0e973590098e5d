"""A run that fails before training leaves no half-made run folder behind; one that fails later is kept,
and a new attempt on it says how to go on."""

from __future__ import annotations

import json

import pytest

from auscult.errors import AuscultError, ConfigError

FAST = ["train.epochs=1", "train.batch_size=256", "data.machines=[fan]"]


def test_failure_before_training_leaves_no_run_folder(tmp_path, tiny_synth, wave_cache):
    from auscult import pipeline

    out = tmp_path / "r"
    with pytest.raises(AuscultError, match="not found"):
        pipeline.train("synthetic/autoencoder", tmp_path / "missing-data", out, overrides=FAST, device="cpu",
                       quiet=True, cache_dir=wave_cache)
    assert not out.exists()
    # an unknown machine: refused after the data scan, still before any training
    with pytest.raises(AuscultError):
        pipeline.train("synthetic/autoencoder", tiny_synth, out, overrides=FAST[:2] + ["data.machines=[pump]"],
                       device="cpu", quiet=True, cache_dir=wave_cache)
    assert not out.exists()
    # the next attempt with the same --out just works (no "a run already exists here")
    rd = pipeline.train("synthetic/autoencoder", tiny_synth, out, overrides=FAST, device="cpu", quiet=True,
                        cache_dir=wave_cache)
    assert json.loads((rd / "run.json").read_text())["stage"] == "trained"


def test_a_folder_the_user_made_keeps_its_own_files(tmp_path, wave_cache):
    from auscult import pipeline

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(AuscultError):
        pipeline.train("synthetic/autoencoder", tmp_path / "missing-data", out, overrides=FAST, device="cpu",
                       quiet=True, cache_dir=wave_cache)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only what the run had made is gone


def test_failure_during_training_keeps_the_run_and_the_next_attempt_says_what_to_do(tmp_path, tiny_synth,
                                                                                   wave_cache, monkeypatch):
    from auscult import pipeline
    from auscult.engine import trainer as trainer_mod

    class Boom(RuntimeError):
        pass

    def dying_step(self, batch):
        raise Boom()

    out = tmp_path / "r"
    monkeypatch.setattr(trainer_mod.Trainer, "train_step", dying_step)
    with pytest.raises(Boom):
        pipeline.train("synthetic/autoencoder", tiny_synth, out, overrides=FAST, device="cpu", quiet=True,
                       cache_dir=wave_cache)
    monkeypatch.undo()
    assert (out / "run.json").is_file()  # training had started: kept, so --resume can continue it
    with pytest.raises(ConfigError) as ei:
        pipeline.train("synthetic/autoencoder", tiny_synth, out, overrides=FAST, device="cpu", quiet=True,
                       cache_dir=wave_cache)
    msg = str(ei.value)
    assert "--resume" in msg and "remove" in msg and "training" in msg, msg
