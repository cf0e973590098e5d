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
