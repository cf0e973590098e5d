"""DDP on CPU: two gloo processes train like one process on the full batch; only rank 0 writes."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

import _ddp_worker
from auscult.engine.distributed import DistInfo, SeededSampler, all_reduce_mean, current, init_distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_single_process(tmp_path):
    mp.spawn(_ddp_worker.worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "result0.pt")
    r1 = torch.load(tmp_path / "result1.pt")
    assert r0["ddp"] == r1["ddp"] == "DistributedDataParallel"
    assert r0["mean"] == r1["mean"] == 0.5  # all_reduce_mean over ranks 0 and 1
    # identical weights on both ranks
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    # equal to one process on the full (2 x 4) batch
    torch.set_num_threads(1)
    single, hist = _ddp_worker.train(tmp_path / "single", world_size=1, rank=0, batch_size=8)
    for k, v in single.raw_model.state_dict().items():
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-5, atol=1e-6)
    # epoch train loss is all-reduced: same as the single process's
    for a, b in zip(r0["history"], hist):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    # only rank 0 wrote checkpoints and metrics
    assert (tmp_path / "rank0" / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "rank0" / "metrics.jsonl").exists()
    rank1 = tmp_path / "rank1"
    assert not rank1.exists() or not any(p.is_file() for p in rank1.rglob("*"))


def test_single_process_defaults():
    assert current() == DistInfo()
    assert init_distributed() == DistInfo()  # no torchrun environment: no-op
    assert float(all_reduce_mean(torch.tensor(2.0))) == 2.0


def test_seeded_sampler_shards_and_reproduces():
    s0 = SeededSampler(10, seed=1, rank=0, world_size=2)
    s1 = SeededSampler(10, seed=1, rank=1, world_size=2)
    s0.set_epoch(3)
    s1.set_epoch(3)
    a, b = list(s0), list(s1)
    assert len(a) == len(b) == len(s0) == 5
    assert sorted(a + b) == list(range(10))
    s0.set_epoch(3)
    assert list(s0) == a  # same epoch, same order
    s0.set_epoch(4)
    assert list(s0) != a
    odd = SeededSampler(7, seed=0, rank=1, world_size=2)
    assert len(list(odd)) == len(odd) == 4  # padded so both ranks step equally
    assert len(SeededSampler(7, seed=0, rank=1, world_size=2, drop_last=True)) == 3
