"""The values that travel between the roles. All are frozen; none holds a connection.

Paths are always relative to the job's source root, ``/``-separated, never starting
with ``/``; the root directory itself is ``""``.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field
from enum import StrEnum

from copier.errors import PoisonMessage


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One regular file to copy, as the seeder found it."""

    path: str
    size: int
    mtime_ns: int
    mode: int
    # True when the target already held files in this item's directory at seed time: the
    # worker then checks the target (stat) before sending, and skips a match. False means
    # the directory was empty or missing there, so the first delivery writes without a look.
    verify: bool = False

    def cost(self, per_file: int, per_byte: float) -> int:
        return per_file + int(self.size * per_byte)


@dataclass(frozen=True, slots=True)
class DirNode:
    """One directory waiting on the frontier. ``cursor`` is empty, or the last name committed
    by earlier pages of a directory whose listing was interrupted (pages go in name order,
    so a directory changed in between is neither skipped nor listed twice)."""

    path: str
    cursor: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    """A visible record of something not copied, and why. Keyed by ``path``: recording the
    same path again replaces the record (idempotent)."""

    path: str
    reason: str
    kind: str = "file"  # file | dir | symlink | special | message


@dataclass(frozen=True, slots=True)
class ListingPage:
    """What one page of one directory's listing hands on, committed as one unit."""

    subdirs: tuple[str, ...]
    files: tuple[WorkItem, ...]
    failures: tuple[Failure, ...] = ()
    # The last name this page covers (the next page starts after it), as encode_cursor gives it.
    cursor: str = ""
    # True when this page ends the directory's listing.
    last: bool = True


def encode_cursor(name: str) -> str:
    """A name as a cursor: hex, so it holds no separator and never looks like a number."""
    return "x" + name.encode("utf-8", "surrogateescape").hex()


def decode_cursor(cursor: str) -> str | None:
    """The name a cursor stands for, or None for the start of the directory."""
    if not cursor:
        return None
    return bytes.fromhex(cursor[1:]).decode("utf-8", "surrogateescape")


class Order(StrEnum):
    DFS = "dfs"
    BFS = "bfs"


class Phase(StrEnum):
    SEEDING = "seeding"
    COPYING = "copying"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job is. Registering a job twice with a different spec is an error."""

    job: str
    source: str  # absolute path of the source root
    target: str  # target URL with any secret removed
    order: Order = Order.DFS

    def to_dict(self) -> dict[str, str]:
        return {"job": self.job, "source": self.source, "target": self.target, "order": str(self.order)}

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> "JobSpec":
        return cls(job=d["job"], source=d["source"], target=d["target"], order=Order(d.get("order", "dfs")))


@dataclass(frozen=True, slots=True)
class Batch:
    """Several work items dealt to one worker slot as one queue message.

    ``id`` is allocated by the state store when the batch is taken from the intake and never
    reused; a batch delivered twice is recognised by it and counted once."""

    id: str
    slot: int
    items: tuple[WorkItem, ...]
    cost: int = 0

    def encode(self) -> str:
        """Compact, queue-safe text: base64 of zlib-compressed JSON (any file name survives
        the XML of Azure Queues, control characters included)."""
        doc = {"v": 1, "id": self.id, "s": self.slot, "c": self.cost,
               "i": [[it.path, it.size, it.mtime_ns, it.mode, int(it.verify)] for it in self.items]}
        raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogateescape")
        return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")

    @classmethod
    def decode(cls, text: str | bytes) -> "Batch":
        try:
            raw = zlib.decompress(base64.b64decode(text, validate=True))
            doc = json.loads(raw.decode("utf-8", "surrogateescape"))
            if doc.get("v") != 1:
                raise ValueError(f"unknown message version {doc.get('v')!r}")
            items = tuple(WorkItem(str(r[0]), int(r[1]), int(r[2]), int(r[3]), bool(r[4]) if len(r) > 4 else False)
                          for r in doc["i"])
            return cls(id=str(doc["id"]), slot=int(doc["s"]), items=items, cost=int(doc.get("c", 0)))
        except (binascii.Error, zlib.error, ValueError, KeyError, TypeError) as exc:
            raise PoisonMessage(f"undecodable batch message: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Delivery:
    """One receipt of one queue message. ``receipt`` proves the holder may delete or extend it;
    ``dequeue_count`` is 1 on the first delivery."""

    message_id: str
    receipt: str
    dequeue_count: int
    body: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str
    dequeue_count: int


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one complete attempt at a batch achieved; recorded once per batch id."""

    batch_id: str
    slot: int
    cost: int
    files_done: int = 0
    bytes_done: int = 0
    files_skipped: int = 0
    bytes_skipped: int = 0
    files_failed: int = 0
    failures: tuple[Failure, ...] = ()


DRAIN_SUFFIX = "~drain"


def drain_holder(worker: str) -> str:
    """The name a worker holds a slot under while it only drains it (the slot's own worker
    died). Any worker that needs a slot may claim a slot held so: a worker started again after
    a kill, or one joining, takes the dead one's slot, its queue and its place in the levelling,
    instead of opening one more slot."""
    return worker + DRAIN_SUFFIX


@dataclass(frozen=True, slots=True)
class SlotInfo:
    """A worker slot: one work queue and the lease on it."""

    slot: int
    holder: str | None  # worker id holding the lease, None when free or expired
    lease_expires_at: float  # unix seconds; 0 when never held
    assigned_cost: int = 0
    done_cost: int = 0
    files_done: int = 0
    bytes_done: int = 0
    last_seen: float = 0.0  # unix seconds of the last renewal

    def live(self, now: float) -> bool:
        return self.holder is not None and self.lease_expires_at > now


@dataclass(frozen=True, slots=True)
class Counters:
    dirs_total: int = 0
    dirs_done: int = 0
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    files_skipped: int = 0
    bytes_skipped: int = 0
    files_failed: int = 0
    entries_failed: int = 0  # non-file entries recorded as failures (symlinks, specials, dirs)
    batches_dealt: int = 0
    batches_completed: int = 0
    items_waiting: int = 0  # in the intake, not yet dealt

    @property
    def files_settled(self) -> int:
        return self.files_done + self.files_skipped + self.files_failed

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class DirLease:
    """A directory node claimed by one seeder until ``expires_at`` (unix seconds)."""

    node: DirNode
    owner: str
    token: str
    expires_at: float = 0.0
    extra: dict = field(default_factory=dict, compare=False, hash=False)
