"""Where a result came from: the auscult version and, when auscult runs from a git checkout, its commit."""

from __future__ import annotations

import datetime
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Optional

from . import __version__

__all__ = ["git_commit", "now_iso", "software"]


@lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The commit of the git checkout auscult's own source is imported from (``"<sha>"``, with
    ``"-dirty"`` when tracked files differ from it), or None for an installed package, a checkout
    without git, or one where auscult's files are not tracked (e.g. a venv inside another repo)."""
    pkg = Path(__file__).resolve().parent

    def git(*args: str) -> Optional[str]:
        try:
            r = subprocess.run(["git", "-C", str(pkg), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "__init__.py") is None:  # not this package's repository
        return None
    head = git("rev-parse", "HEAD")
    if not head:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return head + ("-dirty" if dirty else "")


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def software() -> str:
    """``"auscult <version>"``."""
    return f"auscult {__version__}"
