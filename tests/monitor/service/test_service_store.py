"""History store: SQLite (WAL) semantics, retries, clip retention, restart, URLs; PostgreSQL if available."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from auscult.errors import ConfigError
from auscult.monitor.store import SCHEMA_VERSION, StoreError, open_store


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/h.sqlite", keep_clips=3)
    yield s
    s.close()


def _add(s, machine="m1", score=1.0, thr=2.0, **kw):
    return s.add(machine, score, thr, score > thr, 0.01, **kw)


def test_sqlite_file_is_wal_and_round_trips(store, tmp_path):
    rec, created = _add(store, score=3.5, filename="a.wav", extra={"k": np.float32(1.5)})
    assert created and rec.id >= 1 and rec.decision is True
    assert (rec.machine, rec.score, rec.threshold, rec.filename, rec.extra) == ("m1", 3.5, 2.0, "a.wav", {"k": 1.5})
    assert rec.to_dict()["time_iso"].endswith("Z")
    raw = sqlite3.connect(tmp_path / "h.sqlite")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    assert raw.execute("SELECT value FROM auscult_meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    raw.close()


def test_history_since_until_limit_order(store):
    for i in range(10):
        _add(store, score=float(i), time=1000.0 + i)
    _add(store, machine="other", score=99.0, time=1005.0)
    h = store.history("m1")
    assert [r.score for r in h] == [float(i) for i in range(10)]
    assert [r.score for r in store.history("m1", since=1004)] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert [r.score for r in store.history("m1", since=1004, until=1006)] == [4.0, 5.0]
    assert [r.score for r in store.history("m1", limit=3)] == [7.0, 8.0, 9.0]  # the newest 3, oldest first
    assert store.count() == 11 and store.count("m1") == 10 and store.count("nope") == 0
    assert [r.score for r in store.alerts("m1", limit=2)] == [9.0, 8.0]  # decision = score > 2
    summ = store.summary()
    assert summ["m1"]["n_scored"] == 10 and summ["m1"]["n_anomalous"] == 7 and summ["m1"]["last_score"] == 9.0
    assert summ["other"]["n_anomalous"] == 1 and summ["m1"]["n_input_faults"] == 0
    assert [d for _, d in store.decisions("m1")] == [i > 2 for i in range(10)]  # oldest first


def test_request_id_makes_retries_idempotent(store):
    a, ca = _add(store, score=1.0, request_id="req-1")
    b, cb = _add(store, score=7.0, request_id="req-1")
    assert ca and not cb and b == a and b.score == 1.0
    assert store.count() == 1


def test_clip_retention_and_worst_recent(store):
    rng = np.random.default_rng(0)
    clips = {}
    for i, s in enumerate([5.0, 1.0, 2.0, 3.0, 0.5]):
        x = (0.5 * rng.standard_normal(800)).clip(-1, 1).astype(np.float32)
        rec, _ = _add(store, score=s, clip=x, sample_rate=8000)
        clips[rec.id] = x
    ids = sorted(clips)
    # keep_clips=3: the first two clips (score 5 and 1) were pruned; their score rows stay
    assert store.clip(ids[0]) is None and store.clip(ids[1]) is None
    assert not store.get(ids[0]).has_clip and store.get(ids[2]).has_clip
    x, sr = store.clip(ids[3])
    assert sr == 8000 and np.max(np.abs(x - clips[ids[3]])) < 1.0 / 32767 + 1e-7
    worst = store.worst_recent("m1")
    assert worst.id == ids[3] and worst.score == 3.0  # 5.0 is not explainable any more
    assert store.worst_recent("m1", window=1).id == ids[4]
    assert store.worst_recent("nobody") is None
    with pytest.raises(StoreError, match="sample_rate"):
        _add(store, clip=np.zeros(10, np.float32))


def test_non_finite_scores_are_refused(store):
    with pytest.raises(StoreError, match="non-finite score"):
        _add(store, score=float("nan"))
    assert store.count() == 0


def test_concurrent_writers_lose_and_duplicate_nothing(store):
    def work(i):
        return _add(store, machine=f"m{i % 3}", score=float(i), request_id=f"r{i}")[0].id

    with ThreadPoolExecutor(8) as ex:
        ids = list(ex.map(work, range(120)))
    assert len(set(ids)) == 120 and store.count() == 120
    scores = sorted(r.score for m in ("m0", "m1", "m2") for r in store.history(m, limit=1000))
    assert scores == [float(i) for i in range(120)]


def test_reopen_keeps_history_and_second_process_sees_rows(tmp_path):
    url = f"sqlite:///{tmp_path}/h.sqlite"
    with open_store(url) as s:
        for i in range(5):
            _add(s, score=float(i))
    with open_store(url) as s2:
        assert [r.score for r in s2.history("m1")] == [0.0, 1.0, 2.0, 3.0, 4.0]
        _add(s2, score=5.0)
    # a writer that is killed mid-life keeps what it committed (WAL)
    code = (f"from auscult.monitor.store import open_store; import os; s = open_store({url!r}); "
            f"s.add('m1', 6.0, 2.0, True, 0.01); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with open_store(url) as s3:
        assert [r.score for r in s3.history("m1")] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_urls_and_bad_locations(tmp_path):
    rel = open_store("sqlite://:memory:")
    _add(rel)
    assert rel.count() == 1 and rel.dialect == "sqlite"
    rel.close()
    plain = open_store(str(tmp_path / "sub" / "x.sqlite"))  # a bare path, folder created
    plain.close()
    assert (tmp_path / "sub" / "x.sqlite").is_file()
    with pytest.raises(ConfigError, match="unsupported database URL"):
        open_store("mysql://u:secret@h/db")
    with pytest.raises(ConfigError, match="is a folder"):
        open_store(str(tmp_path))
    with pytest.raises(ConfigError, match="empty"):
        open_store("  ")
    with pytest.raises(ConfigError, match="sqlite:///"):
        open_store("sqlite:relative.db")
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        open_store(str(tmp_path / "junk.sqlite"))


def test_schema_version_mismatch_is_refused(tmp_path):
    p = tmp_path / "h.sqlite"
    open_store(str(p)).close()
    raw = sqlite3.connect(p)
    raw.execute("UPDATE auscult_meta SET value='999' WHERE key='schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="schema version 999"):
        open_store(str(p))


def test_closed_store_raises(tmp_path):
    s = open_store(str(tmp_path / "h.sqlite"))
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.count()


def test_postgres_url_without_driver_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psycopg(name, *a, **kw):
        if name == "psycopg":
            raise ImportError("no psycopg")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(ConfigError, match=r"psycopg\[binary\]") as ei:
        open_store("postgresql://auscult:hunter2@localhost/db")
    assert "hunter2" not in str(ei.value)  # passwords are redacted from messages


# ----------------------------------------------------------------------------- PostgreSQL
PG_MISSING = ("SKIPPED the real-PostgreSQL test: server binaries (initdb, pg_ctl) not found on PATH or under "
              "/usr/lib/postgresql/*/bin (Debian: apt-get install postgresql; .ci/run installs it when it can)")


def _pg_bin(name, lib="/usr/lib/postgresql"):
    found = shutil.which(name)
    if found:
        return found
    for d in sorted((p for p in os.scandir(lib) if p.is_dir()), key=lambda p: p.name,
                    reverse=True) if os.path.isdir(lib) else []:
        cand = os.path.join(d.path, "bin", name)
        if os.path.exists(cand):
            return cand
    return None


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    """A throw-away PostgreSQL server on a free local port (skips with the reason when impossible)."""
    pytest.importorskip("psycopg", reason="SKIPPED the real-PostgreSQL test: psycopg not installed "
                                          "(pip install 'psycopg[binary]', part of the dev extra)")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip(PG_MISSING)
    import socket

    import tempfile
    from pathlib import Path

    # not under pytest's tmp root: that is private to root (0700) and the server user must reach it
    base = Path(tempfile.mkdtemp(prefix="auscult-pg-"))
    data = base / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: use an unprivileged account
        import pwd

        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None or not shutil.which("runuser"):
            pytest.skip("SKIPPED the real-PostgreSQL test: running as root and no unprivileged user (postgres, "
                        "nobody) or runuser to start the server as")
        run_as = ["runuser", "-u", user, "--"]
        os.chown(base, pwd.getpwnam(user).pw_uid, -1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run(run_as + [initdb, "-N", "-D", str(data), "-U", "auscult", "--auth=trust", "-E", "UTF8"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"SKIPPED the real-PostgreSQL test: initdb failed: {r.stderr.strip()[-300:]}")
    r = subprocess.run(run_as + [pg_ctl, "-D", str(data), "-l", str(base / "log.txt"), "-w", "-t", "60",
                                 "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"SKIPPED the real-PostgreSQL test: the server did not start: {r.stderr.strip()[-300:]}")
    try:
        yield f"postgresql://auscult@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(run_as + [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True,
                       timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name):
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.mark.slow
def test_postgresql_backend_same_semantics(postgres_url):
    with open_store(postgres_url, keep_clips=2) as s:
        assert s.dialect == "postgresql"
        for i in range(4):
            _add(s, score=float(i), time=100.0 + i, clip=np.full(50, 0.25, np.float32), sample_rate=16000)
        assert [r.score for r in s.history("m1", since=101)] == [1.0, 2.0, 3.0]
        a, created = _add(s, score=9.0, request_id="x")
        b, created2 = _add(s, score=8.0, request_id="x")
        assert created and not created2 and a == b
        assert s.clip(1) is None and s.clip(4)[1] == 16000 and abs(s.clip(4)[0][0] - 0.25) < 1e-4
        assert s.worst_recent("m1").score == 3.0

        def work(i):
            return _add(s, machine="c", score=float(i), request_id=f"c{i}")[0].id

        with ThreadPoolExecutor(8) as ex:
            ids = list(ex.map(work, range(50)))
        assert len(set(ids)) == 50 and s.count("c") == 50
    with open_store(postgres_url) as s2:  # reopen: history kept, schema accepted
        assert s2.count() == 55


def test_postgres_binaries_are_found_where_debian_puts_them(tmp_path, monkeypatch):
    """Debian installs initdb/pg_ctl under /usr/lib/postgresql/<version>/bin, off PATH: the newest version wins."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    for v in ("13", "15"):
        (tmp_path / v / "bin").mkdir(parents=True)
        (tmp_path / v / "bin" / "initdb").write_text("")
    assert _pg_bin("initdb", lib=str(tmp_path)) == str(tmp_path / "15" / "bin" / "initdb")
    assert _pg_bin("pg_ctl", lib=str(tmp_path)) is None
    assert "apt-get install postgresql" in PG_MISSING


@pytest.mark.slow
def test_postgresql_input_faults_and_decisions(postgres_url):
    """The input-fault filter (a LIKE with literal %) works through psycopg's %s placeholders too."""
    with open_store(postgres_url) as s:
        _add(s, machine="f", score=3.0, time=1.0)
        _add(s, machine="f", score=58.0, time=2.0, extra={"status": "input_fault", "reason": "silent"})
        _add(s, machine="f", score=1.0, time=3.0)
        assert [d for _, d in s.decisions("f")] == [True, None, False]
        summ = s.summary()["f"]
        assert (summ["n_scored"], summ["n_anomalous"], summ["n_input_faults"]) == (2, 1, 1)
        assert [r.score for r in s.alerts("f")] == [3.0]
        assert [r.status for r in s.history("f")] == ["scored", "input_fault", "scored"]


def test_sqlite_input_faults_and_decisions(store):
    _add(store, machine="f", score=3.0, time=1.0)
    _add(store, machine="f", score=58.0, time=2.0, extra={"status": "input_fault", "reason": "silent"})
    _add(store, machine="f", score=1.0, time=3.0)
    assert [d for _, d in store.decisions("f")] == [True, None, False]
    summ = store.summary()["f"]
    assert (summ["n_scored"], summ["n_anomalous"], summ["n_input_faults"]) == (2, 1, 1)
    assert [r.score for r in store.alerts("f")] == [3.0]
    assert [r.status for r in store.history("f")] == ["scored", "input_fault", "scored"]
