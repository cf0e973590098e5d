"""Shared fixtures.

Real clips live in ``../shared/data`` beside the checkout, or wherever ``AUSCULT_SHARED_DATA``
points. Tests that need them use the ``shared_data`` fixture, which skips cleanly when the folder
is absent (a user's fresh clone does not have it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path | None:
    env = os.environ.get("AUSCULT_SHARED_DATA")
    if env:  # an explicit setting wins, also when it points nowhere (forces the skip)
        return Path(env) if Path(env).is_dir() else None
    default = REPO.parent / "shared" / "data"
    return default if default.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.skip("real clips not found (set AUSCULT_SHARED_DATA or place them in ../shared/data)")
    return root


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``--dist loadgroup`` group by ``xdist_group`` marks under pytest >= 9.

    pytest-xdist (3.8) tags each grouped item by assigning ``item._nodeid = "<nodeid>@<group>"`` on
    the workers; pytest 9 keeps a node's id in ``item._id`` (a ``NodeId``), so that assignment is
    silently ignored and the groups were spread over workers like ``--dist load``. Here the tag is
    written where pytest 9 reads it; with an xdist/pytest pair where xdist's own tagging works
    (the id already ends in ``@<group>``) nothing changes.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9: xdist's own tagging works
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if not names or "@" in item.nodeid or not hasattr(item, "_id"):
            continue
        item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


_TORCH_THREADS: list[int] = []


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Every test starts with the worker's first torch thread count. Several engine tests pin one
    thread and did not put it back, so a later test's training ran with 1 or 2 threads depending on
    which tests the worker happened to run first, and float reductions (hence small-data quality
    figures) depended on test order (seen with issue 18's fast paths, branch i18: the SSL4ASD
    beats-chance fixture scored 0.587 at 1 thread and passed at 2)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        if not _TORCH_THREADS:
            _TORCH_THREADS.append(torch.get_num_threads())
        elif torch.get_num_threads() != _TORCH_THREADS[0]:
            torch.set_num_threads(_TORCH_THREADS[0])
    yield
    torch = sys.modules.get("torch")
    if torch is not None and _TORCH_THREADS and torch.get_num_threads() != _TORCH_THREADS[0]:
        torch.set_num_threads(_TORCH_THREADS[0])
