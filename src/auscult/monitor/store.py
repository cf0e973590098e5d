"""History store: every scored clip of a monitored machine, in SQLite (default) or PostgreSQL.

A store is opened from a URL::

    from auscult.monitor.store import open_store
    store = open_store("sqlite:///var/lib/auscult/history.sqlite")   # embedded, WAL mode
    store = open_store("postgresql://auscult:secret@db.example/auscult")  # a fleet, needs psycopg

    rec = store.add("pump-3", score=1.7, threshold=1.2, decision=True, expected_false_alarm_rate=0.01)
    store.history("pump-3", since=rec.time - 3600)

What it keeps, per scored clip: machine id, UTC time (Unix seconds), score, threshold, decision,
the threshold's expected false-alarm rate, the upload's file name (informational only; never used
as a path), an optional client request id (unique: a retried request is not stored twice), a JSON
``extra`` dict, and optionally the clip itself (16-bit PCM, only the newest ``keep_clips`` per
machine) so a dashboard can explain the worst recent clip.

SQLite runs in WAL mode (readers never block the writer; a killed process loses no committed
row) with one connection per thread and ``BEGIN IMMEDIATE`` writes. PostgreSQL goes through
``psycopg`` (version 3, ``pip install 'psycopg[binary]'``); both go through the same small
DB-API layer, so the SQL below is the whole storage format.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
import time as _time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from ..errors import AuscultError, ConfigError

__all__ = ["StoreError", "ScoreRecord", "HistoryStore", "open_store", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

log = logging.getLogger("auscult.store")


class StoreError(AuscultError):
    """The history database cannot be opened, is from an incompatible version, or a write failed."""


@dataclass(frozen=True)
class ScoreRecord:
    """One scored clip as stored in the history."""

    id: int
    machine: str
    time: float  # Unix seconds, UTC
    score: float
    threshold: float
    decision: bool
    expected_false_alarm_rate: float
    filename: Optional[str] = None
    request_id: Optional[str] = None
    has_clip: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``time_iso`` is the time as ISO 8601 UTC, ``status`` as below."""
        d = asdict(self)
        d["time_iso"] = iso_utc(self.time)
        d["status"] = self.status
        return d

    @property
    def status(self) -> str:
        """``"scored"``, or ``"input_fault"`` for a clip that was not machine sound (silent, clipped, too
        short, ...: issue 15 item 2), kept in ``extra["status"]`` until that item gives it a column."""
        return str(self.extra.get("status") or "scored") if isinstance(self.extra, dict) else "scored"


def iso_utc(t: float) -> str:
    """Unix seconds -> ``2026-01-02T03:04:05.678Z``."""
    ms = int(round(t * 1000))
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


# ----------------------------------------------------------------------------- dialects
class _Dialect:
    name = "sqlite"
    placeholder = "?"
    blob = "BLOB"
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def q(self, sql: str) -> str:
        """Turn the ``?`` placeholders of the shared SQL into this driver's style (a literal ``%``
        doubled for psycopg's ``%s`` style)."""
        return sql if self.placeholder == "?" else sql.replace("%", "%%").replace("?", self.placeholder)


class _PgDialect(_Dialect):
    name = "postgresql"
    placeholder = "%s"
    blob = "BYTEA"
    id_column = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"


_COLUMNS = ("id, machine, time, score, threshold, decision, expected_far, filename, request_id, "
            "extra, has_clip")
#: rows that are input faults, not scores (see ScoreRecord.status). ``extra`` is written by json.dumps
#: with its default separators, so the key and value appear exactly like this.
_FAULT = """(extra LIKE '%"status": "input_fault"%')"""


def _schema(d: _Dialect) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS auscult_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS auscult_scores (
            id {d.id_column},
            machine TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            threshold DOUBLE PRECISION NOT NULL,
            decision INTEGER NOT NULL,
            expected_far DOUBLE PRECISION NOT NULL,
            filename TEXT,
            request_id TEXT UNIQUE,
            extra TEXT NOT NULL DEFAULT '{{}}',
            has_clip INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX IF NOT EXISTS auscult_scores_machine_time ON auscult_scores (machine, time)",
        f"""CREATE TABLE IF NOT EXISTS auscult_clips (
            score_id BIGINT PRIMARY KEY REFERENCES auscult_scores(id) ON DELETE CASCADE,
            machine TEXT NOT NULL,
            sample_rate INTEGER NOT NULL,
            pcm16 {d.blob} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS auscult_clips_machine ON auscult_clips (machine, score_id)",
    ]


def _to_record(row: tuple) -> ScoreRecord:
    (rid, machine, t, score, thr, dec, far, fname, req, extra, has_clip) = row
    return ScoreRecord(id=int(rid), machine=machine, time=float(t), score=float(score), threshold=float(thr),
                       decision=bool(dec), expected_false_alarm_rate=float(far), filename=fname,
                       request_id=req, has_clip=bool(has_clip), extra=json.loads(extra or "{}"))


def _finite(name: str, v: float) -> float:
    v = float(v)
    if not math.isfinite(v):
        raise StoreError(f"refusing to store a non-finite {name} ({v}); the model produced NaN/Inf")
    return v


# ----------------------------------------------------------------------------- store
class HistoryStore:
    """Thread-safe history of scored clips. Build it with :func:`open_store`.

    Args:
        url: where it was opened from (for messages).
        connect: a zero-argument function returning a new DB-API connection.
        dialect: SQL flavour of that connection.
        keep_clips: how many clips (audio) to keep per machine; older ones are pruned on write
            (their score rows stay). 0 keeps no audio at all.
    """

    def __init__(self, url: str, connect, dialect: _Dialect, keep_clips: int = 100):
        if int(keep_clips) < 0:
            raise ConfigError(f"keep_clips must be >= 0, got {keep_clips}")
        self.url = url
        self.keep_clips = int(keep_clips)
        self._connect = connect
        self._d = dialect
        self._local = threading.local()
        self._all: list = []
        self._lock = threading.Lock()
        self._closed = False
        self._init_schema()

    # -- connections
    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._d.name

    def _conn(self):
        if self._closed:
            raise StoreError(f"history store {self.url} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
            except Exception as exc:
                raise StoreError(f"cannot open the history database {_redact(self.url)}: {exc}") from None
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _write(self, fn):
        """Run ``fn(cursor)`` in one transaction (SQLite: BEGIN IMMEDIATE, so writers queue up)."""
        conn = self._conn()
        cur = conn.cursor()
        try:
            if self._d.name == "sqlite":
                cur.execute("BEGIN IMMEDIATE")
            out = fn(cur)
            conn.commit()
            return out
        except BaseException:
            conn.rollback()
            raise
        finally:
            cur.close()

    def _read(self, sql: str, params: Iterable = ()) -> list[tuple]:
        conn = self._conn()
        cur = conn.cursor()
        try:
            cur.execute(self._d.q(sql), tuple(params))
            return cur.fetchall()
        finally:
            cur.close()
            # ends psycopg's implicit read transaction (so the next read sees new rows) and frees
            # the shared in-memory SQLite connection; a no-op for file SQLite in autocommit mode
            conn.commit()

    def _init_schema(self) -> None:
        def run(cur):
            for stmt in _schema(self._d):
                cur.execute(stmt)
            cur.execute(self._d.q("SELECT value FROM auscult_meta WHERE key = ?"), ("schema_version",))
            row = cur.fetchone()
            if row is None:
                cur.execute(self._d.q("INSERT INTO auscult_meta (key, value) VALUES (?, ?)"),
                            ("schema_version", str(SCHEMA_VERSION)))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"history database {_redact(self.url)} has schema version {row[0]}, this "
                                 f"auscult writes version {SCHEMA_VERSION}; point --db at a new database "
                                 f"or upgrade auscult")
        try:
            self._write(run)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot initialise the history database {_redact(self.url)}: {exc} "
                             f"(is it an auscult history database, and writable?)") from None

    def close(self) -> None:
        """Close every connection this store opened (from any thread)."""
        with self._lock:
            conns, self._all = self._all, []
            self._closed = True
        for c in conns:
            try:
                c.close()
            except Exception:  # pragma: no cover - closing a connection of a dead thread
                pass

    def __enter__(self) -> "HistoryStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes
    def add(self, machine: str, score: float, threshold: float, decision: bool,
            expected_false_alarm_rate: float, *, filename: Optional[str] = None,
            request_id: Optional[str] = None, extra: Optional[dict] = None,
            clip: Optional[np.ndarray] = None, sample_rate: Optional[int] = None,
            time: Optional[float] = None) -> tuple[ScoreRecord, bool]:
        """Store one scored clip; returns ``(record, created)``.

        With a ``request_id`` already in the store nothing is written and the stored record is
        returned with ``created=False`` (a client retry is not a second measurement).
        ``clip`` (float waveform in [-1, 1]) is kept as 16-bit PCM when ``keep_clips > 0``.
        """
        t = _time.time() if time is None else float(time)
        vals = (machine, t, _finite("score", score), _finite("threshold", threshold), int(bool(decision)),
                _finite("expected false-alarm rate", expected_false_alarm_rate), filename, request_id,
                json.dumps(extra or {}, default=_json_default, allow_nan=False),
                int(clip is not None and self.keep_clips > 0))
        pcm = None
        if clip is not None and self.keep_clips > 0:
            if sample_rate is None or int(sample_rate) <= 0:
                raise StoreError("a stored clip needs its sample_rate")
            pcm = (np.clip(np.asarray(clip, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()

        def run(cur):
            cur.execute(self._d.q(
                "INSERT INTO auscult_scores (machine, time, score, threshold, decision, expected_far, filename, "
                "request_id, extra, has_clip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (request_id) DO NOTHING RETURNING id"), vals)
            row = cur.fetchone()
            if row is None:  # the request id exists: a retry
                return None
            rid = int(row[0])
            if pcm is not None:
                cur.execute(self._d.q("INSERT INTO auscult_clips (score_id, machine, sample_rate, pcm16) "
                                      "VALUES (?, ?, ?, ?)"), (rid, machine, int(sample_rate), pcm))
                cur.execute(self._d.q(
                    "SELECT score_id FROM auscult_clips WHERE machine = ? ORDER BY score_id DESC LIMIT 1 OFFSET ?"),
                    (machine, self.keep_clips - 1))
                edge = cur.fetchone()
                if edge is not None:
                    cur.execute(self._d.q("UPDATE auscult_scores SET has_clip = 0 WHERE id IN (SELECT score_id "
                                          "FROM auscult_clips WHERE machine = ? AND score_id < ?)"),
                                (machine, int(edge[0])))
                    cur.execute(self._d.q("DELETE FROM auscult_clips WHERE machine = ? AND score_id < ?"),
                                (machine, int(edge[0])))
            return rid

        try:
            rid = self._write(run)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot write to the history database {_redact(self.url)}: {exc}") from None
        if rid is None:
            existing = self.get_by_request_id(request_id)
            if existing is None:  # pragma: no cover - the conflicting row vanished in between
                raise StoreError(f"request id {request_id!r} conflicts but cannot be read back")
            return existing, False
        rec = self.get(rid)
        assert rec is not None
        return rec, True

    # -- reads
    def get(self, record_id: int) -> Optional[ScoreRecord]:
        """The record with this id, or None."""
        rows = self._read(f"SELECT {_COLUMNS} FROM auscult_scores WHERE id = ?", (int(record_id),))
        return _to_record(rows[0]) if rows else None

    def get_by_request_id(self, request_id: str) -> Optional[ScoreRecord]:
        """The record stored for a client request id, or None."""
        rows = self._read(f"SELECT {_COLUMNS} FROM auscult_scores WHERE request_id = ?", (request_id,))
        return _to_record(rows[0]) if rows else None

    def history(self, machine: str, since: Optional[float] = None, until: Optional[float] = None,
                limit: int = 1000) -> list[ScoreRecord]:
        """Records of one machine with ``since <= time < until``, oldest first.

        When more than ``limit`` match, the *newest* ``limit`` are returned (still oldest first),
        so a dashboard asking for "the last 500" gets the latest ones.
        """
        sql = f"SELECT {_COLUMNS} FROM auscult_scores WHERE machine = ?"
        params: list[Any] = [machine]
        if since is not None:
            sql += " AND time >= ?"
            params.append(float(since))
        if until is not None:
            sql += " AND time < ?"
            params.append(float(until))
        sql += " ORDER BY time DESC, id DESC LIMIT ?"
        params.append(int(limit))
        return [_to_record(r) for r in reversed(self._read(sql, params))]

    def alerts(self, machine: str, limit: int = 10) -> list[ScoreRecord]:
        """The newest ``limit`` anomalous clips (decision true; input faults are not), newest first."""
        return [_to_record(r) for r in self._read(
            f"SELECT {_COLUMNS} FROM auscult_scores WHERE machine = ? AND decision = 1 AND NOT {_FAULT} "
            f"ORDER BY time DESC, id DESC LIMIT ?", (machine, int(limit)))]

    def decisions(self, machine: str) -> list[tuple[int, Optional[bool]]]:
        """``(id, decision)`` of every record of a machine, oldest first; ``None`` for input faults.
        What :func:`auscult.monitor.alerting.track_alerts` needs to apply the k-of-n rule."""
        return [(int(i), None if fault else bool(d)) for i, d, fault in self._read(
            f"SELECT id, decision, CASE WHEN {_FAULT} THEN 1 ELSE 0 END FROM auscult_scores WHERE machine = ? "
            f"ORDER BY time, id", (machine,))]

    def worst_recent(self, machine: str, window: int = 100) -> Optional[ScoreRecord]:
        """The highest-scoring record among the machine's newest ``window`` records that still
        have their clip stored (ties: the newest; input faults are not scores), or None."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS} FROM auscult_scores WHERE machine = ? AND has_clip = 1 "
            f"AND NOT {_FAULT} "
            f"ORDER BY id DESC LIMIT ?) recent ORDER BY score DESC, id DESC LIMIT 1", (machine, int(window)))
        return _to_record(rows[0]) if rows else None

    def clip(self, record_id: int) -> Optional[tuple[np.ndarray, int]]:
        """``(waveform float32, sample_rate)`` stored for a record, or None when not kept."""
        rows = self._read("SELECT pcm16, sample_rate FROM auscult_clips WHERE score_id = ?", (int(record_id),))
        if not rows:
            return None
        pcm, sr = rows[0]
        x = np.frombuffer(bytes(pcm), dtype="<i2").astype(np.float32) / 32767.0
        return x, int(sr)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per machine: ``n_scored`` (clips scored; input faults are not), ``n_anomalous`` (of those,
        decision true), ``n_input_faults``, and ``last_time``, ``last_score``, ``last_threshold`` of
        the newest record. Alerts (the k-of-n rule) are counted from :meth:`decisions`."""
        out: dict[str, dict[str, Any]] = {}
        for machine, n, n_anom, n_fault, last_id in self._read(
                f"SELECT machine, SUM(CASE WHEN {_FAULT} THEN 0 ELSE 1 END), "
                f"SUM(CASE WHEN {_FAULT} THEN 0 ELSE decision END), SUM(CASE WHEN {_FAULT} THEN 1 ELSE 0 END), "
                f"MAX(id) FROM auscult_scores GROUP BY machine"):
            rec = self.get(int(last_id))
            out[machine] = {"n_scored": int(n or 0), "n_anomalous": int(n_anom or 0), "n_input_faults": int(n_fault or 0),
                            "last_time": rec.time if rec else None, "last_score": rec.score if rec else None,
                            "last_threshold": rec.threshold if rec else None}
        return out

    def count(self, machine: Optional[str] = None) -> int:
        """Number of stored records (of one machine, or all)."""
        if machine is None:
            return int(self._read("SELECT COUNT(*) FROM auscult_scores")[0][0])
        return int(self._read("SELECT COUNT(*) FROM auscult_scores WHERE machine = ?", (machine,))[0][0])

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            self._read("SELECT 1")
            return True
        except Exception:
            return False


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _redact(url: str) -> str:
    """Hide a password in a database URL before it goes into a message."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


# ----------------------------------------------------------------------------- opening
def open_store(url: str, keep_clips: int = 100, timeout_s: float = 30.0) -> HistoryStore:
    """Open (creating if needed) the history store at ``url``.

    * ``sqlite:///relative/path.sqlite`` or ``sqlite:////absolute/path.sqlite`` (SQLAlchemy's
      spelling), or a plain file path: an embedded SQLite file in WAL mode; the folder is created.
    * ``sqlite://:memory:``: a private in-memory database (tests; one connection shared).
    * ``postgresql://user:pass@host:port/dbname`` (or ``postgres://``): PostgreSQL through
      psycopg 3 (``pip install 'psycopg[binary]'``).
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("the history database URL is empty (use sqlite:///path/history.sqlite)")
    url = url.strip()
    if url.startswith(("postgresql://", "postgres://")):
        return _open_postgres(url, keep_clips, timeout_s)
    if url.startswith("sqlite:") and not url.startswith("sqlite://"):
        raise ConfigError(f"bad SQLite URL {url!r}: write sqlite:///path/to/history.sqlite")
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if rest in (":memory:", "/:memory:"):
            return _open_sqlite_memory(url, keep_clips)
        if not rest.startswith("/"):
            raise ConfigError(f"bad SQLite URL {url!r}: write sqlite:///path/to/history.sqlite")
        path = Path(rest[1:])  # sqlite:///rel/path, sqlite:////abs/path (as SQLAlchemy)
    elif "://" in url:
        raise ConfigError(f"unsupported database URL {_redact(url)!r}: use sqlite:///path or "
                          f"postgresql://user:pass@host/dbname")
    else:
        path = Path(url)
    return _open_sqlite(path, url, keep_clips, timeout_s)


def _open_sqlite(path: Path, url: str, keep_clips: int, timeout_s: float) -> HistoryStore:
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; the history database must be a file path "
                          f"(e.g. {path / 'history.sqlite'})")
    from ..fileio import create_private_file, mkdir_private

    try:  # scores and stored audio of the plant: owner-only (folders 0700, database 0600)
        mkdir_private(path.parent)
        if not create_private_file(path) and path.stat().st_mode & 0o077:
            log.warning("%s: the history database is readable by other users (chmod 600 it and its -wal/-shm "
                        "files)", path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create it or its folder ({exc.strerror})") from None

    def connect():
        conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{path}: SQLite refused WAL mode (got {mode}); put the database on a local disk")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        conn.execute("PRAGMA foreign_keys = ON")
        return _SqliteConn(conn)

    return HistoryStore(url, connect, _Dialect(), keep_clips)


def _open_sqlite_memory(url: str, keep_clips: int) -> HistoryStore:
    shared = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    shared.execute("PRAGMA foreign_keys = ON")
    lock = threading.RLock()

    def connect():
        return _SqliteConn(shared, lock=lock, owns=False)

    return HistoryStore(url, connect, _Dialect(), keep_clips)


class _SqliteConn:
    """sqlite3 connection in autocommit mode with explicit transactions (commit/rollback as DB-API)."""

    def __init__(self, conn: sqlite3.Connection, lock=None, owns: bool = True):
        self._c = conn
        self._lock = lock
        self._owns = owns
        self._held = False

    def cursor(self):
        if self._lock is not None and not self._held:
            self._lock.acquire()
            self._held = True
        return self._c.cursor()

    def _release(self):
        if self._held:
            self._held = False
            self._lock.release()

    def commit(self):
        try:
            if self._c.in_transaction:
                self._c.execute("COMMIT")
        finally:
            self._release()

    def rollback(self):
        try:
            if self._c.in_transaction:
                self._c.execute("ROLLBACK")
        finally:
            self._release()

    def close(self):
        if self._owns:
            self._c.close()


def _open_postgres(url: str, keep_clips: int, timeout_s: float) -> HistoryStore:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ConfigError(f"{_redact(url)}: PostgreSQL needs the psycopg driver: pip install 'psycopg[binary]' "
                          f"(or use the default sqlite:///path/history.sqlite)") from None
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]

    def connect():
        import psycopg

        return psycopg.connect(url, connect_timeout=max(1, int(timeout_s)))

    return HistoryStore(url, connect, _PgDialect(), keep_clips)
