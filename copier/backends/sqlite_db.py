"""One SQLite file shared by the embedded backends: connections, schema, transactions.

A connection per thread (WAL, busy_timeout 10 s, synchronous=NORMAL); every multi-row step
runs in one ``BEGIN IMMEDIATE`` transaction, so several threads and processes may share the
file. Tables are prefixed by what they hold (the work queue module owns ``queue_*``); every
row carries its ``job``, so several jobs may share one file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from copier.errors import BackendUnavailable, FatalError, TransientError

BUSY_TIMEOUT_S = 10.0

COUNTER_COLUMNS = (
    "dirs_total", "dirs_done", "files_total", "bytes_total", "files_done", "bytes_done", "files_skipped",
    "bytes_skipped", "files_failed", "entries_failed", "batches_dealt", "batches_completed", "items_waiting",
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS job_spec (job TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job_counters (
    job TEXT PRIMARY KEY, {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in COUNTER_COLUMNS)},
    batch_seq INTEGER NOT NULL DEFAULT 0, seeded INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS frontier_nodes (
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, pos INTEGER NOT NULL, cursor TEXT NOT NULL, path BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS frontier_nodes_by_pos ON frontier_nodes (job, pos);
CREATE TABLE IF NOT EXISTS frontier_leases (
    token TEXT PRIMARY KEY, job TEXT NOT NULL, owner TEXT NOT NULL, cursor TEXT NOT NULL, path BLOB NOT NULL,
    expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS frontier_leases_by_expiry ON frontier_leases (job, expires_at);
CREATE TABLE IF NOT EXISTS intake_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, size INTEGER NOT NULL, item BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS intake_items_by_job ON intake_items (job, id);
CREATE TABLE IF NOT EXISTS batch_pending (
    job TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, slot INTEGER NOT NULL, cost INTEGER NOT NULL,
    items BLOB NOT NULL, PRIMARY KEY (job, id));
CREATE TABLE IF NOT EXISTS batch_done (job TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (job, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slot_leases (
    job TEXT NOT NULL, slot INTEGER NOT NULL, holder TEXT NOT NULL DEFAULT '', expires_at REAL NOT NULL DEFAULT 0,
    assigned_cost INTEGER NOT NULL DEFAULT 0, done_cost INTEGER NOT NULL DEFAULT 0,
    files_done INTEGER NOT NULL DEFAULT 0, bytes_done INTEGER NOT NULL DEFAULT 0,
    last_seen REAL NOT NULL DEFAULT 0, PRIMARY KEY (job, slot));
CREATE TABLE IF NOT EXISTS failure_records (
    job TEXT NOT NULL, path BLOB NOT NULL, record TEXT NOT NULL, PRIMARY KEY (job, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    job TEXT NOT NULL, message_id TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (job, message_id));
"""


@contextmanager
def translated(path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise TransientError(f"sqlite {path}: {text}") from exc
        raise FatalError(f"sqlite {path}: {text}") from exc
    except sqlite3.DatabaseError as exc:
        raise FatalError(f"sqlite {path}: {exc}") from exc


def open_connection(path: str) -> sqlite3.Connection:
    """A connection with the settings every copier table relies on: WAL, autocommit (each
    write is an explicit ``BEGIN IMMEDIATE``), a 10 s busy timeout, NORMAL durability."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class SqliteDb:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        try:
            self.conn().executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"sqlite {self.path} cannot be used: {exc}") from exc

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = open_connection(self.path)
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed when the block ends without error."""
        conn = self.conn()
        with translated(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with translated(self.path):
            return self.conn().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def bump(conn: sqlite3.Connection, job: str, **deltas: int) -> None:
    """Add to a job's counters (creating its row)."""
    conn.execute("INSERT OR IGNORE INTO job_counters (job) VALUES (?)", (job,))
    deltas = {k: v for k, v in deltas.items() if v}
    if deltas:
        sets = ", ".join(f"{name} = {name} + ?" for name in deltas)
        conn.execute(f"UPDATE job_counters SET {sets} WHERE job = ?", (*deltas.values(), job))


def touch_slot(conn: sqlite3.Connection, job: str, slot: int) -> None:
    conn.execute("INSERT OR IGNORE INTO slot_leases (job, slot) VALUES (?, ?)", (job, slot))


def record_failures(conn: sqlite3.Connection, job: str, records: list[tuple[bytes, bytes]]) -> None:
    conn.executemany("INSERT OR REPLACE INTO failure_records (job, path, record) VALUES (?, ?, ?)",
                     [(job, path, record.decode("ascii")) for path, record in records])
