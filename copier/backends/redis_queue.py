"""WorkQueue on Redis.

One queue is a few keys under ``copier:{<job>}:q:<slot>:`` (the hash tag keeps a job in one
cluster slot): ``body``, ``count`` and ``receipt`` hashes keyed by message id, a ``vis``
sorted set of ids scored by the time (ms) each becomes visible, ``seq`` for ids and receipts,
and ``dead`` (id -> dead-letter envelope). Ids are zero-padded sequence numbers, so ids of
equal score sort in put order. Every step that reads the clock runs in one Lua script and
reads Redis ``TIME``: all clients share the server's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from copier.backends.queues import MAX_RECEIVE, check_body, decode_dead_letter, encode_dead_letter
from copier.errors import BackendUnavailable, TransientError
from copier.models import DeadLetter, Delivery

T = TypeVar("T")

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

# KEYS: body count receipt vis seq   ARGV: body
PUT = _NOW + """
local id = string.format('%016d', redis.call('INCR', KEYS[5]))
redis.call('HSET', KEYS[1], id, ARGV[1])
redis.call('HSET', KEYS[2], id, 0)
redis.call('ZADD', KEYS[4], now, id)
return id
"""

# KEYS: body count receipt vis seq   ARGV: max_messages visibility_timeout_ms
RECEIVE = _NOW + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local receipt = id .. '.' .. redis.call('INCR', KEYS[5])
  redis.call('HSET', KEYS[3], id, receipt)
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), id)
  out[#out + 1] = id
  out[#out + 1] = receipt
  out[#out + 1] = redis.call('HINCRBY', KEYS[2], id, 1)
  out[#out + 1] = redis.call('HGET', KEYS[1], id)
end
return out
"""

# KEYS: body count receipt vis seq   ARGV: id receipt visibility_timeout_ms
EXTEND = _NOW + """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return false end
local receipt = ARGV[1] .. '.' .. redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[3], ARGV[1], receipt)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1])
return receipt
"""

# KEYS: body count receipt vis dead   ARGV: id receipt [dead-letter envelope]
REMOVE = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] then redis.call('HSET', KEYS[5], ARGV[1], ARGV[3]) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


class RedisWorkQueue:
    def __init__(self, redis_client: redis.Redis, job: str, slot: int) -> None:
        self.name = f"copier:{{{job}}}:q:{slot}"
        self._redis = redis_client
        self._keys = {part: f"{self.name}:{part}" for part in ("body", "count", "receipt", "vis", "seq", "dead")}
        self._put = redis_client.register_script(PUT)
        self._receive = redis_client.register_script(RECEIVE)
        self._extend = redis_client.register_script(EXTEND)
        self._remove = redis_client.register_script(REMOVE)

    def _k(self, *parts: str) -> list[str]:
        return [self._keys[p] for p in parts]

    def _call(self, what: str, fn: Callable[[], T], *, starting: bool = False) -> T:
        try:
            return fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            error = BackendUnavailable if starting else TransientError
            raise error(f"{what} {self.name}: Redis unreachable ({type(exc).__name__})") from None
        except redis.exceptions.RedisError as exc:
            # e.g. BUSY, LOADING, READONLY during a failover: worth another try.
            raise TransientError(f"{what} {self.name}: Redis error {type(exc).__name__}") from None

    def create(self) -> None:
        self._call("reach", self._redis.ping, starting=True)

    def put(self, body: str) -> None:
        check_body(body)
        self._call("put on", lambda: self._put(keys=self._k("body", "count", "receipt", "vis", "seq"), args=[body]))

    def receive(self, max_messages: int, visibility_timeout_s: float) -> list[Delivery]:
        n = min(max_messages, MAX_RECEIVE)
        if n < 1:
            return []
        vt_ms = max(0, int(visibility_timeout_s * 1000))
        flat = self._call("receive from", lambda: self._receive(
            keys=self._k("body", "count", "receipt", "vis", "seq"), args=[n, vt_ms]))
        return [Delivery(message_id=_text(flat[i]), receipt=_text(flat[i + 1]), dequeue_count=int(flat[i + 2]),
                         body=_text(flat[i + 3])) for i in range(0, len(flat), 4)]

    def delete(self, delivery: Delivery) -> None:
        self._call("delete from", lambda: self._remove(
            keys=self._k("body", "count", "receipt", "vis", "dead"), args=[delivery.message_id, delivery.receipt]))

    def extend(self, delivery: Delivery, visibility_timeout_s: float) -> Delivery:
        vt_ms = max(0, int(visibility_timeout_s * 1000))
        receipt = self._call("extend on", lambda: self._extend(
            keys=self._k("body", "count", "receipt", "vis", "seq"),
            args=[delivery.message_id, delivery.receipt, vt_ms]))
        if receipt is None:
            raise TransientError(f"extend on {self.name}: receipt is stale")
        return Delivery(delivery.message_id, _text(receipt), delivery.dequeue_count, delivery.body)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        # A current receipt proves delivery.body and dequeue_count are the stored ones.
        envelope = encode_dead_letter(delivery.message_id, delivery.body, reason, delivery.dequeue_count)
        self._call("dead-letter on", lambda: self._remove(
            keys=self._k("body", "count", "receipt", "vis", "dead"),
            args=[delivery.message_id, delivery.receipt, envelope]))

    def dead_letters(self) -> list[DeadLetter]:
        raw = self._call("read dead letters of", lambda: self._redis.hgetall(self._keys["dead"]))
        return [decode_dead_letter(_text(raw[k])) for k in sorted(raw, key=_text)]

    def depth(self) -> int:
        return int(self._call("count", lambda: self._redis.zcard(self._keys["vis"])))

    def destroy(self) -> None:
        self._call("destroy", lambda: self._redis.delete(*self._keys.values()))


class RedisQueueFactory:
    def __init__(self, redis_client: redis.Redis, job: str) -> None:
        self._redis = redis_client
        self.job = job

    def queue(self, slot: int) -> RedisWorkQueue:
        return RedisWorkQueue(self._redis, self.job, slot)
