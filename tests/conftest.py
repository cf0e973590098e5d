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
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.skip("real clips not found (set AUSCULT_SHARED_DATA or place them in ../shared/data)")
    return root
