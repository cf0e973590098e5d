"""The runtime's default thread count honours OMP_NUM_THREADS (a user's limit on a shared machine)."""

from __future__ import annotations

import os

import pytest

from auscult.engine.runtime import default_num_threads, set_num_threads


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def test_omp_num_threads_is_the_default(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert default_num_threads() == 1
        assert set_num_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert default_num_threads() == 3
        assert set_num_threads(2) == 2  # an explicit count wins over the environment
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert default_num_threads() == _cpus()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_omp_num_threads_is_named_and_ignored(monkeypatch, bad):
    monkeypatch.setenv("OMP_NUM_THREADS", bad)
    with pytest.warns(RuntimeWarning, match="OMP_NUM_THREADS"):
        assert default_num_threads() == _cpus()
