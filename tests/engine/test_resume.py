"""Resume: a run interrupted during epoch 2 and resumed ends exactly where the uninterrupted run ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _engine_toy import Interrupt, StopAt, final_state, make

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (3 epochs x 6 steps)."""
    torch.set_num_threads(1)
    t = make(tmp_path_factory.mktemp("ref"), epochs=3, checkpoint_every_steps=4)
    hist = t.fit()
    return final_state(t), hist, t.run_dir


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"differs after resume: {diff}"


def test_uninterrupted_run_writes_checkpoints_and_metrics(reference):
    _, hist, rd = reference
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    assert (rd.checkpoints / "last.pt").exists() and (rd.checkpoints / "best.pt").exists()
    recs = rd.read_metrics()
    steps = [r["step"] for r in recs if r["kind"] == "step"]
    assert steps == list(range(1, 19))
    assert all("lr" in r and "loss" in r and "pull" in r for r in recs if r["kind"] == "step")


def test_resume_mid_epoch_from_step_checkpoint(reference, tmp_path):
    ref, ref_hist, ref_rd = reference
    torch.set_num_threads(1)
    # step checkpoints every 4 steps: last one before the interruption is step 8 = epoch 2, batch 2
    t = make(tmp_path, epochs=3, checkpoint_every_steps=4, callbacks=[StopAt(10)])
    with pytest.raises(Interrupt):
        t.fit()
    from auscult.engine import load_checkpoint

    ck = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step"], ck["step_in_epoch"], ck["kind"]) == (1, 8, 2, "step")

    r = make(tmp_path, epochs=3, checkpoint_every_steps=4, resume=True)
    hist = r.fit()
    assert_same_state(final_state(r), ref)
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in ref_hist]
    assert [h["val_loss"] for h in hist] == [h["val_loss"] for h in ref_hist]
    # metrics.jsonl has each step exactly once, as in the uninterrupted run
    steps = [x["step"] for x in r.run_dir.read_metrics() if x["kind"] == "step"]
    assert steps == list(range(1, 19))
    ref_losses = [x["loss"] for x in ref_rd.read_metrics() if x["kind"] == "step"]
    assert [x["loss"] for x in r.run_dir.read_metrics() if x["kind"] == "step"] == ref_losses


def test_resume_at_epoch_boundary(reference, tmp_path):
    ref, _, _ = reference
    torch.set_num_threads(1)
    t = make(tmp_path, epochs=3, callbacks=[StopAt(9)])  # epoch checkpoints only
    with pytest.raises(Interrupt):
        t.fit()
    r = make(tmp_path, epochs=3, resume=True)
    r.fit()
    assert_same_state(final_state(r), ref)


def test_resume_detects_forgotten_state(reference, tmp_path):
    """The comparison is sensitive: not registering the memory bank as extra state breaks resume."""
    ref, _, _ = reference
    torch.set_num_threads(1)
    t = make(tmp_path, epochs=3, checkpoint_every_steps=4, callbacks=[StopAt(10)], bank=False)
    with pytest.raises(Interrupt):
        t.fit()
    r = make(tmp_path, epochs=3, checkpoint_every_steps=4, resume=True, bank=False)
    r.fit()
    a = final_state(r)
    assert any(not torch.equal(a[k], ref[k]) for k in ref)


def test_resume_after_sigkill(reference, tmp_path):
    """A process SIGKILLed in epoch 2 resumes (in a new process) to the uninterrupted result."""
    ref, _, _ = reference
    script = str(HERE / "_engine_toy.py")
    killed = subprocess.run([sys.executable, script, str(tmp_path), "3", "11", "0"], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "final_state.pt").exists()
    torch.set_num_threads(1)
    r = make(tmp_path, epochs=3, checkpoint_every_steps=4, resume=True)
    r.fit()
    assert_same_state(final_state(r), ref)


def test_resume_finished_run_is_noop(reference, tmp_path):
    torch.set_num_threads(1)
    t = make(tmp_path, epochs=2)
    h1 = t.fit()
    r = make(tmp_path, epochs=2, resume=True)
    h2 = r.fit()
    assert h1 == h2
    assert r.state.step == 12


def test_resume_mid_epoch_with_loader_workers(reference, tmp_path):
    """Loader workers draw their augmentation from per-epoch worker seeds: resume reproduces them."""
    ref, _, _ = reference
    torch.set_num_threads(1)
    t = make(tmp_path, epochs=3, checkpoint_every_steps=4, callbacks=[StopAt(10)], num_workers=2)
    with pytest.raises(Interrupt):
        t.fit()
    r = make(tmp_path, epochs=3, checkpoint_every_steps=4, resume=True, num_workers=2)
    r.fit()
    u = make(tmp_path / "u", epochs=3, checkpoint_every_steps=4, num_workers=2)
    u.fit()
    assert_same_state(final_state(r), final_state(u))
    # workers change the augmentation stream, so this is not the in-process reference
    assert any(not torch.equal(final_state(u)[k], ref[k]) for k in ref)


def test_resume_is_announced_with_the_epoch(tmp_path, caplog):
    """A resumed run says where it picked up: a log record flagged as a notice for the person at the
    console (the CLI prints those; see tests/test_cli_messages.py)."""
    import logging

    torch.set_num_threads(1)
    t = make(tmp_path, epochs=3, checkpoint_every_steps=4, callbacks=[StopAt(10)])
    with pytest.raises(Interrupt):
        t.fit()
    with caplog.at_level(logging.INFO, logger="auscult"):
        make(tmp_path, epochs=3, checkpoint_every_steps=4, resume=True).fit()
    notices = [r for r in caplog.records if getattr(r, "notice", False)]
    assert len(notices) == 1, [r.getMessage() for r in caplog.records]
    msg = notices[0].getMessage()
    # the step-8 checkpoint: 2nd epoch (of 3), 2 of its 6 steps done
    assert "resumed from epoch 2 of 3" in msg and "step 2 of 6" in msg and "last.pt" in msg, msg


def test_resume_without_a_checkpoint_says_it_starts_over(tmp_path, caplog):
    import logging

    torch.set_num_threads(1)
    with caplog.at_level(logging.INFO, logger="auscult"):
        make(tmp_path, epochs=1, resume=True).fit()
    notices = [r.getMessage() for r in caplog.records if getattr(r, "notice", False)]
    assert len(notices) == 1 and "no checkpoint" in notices[0] and "from the first epoch" in notices[0], notices
