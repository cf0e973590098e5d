"""Run directories: everything one run produced, in one folder.

::

    runs/<name>/
      config.yaml        the resolved config (after defaults and --set overrides)
      run.json           seed, versions (python, torch, numpy, auscult), git commit, host, start time, runtime
      logs/train.log     the log of every process-0 message
      metrics.jsonl      one JSON object per logged step / epoch (appended, flushed per line)
      checkpoints/       last.pt, best.pt, epoch_XXXX.pt, step checkpoints
      embeddings/ scores/ submission/ report/     filled by later stages

Only rank 0 writes (the trainer guards it); a RunDir object on other ranks just knows the paths.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import platform
import socket
import sys
from pathlib import Path
from typing import Any, Mapping

from .. import __version__
from ..errors import ConfigError

SUBDIRS = ("checkpoints", "logs", "embeddings", "scores", "submission", "report")


def versions() -> dict[str, str]:
    """Versions of python, torch, numpy and auscult (what a run was produced with)."""
    out = {"python": platform.python_version(), "auscult": __version__}
    for mod in ("torch", "numpy"):
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = __import__(mod)
            except ImportError:  # pragma: no cover
                continue
        out[mod] = getattr(m, "__version__", "?")
    return out


def _state_of(path: Path) -> str:
    """`` (stage 'training', 1 of 2 groups trained)`` from a run's run.json, or ``""``."""
    try:
        meta = json.loads((path / "run.json").read_text())
    except (OSError, ValueError):
        return ""
    parts = [f"stage {meta['stage']!r}"] if meta.get("stage") else []
    if isinstance(meta.get("groups"), list) and meta["groups"]:
        parts.append(f"{len(meta.get('groups_done') or [])} of {len(meta['groups'])} groups trained")
    return f" ({', '.join(parts)})" if parts else ""


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if hasattr(v, "item") and callable(v.item):
        try:
            return _jsonable(v.item())
        except (ValueError, RuntimeError):
            return str(v)
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


class RunDir:
    """Paths of one run, plus writers for its config, metadata and metrics log."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ---- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, name: str | None = None, config: Mapping[str, Any] | None = None,
               seed: int | None = None, exist_ok: bool = False, write: bool = True) -> "RunDir":
        """Make ``root/name`` (``name`` defaults to a UTC timestamp) with its sub-folders.

        ``exist_ok=False`` refuses to reuse a folder that already holds a run (pass ``exist_ok=True``
        to resume into it). ``write=False`` only computes paths (non-zero ranks).
        """
        if name is None:
            name = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        rd = cls(Path(root) / name)
        if not write:
            return rd
        if rd.path.exists() and (rd.path / "run.json").exists() and not exist_ok:
            raise ConfigError(f"{rd.path}: a run already exists here{_state_of(rd.path)}; continue it with --resume "
                              f"(same recipe and --set values), or remove the folder or choose another --out "
                              f"to start over")
        rd._made_folder = not rd.path.exists()
        rd.path.mkdir(parents=True, exist_ok=True)
        rd._made = [rd.path / sub for sub in SUBDIRS if not (rd.path / sub).exists()]
        for sub in rd._made:
            sub.mkdir()
        if config is not None:
            rd.write_config(config)
        from ..fileio import git_commit

        rd.write_meta(seed=seed, git_commit=git_commit() or "not available (not a git checkout)")
        return rd

    def discard_unstarted(self) -> None:
        """Undo :meth:`create` for a run that failed before any training: remove the files and empty
        sub-folders it made (and the run folder when it made that and it is now empty), so the next
        attempt with the same ``--out`` is not refused. Anything else in the folder is left alone."""
        for f in (self.config_path, self.meta_path, self.log_path, self.metrics_path):
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        for d in reversed(getattr(self, "_made", [])):
            try:
                d.rmdir()  # only when empty
            except OSError:
                pass
        if getattr(self, "_made_folder", False):
            try:
                self.path.rmdir()
            except OSError:
                pass

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run directory (raises :class:`ConfigError` when it is not one)."""
        rd = cls(path)
        if not rd.path.is_dir():
            raise ConfigError(f"{rd.path}: run directory not found")
        if not (rd.path / "run.json").exists() and not rd.config_path.exists():
            raise ConfigError(f"{rd.path}: not a run directory (no run.json or config.yaml)")
        return rd

    # ---- paths ----------------------------------------------------------------------------
    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "logs" / "train.log"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def embeddings(self) -> Path:
        return self.path / "embeddings"

    @property
    def scores(self) -> Path:
        return self.path / "scores"

    @property
    def submission(self) -> Path:
        return self.path / "submission"

    @property
    def report(self) -> Path:
        return self.path / "report"

    # ---- writers --------------------------------------------------------------------------
    def write_config(self, config: Mapping[str, Any]) -> Path:
        import yaml

        self.path.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(_jsonable(dict(config)), sort_keys=False))
        return self.config_path

    def read_config(self) -> dict[str, Any]:
        import yaml

        if not self.config_path.exists():
            raise ConfigError(f"{self.config_path}: run has no config.yaml")
        return yaml.safe_load(self.config_path.read_text()) or {}

    def write_meta(self, seed: int | None = None, **extra: Any) -> Path:
        """Write/merge ``run.json`` (seed, versions, host, start time and any extra fields)."""
        meta = self.read_meta() if self.meta_path.exists() else {}
        meta.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat())
        meta.update({"versions": versions(), "host": socket.gethostname()})
        if seed is not None:
            meta["seed"] = seed
        meta.update(_jsonable(extra))
        self.meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        return self.meta_path

    def read_meta(self) -> dict[str, Any]:
        return json.loads(self.meta_path.read_text())

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl`` (flushed, so a killed run keeps its log)."""
        line = json.dumps(_jsonable(dict(record)), allow_nan=False)
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records of ``metrics.jsonl`` (a partial last line from a kill is ignored)."""
        if not self.metrics_path.exists():
            return []
        out = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def attach_log(self, logger_name: str = "auscult", level: int = logging.INFO) -> logging.Handler:
        """Send ``logger_name``'s records to ``logs/train.log``; returns the handler (remove it when done)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(level)
        lg = logging.getLogger(logger_name)
        lg.addHandler(handler)
        if lg.level == logging.NOTSET or lg.level > level:
            lg.setLevel(level)
        return handler
