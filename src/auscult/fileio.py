"""File helpers shared by every writer of durable state, and auscult's one save format.

**Atomic writes.** :func:`atomic_write` fills a temporary file and renames it over the target, so a
reader sees either the old file or the complete new one (checkpoints, run models, back-ends, bundles).

**One save format: a JSON tree + an npz of arrays.** Everything auscult saves for later scoring
(a run's per-group model, a fitted back-end, a model bundle) is a tree of plain values -- dicts,
lists, strings, numbers, booleans, ``None`` -- with numpy arrays and torch tensors as leaves.
:func:`pack_tree` turns such a tree into JSON text plus a dict of arrays (each array leaf replaced by
``{"__ndarray__": key}`` / ``{"__tensor__": key}``); :func:`unpack_tree` is the inverse. Nothing
else can be stored (an object of any other type raises :class:`~auscult.errors.CheckpointError`),
and arrays are read with ``allow_pickle=False``, so **loading a file never runs code**.

Two containers use the packer:

* :func:`save_tree` / :func:`load_tree` -- one ``.npz`` file whose ``__header__`` member holds the
  UTF-8 JSON (format name and version, versions of the writer, the packed tree) and whose other
  members are the arrays (run models ``models/<group>/model.npz``, back-ends);
* the model bundle (``*.auscult``, :mod:`auscult.monitor.bundle`): a zip of ``bundle.json`` and
  ``arrays.npz``, written with the same two functions.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Optional, Union

from .errors import CheckpointError

__all__ = ["atomic_write", "pack_tree", "unpack_tree", "read_arrays", "save_tree", "load_tree", "HEADER_KEY",
           "writer_versions", "git_commit", "now_iso", "software", "mkdir_private", "create_private_file"]

HEADER_KEY = "__header__"


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


# ------------------------------------------------------------------------------------------------
# the packer: a tree of plain values and arrays <-> JSON + named arrays
# ------------------------------------------------------------------------------------------------
def pack_tree(obj: Any, arrays: dict[str, Any]) -> Any:
    """A JSON-able copy of ``obj`` with every array / tensor moved into ``arrays`` (by key).

    Dict keys that are not strings (or start with ``__``), tuples and non-finite floats are
    encoded so that :func:`unpack_tree` restores them exactly. Any other type raises
    :class:`CheckpointError`: only plain data is stored, never objects.
    """
    import numpy as np

    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise CheckpointError("cannot store an object array (plain numeric/string arrays only, no pickles)")
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(obj, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
        return {"__ndarray__": key}
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        t = obj.detach().cpu()
        key = f"a{len(arrays)}"
        arrays[key] = t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()
        return {"__tensor__": key, "dtype": str(t.dtype)}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: pack_tree(v, arrays) for k, v in obj.items()}
        return {"__items__": [[pack_tree(k, arrays), pack_tree(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [pack_tree(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [pack_tree(v, arrays) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    raise CheckpointError(f"cannot store a {type(obj).__name__} (plain data, arrays and tensors only)")


def unpack_tree(obj: Any, arrays: Mapping[str, Any]) -> Any:
    """Inverse of :func:`pack_tree` (tensors come back as CPU torch tensors of their dtype)."""
    import numpy as np

    if isinstance(obj, list):
        return [unpack_tree(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__ndarray__" in obj:
        return np.asarray(arrays[obj["__ndarray__"]])
    if "__tensor__" in obj:
        import torch

        t = torch.from_numpy(np.array(arrays[obj["__tensor__"]]))
        if obj.get("dtype") == "torch.bfloat16":
            t = t.to(torch.bfloat16)
        return t
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(unpack_tree(v, arrays) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {unpack_tree(k, arrays): unpack_tree(v, arrays) for k, v in obj["__items__"]}
    return {k: unpack_tree(v, arrays) for k, v in obj.items()}


def read_arrays(source: Union[str, Path, bytes], what: Optional[str] = None) -> dict[str, Any]:
    """Every member of an ``.npz`` (a path or its bytes), read with ``allow_pickle=False``.

    A pickled (object) array, a truncated or corrupt archive raise :class:`CheckpointError` naming
    ``what`` (default: the path) -- before anything is unpickled.
    """
    import numpy as np

    name = what or (str(source) if not isinstance(source, bytes) else "arrays")
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{name}: not found") from None
    except OSError as exc:
        raise CheckpointError(f"{name}: cannot read ({exc})") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CheckpointError(f"{name}: holds a pickled (object) array; auscult never unpickles (a pickle can "
                                  f"run code) -- this file was not written by auscult or was tampered with") from None
        raise CheckpointError(f"{name}: unreadable arrays ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{name}: truncated or corrupt ({type(exc).__name__}: {exc})") from None


def writer_versions() -> dict[str, str]:
    """Versions of the software writing a file (auscult, numpy, python, torch when imported)."""
    import platform
    import sys

    import numpy

    from . import __version__

    out = {"auscult": __version__, "numpy": numpy.__version__, "python": platform.python_version()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
    return out


def save_tree(path: Union[str, Path], tree: Any, header: Mapping[str, Any]) -> Path:
    """Write ``tree`` (plain data + arrays) as one ``.npz``: ``__header__`` = JSON of ``header`` plus
    ``"tree"`` (the packed tree), the other members the arrays. Atomic; returns the path."""
    import numpy as np

    arrays: dict[str, Any] = {}
    head = dict(header)
    head["tree"] = pack_tree(tree, arrays)
    blob = json.dumps(head, allow_nan=False).encode("utf-8")
    arrays[HEADER_KEY] = np.frombuffer(blob, dtype=np.uint8)
    path = Path(path)
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def load_tree(path: Union[str, Path], what: Optional[str] = None) -> tuple[dict[str, Any], Any]:
    """``(header, tree)`` of a file written by :func:`save_tree` (no code runs while loading).

    A missing, truncated or corrupt file, a pickled member, or a file without the JSON header raise
    :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    name = what or str(path)
    if not path.is_file():
        raise CheckpointError(f"{name}: not found" if not path.exists() else f"{name}: is not a file")
    arrays = read_arrays(path, name)
    if HEADER_KEY not in arrays:
        raise CheckpointError(f"{name}: no auscult header (not a file auscult saved)")
    try:
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name}: corrupt header ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: corrupt header (not a JSON object)")
    try:
        tree = unpack_tree(header.pop("tree", None), arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: inconsistent contents ({type(exc).__name__}: {exc})") from None
    return header, tree


# ------------------------------------------------------------------------------------------------
# provenance: where a written result came from
# ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The commit of the git checkout auscult's own source is imported from (``"<sha>"``, with
    ``"-dirty"`` when tracked files differ from it), or None for an installed package, a checkout
    without git, or one where auscult's files are not tracked (e.g. a venv inside another repo)."""
    import subprocess

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
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def software() -> str:
    """``"auscult <version>"``."""
    from . import __version__

    return f"auscult {__version__}"
