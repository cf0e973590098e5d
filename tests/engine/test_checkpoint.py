"""Checkpoints: atomic writes, RNG round trip, clear errors for missing/truncated/corrupt/foreign files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from auscult.engine.checkpoint import (
    FORMAT_VERSION,
    capture_rng_state,
    config_hash,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)
from auscult.engine.trainer import load_trained_model
from auscult.errors import CheckpointError


def _net(width=4):
    return nn.Sequential(nn.Linear(3, width), nn.BatchNorm1d(width), nn.Linear(width, 2))


def test_round_trip_and_extra_state(tmp_path):
    m = _net()
    p = save_checkpoint(tmp_path / "a" / "x.pt", {"model": m.state_dict(), "extra": {"queue": torch.arange(5)},
                                                   "epoch": 3})
    ck = load_checkpoint(p)
    assert ck["format_version"] == FORMAT_VERSION and ck["epoch"] == 3 and ck["path"] == str(p)
    assert torch.equal(ck["extra"]["queue"], torch.arange(5))
    m2 = _net()
    load_model_state(m2, ck["model"], source=p)
    for k, v in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], v)
    assert not list(p.parent.glob("*.tmp"))


def test_atomic_write_keeps_previous_on_failure(tmp_path):
    p = save_checkpoint(tmp_path / "last.pt", {"epoch": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(p, {"epoch": 2, "bad": Boom()})
    assert load_checkpoint(p)["epoch"] == 1
    assert not list(tmp_path.glob(".*tmp"))


def test_missing_empty_truncated_corrupt_foreign(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt.*not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt.*empty"):
        load_checkpoint(tmp_path / "empty.pt")
    good = save_checkpoint(tmp_path / "good.pt", {"model": _net().state_dict(), "epoch": 0})
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        (tmp_path / "trunc.pt").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="trunc.pt.*truncated or corrupt"):
            load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save(_net().state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="bare.pt.*not an auscult checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    save_checkpoint(tmp_path / "future.pt", {"format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match="future.pt.*newer"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_different_model_lists_mismatched_keys(tmp_path):
    p = save_checkpoint(tmp_path / "m.pt", {"model": _net(4).state_dict()})
    ck = load_checkpoint(p)
    with pytest.raises(CheckpointError) as e:
        load_model_state(_net(6), ck["model"], source=p)
    msg = str(e.value)
    assert "m.pt" in msg and "shape mismatch" in msg and "0.weight" in msg and "(4, 3)" in msg
    other = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    with pytest.raises(CheckpointError) as e:
        load_model_state(other, ck["model"], source=p)
    msg = str(e.value)
    assert "unexpected in checkpoint" in msg and "1.running_mean" in msg and "2.weight" in msg
    assert "1.weight: checkpoint (4,) vs model (2, 4)" in msg
    with pytest.raises(CheckpointError, match="missing in checkpoint: 1.bias, 1.weight"):
        load_model_state(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)),
                         {k: v for k, v in ck["model"].items() if not k.startswith("1.")}, source=p)
    with pytest.raises(CheckpointError, match="m.pt"):
        load_trained_model(other, p)


def test_rng_round_trip():
    state = capture_rng_state()
    a = (random.random(), float(np.random.rand()), float(torch.rand(())))
    restore_rng_state(state)
    b = (random.random(), float(np.random.rand()), float(torch.rand(())))
    assert a == b


def test_config_hash_stable_and_sensitive():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
