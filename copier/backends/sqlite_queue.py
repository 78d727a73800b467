"""WorkQueue in one SQLite file, for the embedded one-machine mode.

Tables ``queue_messages`` and ``queue_dead_letters`` hold every queue of every job in the file
(other modules keep their own tables in it). Each thread gets its own connection (WAL,
``synchronous=NORMAL``, a 10 s busy timeout), so threads and processes may share the file.
Message ids are the row ids: increasing, so ``ORDER BY id`` is put order.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from copier.backends.queues import MAX_REASON_CHARS, MAX_RECEIVE, check_body
from copier.backends.sqlite_db import open_connection
from copier.errors import BackendUnavailable, TransientError
from copier.models import DeadLetter, Delivery

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    slot INTEGER NOT NULL,
    body TEXT NOT NULL,
    visible_at REAL NOT NULL,
    receipt TEXT,
    dequeue_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (job, slot, visible_at, id);
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    job TEXT NOT NULL,
    slot INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    dequeue_count INTEGER NOT NULL,
    PRIMARY KEY (job, slot, message_id)
);
"""


class _Database:
    """One connection per thread to one file; the schema is made once per process."""

    def __init__(self, db_path: str) -> None:
        self.path = str(db_path)
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_done = False

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = open_connection(self.path)
        with self._schema_lock:
            if not self._schema_done:
                conn.executescript(SCHEMA)
                self._schema_done = True
        return conn

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction (BEGIN IMMEDIATE), committing on success."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result


class SqliteWorkQueue:
    def __init__(self, db_path: str, job: str, slot: int, *, _db: _Database | None = None) -> None:
        self.name = f"{job}/{slot}"
        self.job = job
        self.slot = slot
        self._db = _db or _Database(db_path)

    def _call(self, what: str, fn: Callable[[], T], *, starting: bool = False) -> T:
        try:
            return fn()
        except sqlite3.DatabaseError as exc:  # OperationalError, or a file that is not a database
            text = str(exc)
            if not starting and isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
                raise TransientError(f"{what} queue {self.name}: database busy") from exc
            raise BackendUnavailable(f"{what} queue {self.name} in {self._db.path}: {text}") from exc

    def create(self) -> None:
        self._call("create", self._db.connection, starting=True)

    def put(self, body: str) -> None:
        check_body(body)
        self._call("put on", lambda: self._db.write(lambda c: c.execute(
            "INSERT INTO queue_messages (job, slot, body, visible_at) VALUES (?, ?, ?, ?)",
            (self.job, self.slot, body, time.time()))))

    def receive(self, max_messages: int, visibility_timeout_s: float) -> list[Delivery]:
        n = min(max_messages, MAX_RECEIVE)
        if n < 1:
            return []

        def take(conn: sqlite3.Connection) -> list[Delivery]:
            now = time.time()
            rows = conn.execute(
                "SELECT id, body, dequeue_count FROM queue_messages"
                " WHERE job = ? AND slot = ? AND visible_at <= ? ORDER BY id LIMIT ?",
                (self.job, self.slot, now, n)).fetchall()
            out = []
            for message_id, body, count in rows:
                receipt = uuid.uuid4().hex
                conn.execute("UPDATE queue_messages SET visible_at = ?, receipt = ?, dequeue_count = ? WHERE id = ?",
                             (now + visibility_timeout_s, receipt, count + 1, message_id))
                out.append(Delivery(str(message_id), receipt, count + 1, body))
            return out

        return self._call("receive from", lambda: self._db.write(take))

    def delete(self, delivery: Delivery) -> None:
        self._call("delete from", lambda: self._db.write(lambda c: c.execute(
            "DELETE FROM queue_messages WHERE id = ? AND receipt = ?", (int(delivery.message_id), delivery.receipt))))

    def extend(self, delivery: Delivery, visibility_timeout_s: float) -> Delivery:
        receipt = uuid.uuid4().hex
        changed = self._call("extend on", lambda: self._db.write(lambda c: c.execute(
            "UPDATE queue_messages SET visible_at = ?, receipt = ? WHERE id = ? AND receipt = ?",
            (time.time() + visibility_timeout_s, receipt, int(delivery.message_id), delivery.receipt)).rowcount))
        if changed != 1:
            raise TransientError(f"extend on queue {self.name}: receipt is stale")
        return Delivery(delivery.message_id, receipt, delivery.dequeue_count, delivery.body)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        def move(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT body, dequeue_count FROM queue_messages WHERE id = ? AND receipt = ?",
                               (int(delivery.message_id), delivery.receipt)).fetchone()
            if row is None:
                return  # gone or re-delivered since: the current holder decides
            conn.execute("INSERT OR REPLACE INTO queue_dead_letters VALUES (?, ?, ?, ?, ?, ?)",
                         (self.job, self.slot, delivery.message_id, row[0], reason[:MAX_REASON_CHARS], row[1]))
            conn.execute("DELETE FROM queue_messages WHERE id = ?", (int(delivery.message_id),))

        self._call("dead-letter on", lambda: self._db.write(move))

    def dead_letters(self) -> list[DeadLetter]:
        rows = self._call("read dead letters of", lambda: self._db.connection().execute(
            "SELECT message_id, body, reason, dequeue_count FROM queue_dead_letters"
            " WHERE job = ? AND slot = ? ORDER BY CAST(message_id AS INTEGER)", (self.job, self.slot)).fetchall())
        return [DeadLetter(message_id=m, body=b, reason=r, dequeue_count=n) for m, b, r, n in rows]

    def depth(self) -> int:
        (count,) = self._call("count", lambda: self._db.connection().execute(
            "SELECT COUNT(*) FROM queue_messages WHERE job = ? AND slot = ?", (self.job, self.slot)).fetchone())
        return int(count)

    def destroy(self) -> None:
        def drop(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM queue_messages WHERE job = ? AND slot = ?", (self.job, self.slot))
            conn.execute("DELETE FROM queue_dead_letters WHERE job = ? AND slot = ?", (self.job, self.slot))

        self._call("destroy", lambda: self._db.write(drop))


class SqliteQueueFactory:
    def __init__(self, db_path: str, job: str) -> None:
        self._db = _Database(db_path)
        self.job = job

    def queue(self, slot: int) -> SqliteWorkQueue:
        return SqliteWorkQueue(self._db.path, self.job, slot, _db=self._db)
