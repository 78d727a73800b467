"""Frontier in one SQLite file: nodes ordered by ``pos``, claimed from the lowest.

DFS gives new nodes positions below the lowest (a stack, in listed order), BFS above the
highest (a queue); a node given back (released or expired) goes to the front. A claimed
node moves into ``frontier_leases``; a page is committed in one transaction.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from copier.backends.codec import check_commit_many, child_path, encode_item, failure_args, path_bytes, path_str
from copier.backends.sqlite_db import SqliteDb, bump, record_failures
from copier.models import DirLease, DirNode, ListingPage, Order


class SqliteFrontier:
    def __init__(self, db_path: str | Path, job: str, order: Order) -> None:
        self.job, self.order = job, Order(order)
        self.db = SqliteDb(db_path)

    def seed_root(self) -> bool:
        with self.db.write() as conn:
            bump(conn, self.job)
            updated = conn.execute("UPDATE job_counters SET seeded = 1, dirs_total = dirs_total + 1 "
                                   "WHERE job = ? AND seeded = 0", (self.job,))
            if updated.rowcount == 0:
                return False
            self._push_front(conn, [(b"", "")])
        return True

    def claim(self, owner: str, lease_s: float) -> DirLease | None:
        with self.db.write() as conn:
            return self._claim(conn, owner, lease_s)

    def _claim(self, conn: sqlite3.Connection, owner: str, lease_s: float) -> DirLease | None:
        token = uuid.uuid4().hex
        row = conn.execute("SELECT id, path, cursor FROM frontier_nodes WHERE job = ? ORDER BY pos LIMIT 1",
                           (self.job,)).fetchone()
        if row is None:
            return None
        node_id, path, cursor = row
        expires_at = time.time() + lease_s
        conn.execute("DELETE FROM frontier_nodes WHERE id = ?", (node_id,))
        conn.execute("INSERT INTO frontier_leases (token, job, owner, cursor, path, expires_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (token, self.job, owner, cursor, path, expires_at))
        return DirLease(node=DirNode(path_str(path), str(cursor)), owner=owner, token=token, expires_at=expires_at)

    def renew(self, lease: DirLease, lease_s: float) -> bool:
        with self.db.write() as conn:
            renewed = conn.execute("UPDATE frontier_leases SET expires_at = ? WHERE token = ? AND job = ?",
                                   (time.time() + lease_s, lease.token, self.job))
        return renewed.rowcount == 1

    def commit(self, lease: DirLease, page: ListingPage) -> bool:
        with self.db.write() as conn:
            return self._commit(conn, lease, page)

    def commit_and_claim(self, lease: DirLease, page: ListingPage, owner: str,
                         lease_s: float) -> tuple[bool, DirLease | None]:
        if not page.last:
            raise ValueError("commit_and_claim takes the last page of a node")
        with self.db.write() as conn:
            if not self._commit(conn, lease, page):
                return False, None
            return True, self._claim(conn, owner, lease_s)

    def commit_many(self, commits: Sequence[tuple[DirLease, ListingPage]], owner: str, lease_s: float,
                    claim: int) -> tuple[list[bool], list[DirLease]]:
        check_commit_many(commits, claim)
        with self.db.write() as conn:
            flags = [self._commit(conn, lease, page) for lease, page in commits]
            leases: list[DirLease] = []
            while all(flags) and len(leases) < claim:
                lease = self._claim(conn, owner, lease_s)
                if lease is None:
                    break
                leases.append(lease)
        return flags, leases

    def _commit(self, conn: sqlite3.Connection, lease: DirLease, page: ListingPage) -> bool:
        held = conn.execute("SELECT 1 FROM frontier_leases WHERE token = ? AND job = ?",
                            (lease.token, self.job)).fetchone()
        if held is None:
            return False
        dirs = [(path_bytes(child_path(lease.node.path, name)), "") for name in page.subdirs]
        if self.order is Order.DFS:
            self._push_front(conn, dirs)
        else:
            self._push_back(conn, dirs)
        conn.executemany("INSERT INTO intake_items (job, size, item) VALUES (?, ?, ?)",
                         [(self.job, f.size, encode_item(f)) for f in page.files])
        flat = failure_args(page.failures)
        record_failures(conn, self.job, list(zip(flat[::2], flat[1::2])))
        bump(conn, self.job, dirs_total=len(dirs), files_total=len(page.files), items_waiting=len(page.files),
             bytes_total=sum(f.size for f in page.files), entries_failed=len(flat) // 2,
             dirs_done=1 if page.last else 0)
        if page.last:
            conn.execute("DELETE FROM frontier_leases WHERE token = ?", (lease.token,))
        else:
            conn.execute("UPDATE frontier_leases SET cursor = ? WHERE token = ?", (page.cursor, lease.token))
        return True

    def release(self, lease: DirLease) -> None:
        with self.db.write() as conn:
            self._requeue(conn, conn.execute("SELECT token, path, cursor FROM frontier_leases WHERE token = ? "
                                             "AND job = ?", (lease.token, self.job)).fetchall())

    def requeue_expired(self) -> int:
        with self.db.write() as conn:
            rows = conn.execute("SELECT token, path, cursor FROM frontier_leases WHERE job = ? AND expires_at <= ? "
                                "ORDER BY expires_at", (self.job, time.time())).fetchall()
            self._requeue(conn, rows)
        return len(rows)

    def exhausted(self) -> bool:
        (seeded, waiting, leased), = self.db.query(
            "SELECT (SELECT seeded FROM job_counters WHERE job = ?), "
            "EXISTS (SELECT 1 FROM frontier_nodes WHERE job = ?), EXISTS (SELECT 1 FROM frontier_leases WHERE job = ?)",
            (self.job, self.job, self.job))
        return bool(seeded) and not waiting and not leased

    def close(self) -> None:
        self.db.close()

    # -- positions ------------------------------------------------------------------------
    def _requeue(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        # Each given-back node goes to the front in turn, as LPUSH does on Redis.
        for token, path, cursor in rows:
            self._push_front(conn, [(path, cursor)])
            conn.execute("DELETE FROM frontier_leases WHERE token = ?", (token,))

    def _push_front(self, conn: sqlite3.Connection, nodes: list[tuple[bytes, str]]) -> None:
        """Put nodes before every waiting node, the first of ``nodes`` frontmost."""
        if nodes:
            (low,) = conn.execute("SELECT MIN(pos) FROM frontier_nodes WHERE job = ?", (self.job,)).fetchone()
            start = (0 if low is None else low) - len(nodes)
            self._insert(conn, start, nodes)

    def _push_back(self, conn: sqlite3.Connection, nodes: list[tuple[bytes, str]]) -> None:
        if nodes:
            (high,) = conn.execute("SELECT MAX(pos) FROM frontier_nodes WHERE job = ?", (self.job,)).fetchone()
            self._insert(conn, (0 if high is None else high) + 1, nodes)

    def _insert(self, conn: sqlite3.Connection, start: int, nodes: list[tuple[bytes, str]]) -> None:
        conn.executemany("INSERT INTO frontier_nodes (job, pos, cursor, path) VALUES (?, ?, ?, ?)",
                         [(self.job, start + i, cursor, path) for i, (path, cursor) in enumerate(nodes)])
