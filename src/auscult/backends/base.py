"""The common back-end API: per-row metadata, fit/score per group, and the saved envelope.

A back-end turns embeddings into anomaly scores (higher = more anomalous)::

    backend = BACKENDS.build("knn", k=1, metric="cosine")
    backend.fit(train_emb, BackendMeta.from_clips(train_clips))
    scores = backend.score(test_emb, BackendMeta.from_clips(test_clips))
    backend.save("runs/x/backend.npz")
    same = load_backend("runs/x/backend.npz")

Fitting is done separately per group (``group_by="section"``: one model per machine type and
section; ``"machine"``: one per machine type; ``None``: one for everything). The fitted state of
every group is a dict of plain numpy arrays, so that it can be saved without pickling code.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from .. import __version__
from ..errors import CheckpointError, ConfigError, DataError
from ..fileio import HEADER_KEY, read_arrays, save_tree, unpack_tree
from ..registry import Registry

BACKENDS = Registry("backend")

#: Version of the saved-file layout. Bump when the layout changes; older layouts stay readable.
#: Files are written in auscult's one save format (:mod:`auscult.fileio`: the header holds the packed
#: ``tree``); the first writer's layout (arrays ``g<i>/<name>`` listed in the header) is still read.
FORMAT_VERSION = 1
FORMAT_NAME = "auscult-backend"

GROUP_BY = ("section", "machine", None)
GroupKey = tuple[str, ...]


_THREADS: Optional[int] = 1


def set_threads(n: Optional[int]) -> None:
    """Set the BLAS/OpenMP thread limit used inside back-end fit/score (``None``: no limit).

    The default is 1: per-section problems are small (about a thousand rows), and
    scikit-learn's k-means, mixtures and neighbour searches spin OpenMP/BLAS threads whose
    start-up and contention cost more than they save - measured 8-30x slower fits on a busy
    2-core machine (``benchmarks/bench_backends.py``). Raise it for large groups on a
    dedicated many-core machine. The limit applies only while a back-end runs and is
    restored afterwards.
    """
    global _THREADS
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ConfigError(f"threads must be a positive integer or None, got {n!r}")
    _THREADS = n


_CONTROLLER: Any = None


def _thread_limit():
    """Context that applies the thread limit (a cached controller: ~0.02 ms, not ~7 ms a call)."""
    import contextlib

    global _CONTROLLER
    if _THREADS is None:
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        # load every native library the back-ends use first, so the controller sees their pools
        import scipy.linalg  # noqa: F401
        import sklearn.cluster  # noqa: F401
        import sklearn.mixture  # noqa: F401
        import sklearn.neighbors  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=_THREADS)


class BackendVersionWarning(UserWarning):
    """A saved back-end was written by a different auscult version than the one reading it."""


# --------------------------------------------------------------------------------------------
# Per-row metadata
# --------------------------------------------------------------------------------------------


def _str_array(values: Optional[Iterable[Any]], n: int, what: str) -> Optional[np.ndarray]:
    if values is None:
        return None
    arr = np.array([None if v is None else str(v) for v in values], dtype=object)
    if arr.shape != (n,):
        raise DataError(f"BackendMeta.{what} has {arr.shape[0] if arr.ndim else 0} rows, expected {n}")
    return arr


@dataclass
class BackendMeta:
    """What a back-end knows about each embedding row (all arrays have one entry per row).

    Attributes:
        section: section string per row (``"00"``) or ``None`` when unknown.
        domain: ``"source"``, ``"target"`` or ``None`` per row (``None`` is treated as source).
        machine: machine type per row, or ``None``. With ``group_by="section"`` the group is
            (machine, section), so section ``"00"`` of two machine types never mixes.
        class_id: integer class per row (auxiliary-classification label), or ``None``.
        attribute: attribute key per row (``Clip.attribute_key``), or ``None``.
        logits: ``[N, C]`` classifier logits (for the ``classifier`` back-end), or ``None``.
        probs: ``[N, C]`` classifier probabilities, used when ``logits`` is ``None``.
    """

    n: int
    section: Optional[np.ndarray] = None
    domain: Optional[np.ndarray] = None
    machine: Optional[np.ndarray] = None
    class_id: Optional[np.ndarray] = None
    attribute: Optional[np.ndarray] = None
    logits: Optional[np.ndarray] = None
    probs: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        n = int(self.n)
        if n < 0:
            raise DataError(f"BackendMeta needs a non-negative row count, got {n}")
        self.n = n
        self.section = _str_array(self.section, n, "section")
        self.machine = _str_array(self.machine, n, "machine")
        self.attribute = _str_array(self.attribute, n, "attribute")
        self.domain = _str_array(self.domain, n, "domain")
        if self.domain is not None:
            bad = sorted({d for d in self.domain if d not in (None, "source", "target")})
            if bad:
                raise DataError(f"BackendMeta.domain must be 'source', 'target' or None, got {bad}")
        if self.class_id is not None:
            cid = np.asarray(self.class_id)
            if cid.shape != (n,) or not np.issubdtype(cid.dtype, np.integer):
                raise DataError(f"BackendMeta.class_id must be {n} integers, got shape {cid.shape} {cid.dtype}")
            self.class_id = cid.astype(np.int64)
        for name in ("logits", "probs"):
            val = getattr(self, name)
            if val is not None:
                arr = np.asarray(val, dtype=np.float64)
                if arr.ndim != 2 or arr.shape[0] != n:
                    raise DataError(f"BackendMeta.{name} must be [{n}, n_classes], got {arr.shape}")
                if not np.all(np.isfinite(arr)):
                    raise DataError(f"BackendMeta.{name} contains NaN or Inf")
                setattr(self, name, arr)

    @classmethod
    def from_clips(
        cls,
        clips: Sequence[Any],
        *,
        class_ids: Optional[Sequence[int]] = None,
        logits: Optional[np.ndarray] = None,
        probs: Optional[np.ndarray] = None,
    ) -> "BackendMeta":
        """Metadata for embeddings computed from ``clips`` (``auscult.data.clip.Clip``), in order."""
        clips = list(clips)
        return cls(
            n=len(clips),
            section=[c.section for c in clips],
            domain=[c.domain for c in clips],
            machine=[c.machine for c in clips],
            attribute=[c.attribute_key for c in clips],
            class_id=None if class_ids is None else np.asarray(class_ids),
            logits=logits,
            probs=probs,
        )

    def subset(self, idx: np.ndarray) -> "BackendMeta":
        """The rows ``idx`` (integer indices) as a new ``BackendMeta``."""
        idx = np.asarray(idx, dtype=np.int64)

        def take(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if a is None else a[idx]

        return BackendMeta(
            n=len(idx),
            section=take(self.section),
            domain=take(self.domain),
            machine=take(self.machine),
            class_id=take(self.class_id),
            attribute=take(self.attribute),
            logits=take(self.logits),
            probs=take(self.probs),
        )

    def __len__(self) -> int:
        return self.n

    def is_target(self) -> np.ndarray:
        """Boolean mask of target-domain rows (``None`` domain counts as source)."""
        if self.domain is None:
            return np.zeros(self.n, dtype=bool)
        return np.array([d == "target" for d in self.domain], dtype=bool)

    def group_keys(self, group_by: Optional[str]) -> list[GroupKey]:
        """The group key of every row for a ``group_by`` policy."""
        if group_by is None:
            return [()] * self.n
        machine = self.machine if self.machine is not None else [None] * self.n
        if group_by == "machine":
            if self.machine is None or any(m is None for m in self.machine):
                raise DataError(
                    "group_by='machine' needs the machine type of every row "
                    "(build meta with BackendMeta.from_clips or pass machine=...)"
                )
            return [(m,) for m in machine]
        if self.section is None or any(s is None for s in self.section):
            raise DataError(
                "group_by='section' needs the section of every row "
                "(build meta with BackendMeta.from_clips, pass section=..., or use group_by=None)"
            )
        return [(m or "", s) for m, s in zip(machine, self.section)]


def describe_group(key: GroupKey, group_by: Optional[str]) -> str:
    """A human name for a group key: ``"section '00' of machine 'fan'"``."""
    if group_by is None or not key:
        return "the single group"
    if group_by == "machine":
        return f"machine type {key[0]!r}"
    machine, section = key
    return f"section {section!r}" + (f" of machine {machine!r}" if machine else "")


# --------------------------------------------------------------------------------------------
# Numeric helpers shared by the families
# --------------------------------------------------------------------------------------------


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, eps)


def pairwise_distance(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """``[len(a), len(b)]`` distances: ``cosine`` = 1 - cos similarity, ``euclidean`` = L2."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if metric == "cosine":
        return np.clip(1.0 - l2_normalize(a) @ l2_normalize(b).T, 0.0, 2.0)
    if metric == "euclidean":
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return np.sqrt(np.maximum(sq, 0.0))
    raise ConfigError(f"unknown metric {metric!r}; use 'cosine' or 'euclidean'")


def check_embeddings(x: Any, what: str = "embeddings") -> np.ndarray:
    """Validate an ``[N, D]`` finite embedding matrix and return it as float64."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a numeric [N, D] array: {exc}") from None
    if arr.ndim != 2:
        raise DataError(f"{what} must be 2-D [N, D], got shape {arr.shape} (reshape or pool frames first)")
    if arr.shape[1] == 0:
        raise DataError(f"{what} have zero dimensions")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr).all(1))
        raise DataError(f"{what} rows {bad[:10].tolist()} contain NaN or Inf (check the model/features)")
    return arr


def domain_sets(x: np.ndarray, meta: BackendMeta, separate: bool, key: GroupKey, who: str, group_by: Optional[str], min_rows: int = 2) -> dict[str, np.ndarray]:
    """Training rows per reference set: ``{"source": ..., "target": ...}`` (target only if any).

    Domain-less rows count as source; with ``separate=False`` everything is one ``"all"`` set.
    A set with fewer than ``min_rows`` rows is a ``DataError`` naming the group.
    """
    if not separate:
        sets = {"all": x}
    else:
        tgt = meta.is_target()
        sets = {"source": x[~tgt], "target": x[tgt]}
        sets = {d: rows for d, rows in sets.items() if len(rows)}  # a group may have one domain only
    for dom, rows in sets.items():
        if len(rows) < min_rows:
            raise DataError(
                f"{who}: {describe_group(key, group_by)} has {len(rows)} {dom} training embedding(s), needs at "
                f"least {min_rows} (add clips, use a coarser group_by or separate_domains=False)"
            )
    return sets


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------


class Backend:
    """Base class: fit one state per group, score each row against its own group's state.

    Subclasses set ``name`` (the registry name), store their constructor arguments with
    ``self._set_params(...)`` and implement ``_fit_group`` / ``_score_group``. A group's state
    is a ``dict[str, np.ndarray]`` (numeric or unicode arrays only), which is what gets saved.
    """

    name: str = ""
    #: rows needed per group for fit (k-means, LOF and Mahalanobis need more than one)
    min_fit_rows: int = 1

    def __init__(self, group_by: Optional[str] = "section"):
        if group_by not in GROUP_BY:
            raise ConfigError(f"group_by must be 'section', 'machine' or None, got {group_by!r}")
        self.group_by = group_by
        self.params: dict[str, Any] = {"group_by": group_by}
        self.groups_: dict[GroupKey, dict[str, np.ndarray]] = {}
        self.dim_: Optional[int] = None
        self._cache: dict[GroupKey, Any] = {}

    def _set_params(self, **params: Any) -> None:
        json.dumps(params)  # every parameter must be JSON-serialisable (they are saved)
        self.params.update(params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # -- public API ------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return bool(self.groups_)

    def fit(self, embeddings: Any, meta: Optional[BackendMeta] = None) -> "Backend":
        """Fit one state per group on (normal, training) ``embeddings [N, D]``; returns ``self``."""
        x = check_embeddings(embeddings)
        meta = self._check_meta(meta, len(x))
        if len(x) == 0:
            raise DataError("cannot fit a back-end on zero embeddings")
        groups: dict[GroupKey, dict[str, np.ndarray]] = {}
        self._cache = {}
        with _thread_limit():
            for key, idx in self._split(meta).items():
                if len(idx) < self.min_fit_rows:
                    raise DataError(
                        f"{self.name}: {describe_group(key, self.group_by)} has {len(idx)} training "
                        f"embedding(s), needs at least {self.min_fit_rows} (use a coarser group_by)"
                    )
                state = self._fit_group(x[idx], meta.subset(idx), key)
                groups[key] = {k: np.asarray(v) for k, v in state.items()}
        self.groups_ = groups
        self.dim_ = int(x.shape[1])
        return self

    def score(self, embeddings: Any, meta: Optional[BackendMeta] = None) -> np.ndarray:
        """Anomaly score per row (higher = more anomalous), ``float64 [N]``."""
        if not self.is_fitted:
            raise ConfigError(f"{self.name}: call fit() (or load_backend) before score()")
        x = check_embeddings(embeddings)
        meta = self._check_meta(meta, len(x))
        if self.dim_ is not None and len(x) and x.shape[1] != self.dim_:
            raise DataError(f"{self.name}: embeddings have {x.shape[1]} dimensions, the back-end was fitted on {self.dim_}")
        out = np.empty(len(x), dtype=np.float64)
        if set(self.groups_) == {()}:  # fitted as one group: every row belongs to it
            parts = {(): np.arange(len(x))} if len(x) else {}
        else:
            parts = self._split(meta)
        for key in parts:
            if key not in self.groups_:
                known = ", ".join(describe_group(k, self.group_by) for k in sorted(self.groups_))
                raise DataError(
                    f"{self.name}: {describe_group(key, self.group_by)} was not seen in fit "
                    f"(fitted: {known}); fit on that section's training clips or use a coarser group_by"
                )
        with _thread_limit():
            for key, idx in parts.items():
                out[idx] = self._score_group(self.groups_[key], x[idx], meta.subset(idx), key)
        return out

    def fit_score(self, embeddings: Any, meta: Optional[BackendMeta] = None) -> np.ndarray:
        """``fit`` then ``score`` on the same rows."""
        return self.fit(embeddings, meta).score(embeddings, meta)

    def save(self, path: str | Path) -> Path:
        """Write the fitted back-end to ``path`` (an ``.npz``), atomically. Returns the path."""
        if not self.is_fitted:
            raise ConfigError(f"{self.name}: nothing to save, call fit() first")
        return save_envelope(self, Path(path))

    # -- for subclasses --------------------------------------------------------------------
    def _fit_group(self, x: np.ndarray, meta: BackendMeta, key: GroupKey) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _score_group(self, state: dict[str, np.ndarray], x: np.ndarray, meta: BackendMeta, key: GroupKey) -> np.ndarray:
        raise NotImplementedError

    # -- internals -------------------------------------------------------------------------
    def _check_meta(self, meta: Optional[BackendMeta], n: int) -> BackendMeta:
        if meta is None:
            if self.group_by is not None and self.groups_ and () not in self.groups_:
                raise DataError(
                    f"{self.name}: fitted per {self.group_by}, so score() needs meta "
                    "(BackendMeta.from_clips(clips)) to find each row's group"
                )
            return BackendMeta(n=n)
        if not isinstance(meta, BackendMeta):
            raise ConfigError(f"meta must be a BackendMeta (BackendMeta.from_clips), got {type(meta).__name__}")
        if meta.n != n:
            raise DataError(f"meta describes {meta.n} rows but there are {n} embeddings")
        return meta

    def _split(self, meta: BackendMeta) -> dict[GroupKey, np.ndarray]:
        if meta.section is None and meta.machine is None:
            # no grouping information at all: one group, whatever group_by says
            return {(): np.arange(meta.n)} if meta.n else {}
        keys = meta.group_keys(self.group_by)
        out: dict[GroupKey, list[int]] = {}
        for i, k in enumerate(keys):
            out.setdefault(k, []).append(i)
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------------


def _minor(version: str) -> tuple[int, int]:
    parts = (str(version).split(".") + ["0", "0"])[:2]
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except ValueError:
        return (0, 0)


def save_envelope(backend: Backend, path: Path, *, format_version: int = FORMAT_VERSION, auscult_version: str = __version__) -> Path:
    """Write ``backend`` in auscult's one save format (:func:`auscult.fileio.save_tree`: an ``.npz``
    whose ``__header__`` is JSON, the group states its arrays; no pickled code), via temp + rename."""
    groups = []
    for key, state in sorted(backend.groups_.items()):
        for name, arr in state.items():
            if np.asarray(arr).dtype == object:
                raise CheckpointError(f"{backend.name}: state {name!r} is an object array and cannot be saved without pickle")
        groups.append([list(key), {name: np.asarray(arr) for name, arr in state.items()}])
    header = {
        "format": FORMAT_NAME,
        "format_version": int(format_version),
        "auscult_version": auscult_version,
        "backend": backend.name,
        "params": backend.params,
        "dim": backend.dim_,
    }
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz") if path.suffix == "" else path
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_tree(path, {"groups": groups}, header)


def load_backend(path: str | Path) -> Backend:
    """Load a back-end written by :meth:`Backend.save`.

    Raises ``CheckpointError`` for a missing, corrupt or truncated file, a file that is not an
    auscult back-end, or one written in a newer format; warns (``BackendVersionWarning``) when it
    was written by a different auscult minor version.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: saved back-end not found (check the path or re-run fit)")
    try:
        arrays = read_arrays(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}: not a readable auscult back-end file; re-run fit and save again") from None
    if HEADER_KEY not in arrays:
        raise CheckpointError(f"{path}: no auscult header; this is not a back-end saved by auscult")
    try:
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt header ({exc}); re-run fit and save again") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not an auscult back-end file (format={header.get('format') if isinstance(header, dict) else None!r})")
    fmt = header.get("format_version")
    if not isinstance(fmt, int) or fmt < 1:
        raise CheckpointError(f"{path}: unknown back-end format version {fmt!r}")
    saved_by = str(header.get("auscult_version", "?"))
    if fmt > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written in back-end format {fmt} by auscult {saved_by}, newer than this auscult "
            f"{__version__} reads (format {FORMAT_VERSION}); upgrade auscult to load it"
        )
    if _minor(saved_by) != _minor(__version__):
        older = _minor(saved_by) < _minor(__version__)
        warnings.warn(
            f"{path}: saved by auscult {saved_by} ({'older' if older else 'newer'} than the running {__version__}); "
            "it loads, but scores may differ slightly from the original run - refit to be sure",
            BackendVersionWarning,
            stacklevel=2,
        )
    name = header.get("backend")
    if name not in BACKENDS:
        raise CheckpointError(f"{path}: back-end {name!r} is not known to this auscult (known: {', '.join(BACKENDS.names())})")
    try:
        backend = BACKENDS.build(name, **dict(header.get("params") or {}))
        groups: dict[GroupKey, dict[str, np.ndarray]] = {}
        if "tree" not in header:  # the first layout: arrays named g<i>/<name>, listed in the header
            for gi, g in enumerate(header["groups"]):
                groups[tuple(g["key"])] = {a: arrays[f"g{gi}/{a}"] for a in g["arrays"]}
        else:
            for key, state in unpack_tree(header["tree"], arrays)["groups"]:
                groups[tuple(key)] = {a: np.asarray(v) for a, v in state.items()}
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: inconsistent back-end file ({type(exc).__name__}: {exc}); re-run fit and save again") from None
    backend.groups_ = groups
    backend.dim_ = header.get("dim")
    return backend
