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
