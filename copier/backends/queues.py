"""Choosing a WorkQueue backend, and the few rules all three share.

Bodies are limited to ``MAX_BODY_BYTES`` of UTF-8, 1 KiB under Azure's 64 KiB per message,
so that a dead letter (the body plus a small JSON envelope with the reason) still fits in
one Azure message. The same limit holds on every backend so a batch that fits one fits all.
"""

from __future__ import annotations

import json
import re

from copier.errors import ConfigError
from copier.models import DeadLetter
from copier.protocols import QueueFactory

MAX_BODY_BYTES = 63 * 1024
MAX_REASON_CHARS = 500
MAX_RECEIVE = 32
# Characters XML 1.0 cannot carry, so Azure Queues cannot either (Batch.encode() never makes them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def check_body(body: str) -> None:
    """Raise ValueError for a body every backend could not carry: not str, not encodable as
    UTF-8 (lone surrogates), holding a character XML forbids, or too large."""
    if not isinstance(body, str):
        raise ValueError(f"a queue message body must be str, not {type(body).__name__}")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("a queue message body must be valid Unicode (no lone surrogates)") from None
    bad = _NOT_XML.search(body)
    if bad:
        raise ValueError(f"a queue message body cannot hold the character {bad.group()!r}")
    if size > MAX_BODY_BYTES:
        raise ValueError(f"queue message body of {size} bytes exceeds {MAX_BODY_BYTES}")


def encode_dead_letter(message_id: str, body: str, reason: str, dequeue_count: int) -> str:
    """The JSON envelope a dead letter is kept in (ASCII, so it survives any store)."""
    doc = {"v": 1, "id": message_id, "reason": reason[:MAX_REASON_CHARS], "n": dequeue_count, "body": body}
    return json.dumps(doc, separators=(",", ":"))


def decode_dead_letter(text: str) -> DeadLetter:
    doc = json.loads(text)
    return DeadLetter(message_id=str(doc["id"]), body=doc["body"], reason=doc["reason"], dequeue_count=int(doc["n"]))


def open_queue_factory(
    kind: str,
    *,
    job: str,
    redis_client=None,
    connection_string: str | None = None,
    sqlite_path: str | None = None,
) -> QueueFactory:
    """The queue factory of ``kind`` ("azure", "redis" or "sqlite") for ``job``.
    Raises ConfigError when the setting that kind needs is missing."""
    if kind == "azure":
        if not connection_string:
            raise ConfigError("the azure queue backend needs a connection string")
        from copier.backends.azure_queue import AzureQueueFactory

        return AzureQueueFactory(connection_string, job=job)
    if kind == "redis":
        if redis_client is None:
            raise ConfigError("the redis queue backend needs a Redis client")
        from copier.backends.redis_queue import RedisQueueFactory

        return RedisQueueFactory(redis_client, job)
    if kind == "sqlite":
        if not sqlite_path:
            raise ConfigError("the sqlite queue backend needs a database path")
        from copier.backends.sqlite_queue import SqliteQueueFactory

        return SqliteQueueFactory(sqlite_path, job)
    raise ConfigError(f"unknown queue backend {kind!r} (choose azure, redis or sqlite)")
