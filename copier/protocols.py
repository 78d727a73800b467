"""The four protocols every backend implements; the roles are written against these only.

Each method's docstring is its contract; implementations do not repeat it. One contract
test suite per protocol (tests/contract/) runs against every implementation.

Frontier and StateStore of one job live in the same store (Redis or one SQLite file):
``Frontier.commit`` updates the intake and the counters in the same atomic step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from copier.models import (
    Batch,
    BatchOutcome,
    Counters,
    DeadLetter,
    Delivery,
    DirLease,
    Failure,
    JobSpec,
    ListingPage,
    SlotInfo,
    WorkItem,
)


class Frontier(Protocol):
    """Directory nodes still to be listed: a stack (DFS) or a queue (BFS), with leases."""

    def seed_root(self) -> bool:
        """Put the root node ``""`` on the frontier unless the walk was already seeded.
        Returns True if this call seeded it. Counts the root in ``dirs_total``."""

    def claim(self, owner: str, lease_s: float) -> DirLease | None:
        """Take the next node (top of stack for DFS, head of queue for BFS) under a lease.
        Returns None when no node is available right now (others may still be leased)."""

    def renew(self, lease: DirLease, lease_s: float) -> bool:
        """Extend a held lease. False if it was lost (expired and taken by someone else)."""

    def commit(self, lease: DirLease, page: ListingPage) -> bool:
        """Atomically, in one step: push ``page.subdirs`` as new nodes (counting them in
        ``dirs_total``), append ``page.files`` to the intake (counting ``files_total`` and
        ``bytes_total``), record ``page.failures``, and either advance the lease's node to
        ``page.cursor`` (more pages follow) or, when ``page.last``, drop the node and count it
        in ``dirs_done``. Returns False and changes nothing if the lease is no longer held, so
        a page is never committed twice."""

    def release(self, lease: DirLease) -> None:
        """Give a node back to the frontier unlisted (graceful stop). No error if lost."""

    def requeue_expired(self) -> int:
        """Return nodes whose lease ran out to the frontier; returns how many."""

    def exhausted(self) -> bool:
        """True when no node is waiting or leased: the walk is finished."""


@runtime_checkable
class ChainingFrontier(Protocol):
    """Optional: a Frontier that hands on directories and takes the next ones in one step (on a
    tree of small folders, one round trip per several directories instead of two per
    directory). Both backends have it."""

    def commit_and_claim(self, lease: DirLease, page: ListingPage, owner: str,
                         lease_s: float) -> tuple[bool, DirLease | None]:
        """``commit(lease, page)`` for the last page of a node, then, in the same atomic step
        and only if that commit took effect, ``claim(owner, lease_s)``. Returns
        ``(committed, next_lease)``: ``(False, None)`` when the lease is no longer held, which
        changes nothing and claims nothing; ``(True, None)`` when committed but no node is
        waiting. The next node is the one ``claim`` would take right after the commit (for
        DFS, the first subdirectory the page listed, if any). Raises ValueError if
        ``page.last`` is false."""

    def commit_many(self, commits: Sequence[tuple[DirLease, ListingPage]], owner: str, lease_s: float,
                    claim: int) -> tuple[list[bool], list[DirLease]]:
        """In one atomic step: ``commit`` each ``(lease, page)`` in turn, then, only if every one
        took effect, claim up to ``claim`` nodes for ``owner`` — the ones that many ``claim``
        calls would take right after. Returns the commits' results in order (False: the lease
        was no longer held and nothing of that page changed) and the new leases (fewer than
        ``claim`` when fewer nodes wait). Each lease may appear once, and at most 1,000 commits
        and claims go in one call (else ValueError); pages need not be last pages."""


class StateStore(Protocol):
    """Job spec, counters, intake dealing, worker slots, failures. Every method is idempotent
    where the docstring says so; the roles rely on it to survive being killed anywhere."""

    def register(self, spec: JobSpec) -> JobSpec:
        """Create the job, or return the existing spec if equal in job/source/target.
        Raises ``JobMismatch`` if the job exists with another source or target."""

    def spec(self) -> JobSpec | None:
        """The registered spec, or None if the job does not exist."""

    def counters(self) -> Counters:
        """A consistent snapshot of the counters."""

    # -- intake and dealing ---------------------------------------------------------------
    def take_batch(self, slot: int, max_items: int, max_cost: int, per_file: int, per_byte: float,
                   *, max_bytes: int | None = None) -> Batch | None:
        """Atomically pop up to ``max_items`` items from the intake (stopping before the
        batch's cost would pass ``max_cost``, or, when ``max_bytes`` is given, before the sum
        of its items' encoded sizes would pass ``max_bytes``, but always taking at least one),
        allocate a fresh batch id, record the batch as *pending* for ``slot``, add its cost to
        the slot's ``assigned_cost`` and count it in ``batches_dealt``. None if the intake is
        empty.

        An item's encoded size bounds its entry ``["<path>",size,mtime_ns,mode,verify],`` in
        ``Batch.encode``'s JSON, escapes counted at their worst: with
        ``p = path.encode("utf-8", "surrogateescape")`` it is ``len(p)``, plus 5 for every byte
        of ``p`` below 0x20 (a 6-byte ``\\u00XX``), plus 1 for every ``"`` or ``\\`` in ``p``,
        plus the digits of ``size``, ``mtime_ns`` and ``mode`` (with any ``-``), plus 10."""

    def pending_batches(self) -> list[Batch]:
        """Batches taken but not yet marked sent (a controller died in between)."""

    def mark_sent(self, batch_id: str) -> None:
        """The batch is on its queue; forget the pending record. Idempotent."""

    def reassign(self, batch: Batch, slot: int) -> Batch:
        """Move a pending batch's cost from its slot to ``slot``; returns the updated batch."""

    def complete_batch(self, outcome: BatchOutcome) -> bool:
        """Record one complete attempt at a batch: counters, the slot's ``done_cost``,
        ``files_done``/``bytes_done``, failures, ``batches_completed``. Only the first call
        for a batch id has any effect; returns True for that one."""

    # -- worker slots ---------------------------------------------------------------------
    def claim_slot(self, worker: str, lease_s: float, prefer: int | None = None) -> int:
        """Lease a slot for ``worker``: ``prefer`` if it is free or expired, else the lowest
        free or expired slot, else a new one. Returns the slot number."""

    def renew_slot(self, slot: int, worker: str, lease_s: float) -> bool:
        """Extend the lease and ``last_seen``. False if another worker holds it now."""

    def release_slot(self, slot: int, worker: str) -> None:
        """Drop the lease if ``worker`` holds it (graceful stop)."""

    def take_over_slot(self, slot: int, worker: str, lease_s: float, dead_holder: str | None = None) -> bool:
        """Lease ``slot`` for ``worker`` only if it is free or expired, or still held by
        ``dead_holder`` (a worker the caller knows has died). True on success."""

    def slots(self) -> list[SlotInfo]:
        """Every slot ever claimed in this job, by slot number."""

    # -- failures -------------------------------------------------------------------------
    def record_failures(self, failures: Sequence[Failure]) -> None:
        """Add or replace failure records, keyed by path. Does not touch counters."""

    def failures(self, limit: int | None = None) -> list[Failure]:
        """Failure records, sorted by path."""

    def record_dead_letter(self, letter: DeadLetter) -> None:
        """Keep a message that could not be processed. Idempotent by message id."""

    def dead_letters(self) -> list[DeadLetter]:
        ...

    def close(self) -> None:
        ...


class WorkQueue(Protocol):
    """One worker slot's queue of batch messages. At-least-once: a delivery that is not
    deleted before its visibility timeout comes back with a higher ``dequeue_count``."""

    name: str

    def create(self) -> None:
        """Make the queue if missing. No error if it exists."""

    def put(self, body: str) -> None:
        """Append one message (at most 64 KiB of text)."""

    def receive(self, max_messages: int, visibility_timeout_s: float) -> list[Delivery]:
        """Up to ``max_messages`` (≤ 32) visible messages, hidden from others for
        ``visibility_timeout_s``. An empty list when none is visible; never blocks long."""

    def delete(self, delivery: Delivery) -> None:
        """Remove a received message. No error if it is already gone; if the receipt is
        stale (the message was re-delivered since), the message stays."""

    def extend(self, delivery: Delivery, visibility_timeout_s: float) -> Delivery:
        """Keep the message hidden for ``visibility_timeout_s`` more; returns the delivery
        with its new receipt. Raises ``TransientError`` if the receipt is stale."""

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to this queue's dead-letter store and delete it here."""

    def dead_letters(self) -> list[DeadLetter]:
        ...

    def depth(self) -> int:
        """Approximate number of messages, visible or not."""

    def destroy(self) -> None:
        """Delete the queue and its dead letters. No error if missing."""


@runtime_checkable
class QueueFactory(Protocol):
    def queue(self, slot: int) -> WorkQueue:
        """The queue of one slot of this job (names are namespaced by job)."""


# -- targets ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TargetStat:
    """What the target holds under a name. ``mtime_ns`` is the source mtime that copier
    recorded when it wrote the object (None if the object was not written by copier and
    the target has no comparable time)."""

    name: str
    size: int
    mtime_ns: int | None


class Payload(Protocol):
    """The bytes of one file, read from the source while they are sent.

    ``chunks()`` reads from the start each time it is called. It raises ``SourceChanged``
    (possibly after the last chunk) if the file vanished or changed while read: a target must
    then leave nothing under the final name. ``md5`` is the MD5 of the whole content; it is
    available up front when ``size <= small_limit`` (the whole file is in ``data``) and after
    ``chunks()`` is exhausted otherwise; ``md5_ahead()`` reads a large file once to learn it
    before sending (``chunks(digest=False)`` then skips hashing it again)."""

    size: int
    mtime_ns: int
    mode: int
    data: bytes | None  # the whole content when small, else None

    def chunks(self, chunk_size: int, digest: bool = True) -> Iterator[bytes]: ...

    def md5(self) -> bytes: ...

    def md5_ahead(self) -> bytes: ...


class Target(Protocol):
    """Where files land. Paths are relative to the target's root, ``/``-separated."""

    url: str  # for logs and status: no secret in it
    has_directories: bool
    mtime_tolerance_ns: int  # how far stat().mtime_ns may differ from the one written

    def check(self) -> None:
        """Verify the target can be reached and written (create the container or share if
        missing). Raises a FatalError (BackendUnavailable, AuthenticationFailed) if not."""

    def stat(self, path: str) -> TargetStat | None:
        """What is stored under ``path``, or None if nothing is."""

    def put(self, path: str, payload: Payload) -> None:
        """Store ``payload`` under ``path``, replacing what is there. Nothing partial is ever
        visible under ``path``. Missing parent directories are created. Records the source
        mtime (and mode where the target can hold it) so ``stat`` returns it."""

    def make_dir(self, path: str) -> None:
        """Create a directory and its missing parents. No error if it exists. No-op on
        targets without directories."""

    def flush(self) -> None:
        """Make every ``put`` that has returned durable; called before a batch is acknowledged.
        Raises a TransientError if that cannot be ensured. A no-op where a put is durable
        once the service has answered (Blob, Files)."""

    def close(self) -> None:
        ...


@runtime_checkable
class Lister(Protocol):
    """Optional: list one directory's files in one or a few calls (for skip checks)."""

    def list_files(self, dir_path: str) -> Iterable[TargetStat]:
        """Files directly under ``dir_path`` (names only, not paths). Empty if missing."""

    def is_empty(self) -> bool:
        """True if nothing at all is stored under the target's root (or it does not exist):
        a walk into an empty target needs no per-file checks."""


@runtime_checkable
class Sweeper(Protocol):
    """Optional: targets that write aside under temporary names (local, Azure Files)."""

    def sweep(self, path: str) -> int:
        """Remove temporary leftovers of earlier, interrupted attempts at ``path`` (a worker
        killed mid-write leaves one). Never touches ``path`` itself. Returns how many."""
