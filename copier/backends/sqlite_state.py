"""StateStore in one SQLite file (the embedded default); the same semantics as on Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from copier.backends.codec import SEP, check_same_job, decode_failure, decode_item, decode_items, failure_args
from copier.backends.sqlite_db import COUNTER_COLUMNS, SqliteDb, bump, record_failures, touch_slot
from copier.errors import ConfigError
from copier.models import DRAIN_SUFFIX, Batch, BatchOutcome, Counters, DeadLetter, Failure, JobSpec, SlotInfo

_SLOT_COLUMNS = "slot, holder, expires_at, assigned_cost, done_cost, files_done, bytes_done, last_seen"


class SqliteStateStore:
    def __init__(self, db_path: str | Path, job: str) -> None:
        self.job = job
        self.db = SqliteDb(db_path)

    def register(self, spec: JobSpec) -> JobSpec:
        if spec.job != self.job:
            raise ConfigError(f"spec for job {spec.job!r} given to the store of job {self.job!r}")
        with self.db.write() as conn:
            row = conn.execute("SELECT spec FROM job_spec WHERE job = ?", (self.job,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO job_spec (job, spec) VALUES (?, ?)", (self.job, json.dumps(spec.to_dict())))
                return spec
        return check_same_job(JobSpec.from_dict(json.loads(row[0])), spec)

    def spec(self) -> JobSpec | None:
        rows = self.db.query("SELECT spec FROM job_spec WHERE job = ?", (self.job,))
        return JobSpec.from_dict(json.loads(rows[0][0])) if rows else None

    def counters(self) -> Counters:
        rows = self.db.query(f"SELECT {', '.join(COUNTER_COLUMNS)} FROM job_counters WHERE job = ?", (self.job,))
        return Counters(**dict(zip(COUNTER_COLUMNS, rows[0]))) if rows else Counters()

    # -- intake and dealing ---------------------------------------------------------------
    def take_batch(self, slot: int, max_items: int, max_cost: int, per_file: int, per_byte: float,
                   *, max_bytes: int | None = None) -> Batch | None:
        with self.db.write() as conn:
            rows = conn.execute("SELECT id, size, item FROM intake_items WHERE job = ? ORDER BY id LIMIT ?",
                                (self.job, max(1, max_items))).fetchall()
            if not rows:
                return None
            cost, nbytes, taken = 0, 0, []
            for row_id, size, raw in rows:
                item_cost = per_file + int(size * per_byte)
                item_bytes = 0 if max_bytes is None else _encoded_size(raw)
                too_big = max_bytes is not None and nbytes + item_bytes > max_bytes
                if taken and (cost + item_cost > max_cost or too_big):
                    break
                cost, nbytes, last_id = cost + item_cost, nbytes + item_bytes, row_id
                taken.append(raw)
            conn.execute("DELETE FROM intake_items WHERE job = ? AND id <= ?", (self.job, last_id))
            bump(conn, self.job, batches_dealt=1, items_waiting=-len(taken), batch_seq=1)
            (seq,) = conn.execute("SELECT batch_seq FROM job_counters WHERE job = ?", (self.job,)).fetchone()
            batch = Batch(id=f"b{seq}", slot=slot, items=tuple(decode_item(r) for r in taken), cost=cost)
            conn.execute("INSERT INTO batch_pending (job, id, seq, slot, cost, items) VALUES (?, ?, ?, ?, ?, ?)",
                         (self.job, batch.id, seq, slot, cost, SEP.join(taken)))
            touch_slot(conn, self.job, slot)
            conn.execute("UPDATE slot_leases SET assigned_cost = assigned_cost + ? WHERE job = ? AND slot = ?",
                         (cost, self.job, slot))
        return batch

    def pending_batches(self) -> list[Batch]:
        rows = self.db.query("SELECT id, slot, cost, items FROM batch_pending WHERE job = ? ORDER BY seq", (self.job,))
        return [Batch(id=i, slot=s, items=decode_items(items), cost=c) for i, s, c, items in rows]

    def mark_sent(self, batch_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM batch_pending WHERE job = ? AND id = ?", (self.job, batch_id))

    def reassign(self, batch: Batch, slot: int) -> Batch:
        with self.db.write() as conn:
            row = conn.execute("SELECT slot, cost FROM batch_pending WHERE job = ? AND id = ?",
                               (self.job, batch.id)).fetchone()
            if row is None:
                return replace(batch, slot=slot)
            old, cost = row
            if old != slot:
                touch_slot(conn, self.job, slot)
                move = "UPDATE slot_leases SET assigned_cost = assigned_cost + ? WHERE job = ? AND slot = ?"
                conn.executemany(move, [(-cost, self.job, old), (cost, self.job, slot)])
                conn.execute("UPDATE batch_pending SET slot = ? WHERE job = ? AND id = ?", (slot, self.job, batch.id))
        return replace(batch, slot=slot, cost=cost)

    def complete_batch(self, outcome: BatchOutcome) -> bool:
        o = outcome
        with self.db.write() as conn:
            new = conn.execute("INSERT OR IGNORE INTO batch_done (job, id) VALUES (?, ?)", (self.job, o.batch_id))
            if new.rowcount == 0:
                return False
            bump(conn, self.job, files_done=o.files_done, bytes_done=o.bytes_done, files_skipped=o.files_skipped,
                 bytes_skipped=o.bytes_skipped, files_failed=o.files_failed, batches_completed=1)
            touch_slot(conn, self.job, o.slot)
            conn.execute("UPDATE slot_leases SET done_cost = done_cost + ?, files_done = files_done + ?, "
                         "bytes_done = bytes_done + ? WHERE job = ? AND slot = ?",
                         (o.cost, o.files_done, o.bytes_done, self.job, o.slot))
            record_failures(conn, self.job, _pairs(o.failures))
        return True

    # -- worker slots ---------------------------------------------------------------------
    def claim_slot(self, worker: str, lease_s: float, prefer: int | None = None) -> int:
        with self.db.write() as conn:
            now = time.time()
            rows = conn.execute("SELECT slot, holder, expires_at FROM slot_leases WHERE job = ? ORDER BY slot",
                                (self.job,)).fetchall()
            table = {slot: (holder, expires) for slot, holder, expires in rows}
            free = [s for s, (holder, expires) in table.items() if _claimable(holder, expires, worker, now)]
            own = [s for s, (holder, expires) in table.items() if holder == worker and expires > now]
            if prefer is not None and (prefer not in table or prefer in free):
                slot = prefer
            else:
                slot = (own or free or [max(table, default=-1) + 1])[0]
            _take(conn, self.job, slot, worker, now, lease_s)
        return slot

    def renew_slot(self, slot: int, worker: str, lease_s: float) -> bool:
        with self.db.write() as conn:
            row = conn.execute("SELECT holder FROM slot_leases WHERE job = ? AND slot = ?", (self.job, slot)).fetchone()
            if row is None or row[0] != worker:
                return False
            _take(conn, self.job, slot, worker, time.time(), lease_s)
        return True

    def release_slot(self, slot: int, worker: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE slot_leases SET holder = '', expires_at = 0 WHERE job = ? AND slot = ? AND holder = ?",
                         (self.job, slot, worker))

    def take_over_slot(self, slot: int, worker: str, lease_s: float, dead_holder: str | None = None) -> bool:
        with self.db.write() as conn:
            now = time.time()
            row = conn.execute("SELECT holder, expires_at FROM slot_leases WHERE job = ? AND slot = ?",
                               (self.job, slot)).fetchone()
            if row is not None and not _claimable(row[0], row[1], worker, now) and not (dead_holder and row[0] == dead_holder):
                return False
            _take(conn, self.job, slot, worker, now, lease_s)
        return True

    def slots(self) -> list[SlotInfo]:
        rows = self.db.query(f"SELECT {_SLOT_COLUMNS} FROM slot_leases WHERE job = ? ORDER BY slot", (self.job,))
        now = time.time()
        return [SlotInfo(slot=s, holder=h if h and exp > now else None, lease_expires_at=exp, assigned_cost=a,
                         done_cost=d, files_done=fd, bytes_done=bd, last_seen=seen)
                for s, h, exp, a, d, fd, bd, seen in rows]

    # -- failures -------------------------------------------------------------------------
    def record_failures(self, failures: Sequence[Failure]) -> None:
        if failures:
            with self.db.write() as conn:
                record_failures(conn, self.job, _pairs(failures))

    def failures(self, limit: int | None = None) -> list[Failure]:
        rows = self.db.query("SELECT path, record FROM failure_records WHERE job = ? ORDER BY path LIMIT ?",
                             (self.job, -1 if limit is None else max(0, limit)))
        return [decode_failure(path, record) for path, record in rows]

    def record_dead_letter(self, letter: DeadLetter) -> None:
        record = json.dumps({"body": letter.body, "reason": letter.reason, "count": letter.dequeue_count})
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO dead_letters (job, message_id, record) VALUES (?, ?, ?)",
                         (self.job, letter.message_id, record))

    def dead_letters(self) -> list[DeadLetter]:
        rows = self.db.query("SELECT message_id, record FROM dead_letters WHERE job = ? ORDER BY message_id",
                             (self.job,))
        return [DeadLetter(mid, (d := json.loads(r))["body"], d["reason"], int(d["count"])) for mid, r in rows]

    def close(self) -> None:
        self.db.close()


_CONTROL = bytes(range(0x20))


def _encoded_size(raw: bytes) -> int:
    """The encoded size (protocols.StateStore.take_batch) of an item stored as ``raw``
    (codec.encode_item: ``<size>\\t<mtime_ns>\\t<mode>\\t<verify>\\t<path>``). Its JSON entry
    ``["<path>",<size>,<mtime_ns>,<mode>,<verify>],`` has the same digits and path and 5 bytes
    more of punctuation, plus 5 per control byte of the path (the 4 tabs are not the path's)
    and 1 per ``"`` or ``\\`` in it. The same sum as the Lua of the Redis store."""
    control = len(raw) - len(raw.translate(None, _CONTROL)) - 4
    return len(raw) + 5 + 5 * control + raw.count(b'"') + raw.count(b"\\")


def _pairs(failures: Sequence[Failure]) -> list[tuple[bytes, bytes]]:
    flat = failure_args(failures)
    return list(zip(flat[::2], flat[1::2]))


def _claimable(holder: str, expires_at: float, worker: str, now: float) -> bool:
    return not holder or holder == worker or expires_at <= now or holder.endswith(DRAIN_SUFFIX)


def _take(conn, job: str, slot: int, worker: str, now: float, lease_s: float) -> None:
    touch_slot(conn, job, slot)
    conn.execute("UPDATE slot_leases SET holder = ?, expires_at = ?, last_seen = ? WHERE job = ? AND slot = ?",
                 (worker, now + lease_s, now, job, slot))


def _job_tables(conn) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return [name for (name,) in rows
            if any(col[1] == "job" for col in conn.execute(f"PRAGMA table_info({name})").fetchall())]


def recover_embedded(store: SqliteStateStore) -> None:
    """For the one process of an embedded job starting again after a crash: whatever the dead
    run held — directory leases, slot leases, hidden queue messages — is free again at once,
    instead of after its timeouts."""
    with store.db.write() as conn:
        tables = set(_job_tables(conn))
        conn.execute("UPDATE frontier_leases SET expires_at = 0 WHERE job = ?", (store.job,))
        conn.execute("UPDATE slot_leases SET expires_at = 0 WHERE job = ?", (store.job,))
        if "queue_messages" in tables:
            conn.execute("UPDATE queue_messages SET visible_at = 0 WHERE job = ?", (store.job,))


def purge_job(store: SqliteStateStore) -> None:
    """Forget everything of this job in the file (other jobs in the same file are kept)."""
    with store.db.write() as conn:
        for table in _job_tables(conn):
            conn.execute(f"DELETE FROM {table} WHERE job = ?", (store.job,))
