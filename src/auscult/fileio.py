"""File helpers shared by every writer of durable state (checkpoints, back-ends, bundles)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *, sync_dir: bool = False) -> Path:
    """Write a file so that readers see either the old file or the complete new one.

    ``write(fh)`` fills a temporary file in the same folder; it is flushed, fsynced and renamed
    over ``path``. On any error (including KeyboardInterrupt) the temporary file is removed and
    ``path`` is left untouched. ``sync_dir`` also fsyncs the folder so the rename survives a crash.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_dir:
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:  # pragma: no cover - not supported on every filesystem
            pass
    return path


def mkdir_private(path: str | Path) -> Path:
    """Create ``path`` and any missing parents with owner-only permissions (0700).

    Folders that already exist are left as they are (they may be shared on purpose)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:  # created meanwhile by someone else
            continue
        os.chmod(d, 0o700)  # a umask cannot widen 0700, but a umask like 0o200 could narrow it
    return path


def create_private_file(path: str | Path) -> bool:
    """Create an empty ``path`` readable and writable by its owner only (0600) unless it exists;
    True when it was created. Programs that then open the file (e.g. SQLite) keep its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True

