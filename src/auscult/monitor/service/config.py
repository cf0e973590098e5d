"""Service configuration and model loading."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ...errors import CheckpointError, ConfigError
from ..alerting import DEFAULT_K, DEFAULT_N, check_k_of_n

__all__ = ["ServiceConfig", "MACHINE_ID_RE", "load_models", "read_token_file", "BUNDLE_SUFFIX"]

#: What a machine id may look like (checked before any lookup; never used as a path).
MACHINE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
BUNDLE_SUFFIX = ".auscult"
SAMPLE_RATE_POLICIES = ("reject", "resample")


@dataclass
class ServiceConfig:
    """Everything :func:`~auscult.monitor.service.create_app` needs.

    Attributes:
        models: bundle files, or folders whose ``*.auscult`` files are all loaded.
        state_dir: the service's own folder (default history database lives here).
        db_url: history database URL (default ``sqlite:///<state_dir>/history.sqlite``);
            see :func:`auscult.monitor.store.open_store`.
        token: the API secret. Required unless ``allow_no_auth`` is True.
        allow_no_auth: serve without authentication (only sensible on a trusted loopback).
        max_upload_mb: largest accepted request body, in MiB (413 above it).
        max_clip_s: longest accepted clip, in seconds of decoded audio (413 above it; decided
            from the audio header before decoding). Bounds the memory, stored audio and
            explanation image a request can cost: a small FLAC can hold an hour of audio.
        sample_rate_policy: ``"reject"`` (default: a clip at another rate gets 422) or
            ``"resample"`` (polyphase resampling to the model's rate before scoring).
        keep_clips: clips (audio) kept per machine for the dashboard's explain view.
        worst_window: the dashboard explains the worst of the newest this-many clips.
        bundles: already loaded bundle objects (used instead of / besides ``models``; tests).
        max_concurrent_scoring: scoring calls running at once (more requests wait).
        alert_k, alert_n: the k-of-n alert rule (shared with ``auscult watch``) the machine list and
            the dashboard count alerts with: an alert is on while at least k of the last n scored
            clips of a machine are anomalous.
        torch_threads: intra-op threads per scoring call when the bundles use torch (default 1:
            the service already scores requests in parallel, and torch's own thread team spinning
            against busy cores made single calls 10-50x slower on a loaded 2-core box);
            ``None`` leaves torch's setting alone.
    """

    models: Sequence[Path] = ()
    state_dir: Path = Path("auscult-service")
    db_url: Optional[str] = None
    token: Optional[str] = None
    allow_no_auth: bool = False
    max_upload_mb: float = 20.0
    max_clip_s: float = 300.0
    sample_rate_policy: str = "reject"
    keep_clips: int = 100
    worst_window: int = 100
    bundles: Sequence[Any] = field(default_factory=list)
    max_concurrent_scoring: int = 4
    torch_threads: Optional[int] = 1
    alert_k: int = DEFAULT_K
    alert_n: int = DEFAULT_N

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)
        self.models = [Path(m) for m in self.models]
        if self.sample_rate_policy not in SAMPLE_RATE_POLICIES:
            raise ConfigError(f"sample_rate_policy must be one of {SAMPLE_RATE_POLICIES}, "
                              f"got {self.sample_rate_policy!r}")
        if not (self.max_upload_mb > 0):
            raise ConfigError(f"max_upload_mb must be > 0, got {self.max_upload_mb}")
        if not (self.max_clip_s > 0):
            raise ConfigError(f"max_clip_s (--max-clip-seconds) must be > 0, got {self.max_clip_s}")
        check_k_of_n(self.alert_k, self.alert_n, "--alert-k/--alert-n")
        if self.token is not None:
            if len(self.token) < 16:
                raise ConfigError("the API token is shorter than 16 characters; use a long random secret "
                                  "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        elif not self.allow_no_auth:
            raise ConfigError("no API token configured: pass --token-file FILE (a file holding a long random "
                              "secret), or --no-auth to serve without authentication on a trusted network")
        if self.torch_threads is not None and int(self.torch_threads) < 1:
            raise ConfigError(f"torch_threads must be >= 1 or None, got {self.torch_threads}")
        if int(self.max_concurrent_scoring) < 1:
            raise ConfigError("max_concurrent_scoring must be >= 1")
        if not self.models and not self.bundles:
            raise ConfigError("no models to serve: pass --models with a .auscult bundle file or a folder of them "
                              "(make one with 'auscult fit DIR --out model.auscult')")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2 ** 20)

    @property
    def resolved_db_url(self) -> str:
        # an absolute path after "sqlite:///" gives the four-slash absolute form
        return self.db_url or "sqlite:///" + str((self.state_dir / "history.sqlite").resolve())


def read_token_file(path: Path) -> str:
    """The secret held in ``path`` (surrounding whitespace stripped); warns when others can read it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: token file not found (write a long random secret into it)")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ConfigError(f"{path}: the token file is empty (write a long random secret into it)")
    if "\n" in token:
        raise ConfigError(f"{path}: the token file holds several lines; keep only the secret")
    try:
        if path.stat().st_mode & 0o077:
            warnings.warn(f"{path}: the token file is readable by other users (chmod 600 it)", stacklevel=2)
    except OSError:  # pragma: no cover
        pass
    return token


def _bundle_files(models: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for m in models:
        if m.is_dir():
            found = sorted(p for p in m.glob(f"*{BUNDLE_SUFFIX}") if p.is_file())
            if not found:
                raise ConfigError(f"{m}: no *{BUNDLE_SUFFIX} model bundles in this folder")
            files.extend(found)
        elif m.is_file():
            files.append(m)
        else:
            raise ConfigError(f"{m}: model bundle not found (pass a .auscult file or a folder of them)")
    return files


def load_models(config: ServiceConfig) -> dict[str, Any]:
    """Machine id -> bundle, from ``config.bundles`` and the bundle files in ``config.models``.

    Raises ConfigError when a machine id is served by two bundles or is not a valid id, and
    CheckpointError (from the loader) for unreadable bundles.
    """
    bundles: list[tuple[str, Any]] = [("<in-memory bundle>", b) for b in config.bundles]
    files = _bundle_files(config.models)
    if files:
        try:
            from ..bundle import load_bundle
        except ImportError as exc:
            raise CheckpointError(f"cannot load model bundles: auscult.monitor.bundle is unavailable ({exc})") from None
        for f in files:
            bundles.append((str(f), load_bundle(f)))
    out: dict[str, Any] = {}
    where: dict[str, str] = {}
    for source, b in bundles:
        ids = list(b.machine_ids)
        if not ids:
            raise ConfigError(f"{source}: the bundle serves no machine ids")
        for mid in ids:
            if not MACHINE_ID_RE.match(str(mid)):
                raise ConfigError(f"{source}: machine id {mid!r} cannot be served over HTTP (use letters, digits, "
                                  f"'.', '_' and '-', at most 128 characters, not starting with '.', '_' or '-')")
            if mid in out:
                raise ConfigError(f"machine id {mid!r} is served by two bundles ({where[mid]} and {source}); "
                                  f"serve each machine from one bundle")
            out[str(mid)] = b
            where[str(mid)] = source
    return out
