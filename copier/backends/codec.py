"""Compact byte encodings shared by the Redis and SQLite state backends.

Paths are ``str`` that may hold lone surrogates (undecodable bytes from ``os.fsdecode``);
they are stored as UTF-8 with ``surrogateescape``, so every name survives the round trip.

- a work item is ``b"<size>\\t<mtime_ns>\\t<mode>\\t<verify 0|1>\\t<path>"``: the size
  comes first so a Lua script can price an item without decoding it, and the path comes
  last so it may contain any character (a path never contains NUL);
- a directory node is ``b"<cursor>\\t<path>"`` (the cursor is ``x<hex>`` or empty, never a tab);
- several items travel together joined by NUL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from copier.errors import JobMismatch
from copier.models import Batch, DirLease, DirNode, Failure, JobSpec, ListingPage, WorkItem

SEP = b"\0"


def path_bytes(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def path_str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def encode_item(item: WorkItem) -> bytes:
    if item.size < 0:
        raise ValueError(f"negative size for {item.path!r}")
    return b"%d\t%d\t%d\t%d\t" % (item.size, item.mtime_ns, item.mode, item.verify) + path_bytes(item.path)


def decode_item(raw: bytes) -> WorkItem:
    size, mtime_ns, mode, verify, path = raw.split(b"\t", 4)
    return WorkItem(path_str(path), int(size), int(mtime_ns), int(mode), verify == b"1")


def encode_items(items: Iterable[WorkItem]) -> bytes:
    return SEP.join(encode_item(it) for it in items)


def decode_items(raw: bytes) -> tuple[WorkItem, ...]:
    return tuple(decode_item(part) for part in raw.split(SEP)) if raw else ()


def encode_node(node: DirNode) -> bytes:
    return node.cursor.encode("ascii") + b"\t" + path_bytes(node.path)


def decode_node(raw: bytes) -> DirNode:
    cursor, path = raw.split(b"\t", 1)
    return DirNode(path_str(path), cursor.decode("ascii"))


def child_path(parent: str, name: str) -> str:
    """The path of a listed subdirectory: ``ListingPage.subdirs`` may hold paths relative to
    the root or bare names (a bare name never holds ``/``, a child's path below the root
    always does, so the two cannot be confused)."""
    if not parent or "/" in name:
        return name
    return f"{parent}/{name}"


# Commits and claims in one ``Frontier.commit_many`` call (Lua's ``unpack`` holds about 8,000
# values; a claim takes two).
COMMIT_MANY_MAX = 1000


def check_commit_many(commits: Sequence[tuple[DirLease, ListingPage]], claim: int) -> None:
    """The arguments of ``Frontier.commit_many`` both backends refuse (ValueError)."""
    if len({lease.token for lease, _ in commits}) != len(commits):
        raise ValueError("commit_many takes each lease once")
    if len(commits) > COMMIT_MANY_MAX or claim > COMMIT_MANY_MAX:
        raise ValueError(f"commit_many takes at most {COMMIT_MANY_MAX} commits and claims")


def encode_failure(failure: Failure) -> bytes:
    """The value of a failure record (the path is its key)."""
    return json.dumps({"reason": failure.reason, "kind": failure.kind}).encode("ascii")


def decode_failure(path: bytes, raw: bytes) -> Failure:
    doc = json.loads(raw)
    return Failure(path_str(path), doc["reason"], doc.get("kind", "file"))


def failure_args(failures: Iterable[Failure]) -> list[bytes]:
    """Failures as flat (path, record) pairs, the last ones winning for a repeated path."""
    records = {path_bytes(f.path): encode_failure(f) for f in failures}
    return [part for pair in records.items() for part in pair]


def pending_order(batch: Batch) -> tuple[int, str]:
    """Pending batches in the order they were taken (ids are ``b<seq>``)."""
    digits = batch.id[1:]
    return (int(digits), "") if digits.isdigit() else (-1, batch.id)


def _shown(value: str) -> str:
    """A source or target for an error message: no user, password, query (SAS) or fragment."""
    parts = urlsplit(value)
    if not parts.netloc:
        return value
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_same_job(existing: JobSpec, wanted: JobSpec) -> JobSpec:
    """The registered spec if ``wanted`` names the same job, source and target, else JobMismatch."""
    for name in ("job", "source", "target"):
        old, new = getattr(existing, name), getattr(wanted, name)
        if old != new:
            raise JobMismatch(f"job {existing.job!r} exists with another {name}: "
                              f"registered {_shown(old)!r}, asked {_shown(new)!r}")
    return existing
