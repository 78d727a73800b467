"""StateStore on Redis, plus what both Redis backends share: keys, error translation, connect.

Every key of a job lives under ``copier:{<job>}:`` (the hash tag keeps a job in one cluster
slot). Every step that touches more than one key is one Lua script, so it is atomic and
costs one round trip; ``TIME`` inside the scripts is the one clock all processes share.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import urlsplit

import redis
import redis.exceptions as rex
from redis.backoff import NoBackoff
from redis.retry import Retry

from copier.backends.codec import (
    SEP, check_same_job, decode_failure, decode_items, encode_failure, failure_args, path_bytes,
    path_str, pending_order,
)
from copier.errors import AuthenticationFailed, BackendUnavailable, ConfigError, FatalError, TransientError
from copier.models import DRAIN_SUFFIX, Batch, BatchOutcome, Counters, DeadLetter, Failure, JobSpec, SlotInfo

_TRANSIENT = (rex.ConnectionError, rex.TimeoutError, rex.BusyLoadingError, rex.ReadOnlyError,
              rex.TryAgainError, rex.ClusterDownError, rex.MasterDownError)


def redact_url(url: str) -> str:
    """``scheme://host:port/db`` without user, password or query (which may hold a password)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
        host = parts.hostname
    except ValueError:
        return "<redis URL>"
    if parts.scheme == "unix":
        return "unix://" + parts.path if "@" not in parts.path else "<redis URL>"
    # A password holding '/' or '@' splits the URL in the wrong place: then show nothing.
    if not host or "@" in parts.path or "@" in (parts.hostname or "") or not parts.path.lstrip("/").isdigit() and parts.path not in ("", "/"):
        return f"{parts.scheme}://<host>" if parts.scheme else "<redis URL>"
    return f"{parts.scheme}://{host}:{port}{parts.path}"


def connect(url: str, timeout_s: float = 30.0, connect_timeout_s: float = 5.0) -> redis.Redis:
    """A client for ``url``, checked with one PING. Raises BackendUnavailable (or
    AuthenticationFailed) with the redacted address if Redis does not answer."""
    shown = redact_url(url)
    try:
        # No retries inside redis-py: a script whose reply was lost may have run, and running it
        # again could hand a page on twice; the roles retry at their own level, knowing that.
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s,
                                      health_check_interval=30, decode_responses=False,
                                      retry=Retry(NoBackoff(), 0))
    except ValueError:
        raise ConfigError(f"bad redis URL {shown}") from None
    try:
        client.ping()
    except (rex.AuthenticationError, rex.NoPermissionError) as exc:
        client.close()
        raise AuthenticationFailed(f"redis at {shown} refused the credentials") from exc
    except rex.RedisError as exc:
        client.close()
        raise BackendUnavailable(f"redis at {shown} is unreachable ({type(exc).__name__})") from exc
    return client


def translated(method):
    """Translate redis-py exceptions into copier's taxonomy at the backend boundary."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (rex.AuthenticationError, rex.NoPermissionError) as exc:
            raise AuthenticationFailed("redis refused the credentials") from exc
        except _TRANSIENT as exc:
            raise TransientError(f"redis: {type(exc).__name__}: {exc}") from exc
        except rex.RedisError as exc:
            raise FatalError(f"redis: {type(exc).__name__}: {exc}") from exc
    return wrapper


class Keys:
    """The names of one job's keys; the only place they are spelled."""

    def __init__(self, job: str) -> None:
        if not job or "{" in job or "}" in job:
            raise ConfigError(f"job name {job!r} must be non-empty and free of braces")
        p = f"copier:{{{job}}}:"
        self.spec, self.counters, self.seeded = p + "spec", p + "counters", p + "seeded"
        self.frontier, self.leases, self.lease_exp = p + "frontier", p + "leases", p + "lease_exp"
        self.intake, self.batch_seq, self.pending = p + "intake", p + "batch_seq", p + "pending"
        self.done_bits, self.done_ids = p + "done_bits", p + "done_ids"
        self.slots, self.failures, self.failure_index = p + "slots", p + "failures", p + "failure_index"
        self.dead = p + "dead"


def check_client(client: redis.Redis) -> None:
    if client.get_connection_kwargs().get("decode_responses"):
        raise ConfigError("the redis client must be made with decode_responses=False")


# Shared Lua prologue: the server clock in milliseconds, and integer formatting
# (tostring would print large numbers as 1e+15).
LUA_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(n) return string.format('%d', n) end
local function record_failures(hash, index, first)
  for i = first, #ARGV, 2 do
    redis.call('HSET', hash, ARGV[i], ARGV[i + 1])
    redis.call('ZADD', index, 0, ARGV[i])
  end
end
"""

_REGISTER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'job', ARGV[1], 'source', ARGV[2], 'target', ARGV[3], 'order', ARGV[4])
return {}
"""

# KEYS intake, batch_seq, pending, slots, counters
# ARGV slot, max_items, max_cost, per_file, per_byte, max_bytes ('' for no limit)
# An item is "<size>\t<mtime_ns>\t<mode>\t<verify>\t<path>" (codec.encode_item); its JSON entry
# '["<path>",<size>,<mtime_ns>,<mode>,<verify>],' has the same digits and path, 5 bytes more of
# punctuation, and 5 more per control byte of the path (\u00XX; the 4 tabs are not the path's)
# and 1 more per '"' or '\' in it: the encoded size of protocols.StateStore.take_batch.
_TAKE_BATCH = LUA_COMMON + """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
if #items == 0 then return false end
local max_cost, per_file, per_byte = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local max_bytes = tonumber(ARGV[6])
local cost, size, n = 0, 0, 0
for i, item in ipairs(items) do
  local c = per_file + math.floor(tonumber(string.match(item, '^%d+')) * per_byte)
  local b = 0
  if max_bytes then
    local _, control = string.gsub(item, '[%z\\1-\\31]', '')
    local _, quotes = string.gsub(item, '["\\\\]', '')
    b = #item + 5 + 5 * (control - 4) + quotes
  end
  if n > 0 and (cost + c > max_cost or (max_bytes and size + b > max_bytes)) then break end
  cost, size, n = cost + c, size + b, i
end
redis.call('LTRIM', KEYS[1], n, -1)
local id = 'b' .. redis.call('INCR', KEYS[2])
local body = table.concat(items, '\\0', 1, n)
redis.call('HSET', KEYS[3], id, ARGV[1] .. '\\0' .. int(cost) .. '\\0' .. body)
redis.call('HSETNX', KEYS[4], ARGV[1] .. ':holder', '')
redis.call('HINCRBY', KEYS[4], ARGV[1] .. ':assigned', int(cost))
redis.call('HINCRBY', KEYS[5], 'batches_dealt', 1)
return {id, int(cost), body}
"""

# KEYS pending, slots; ARGV batch id, new slot
_REASSIGN = LUA_COMMON + """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local a = string.find(v, '\\0', 1, true)
local b = string.find(v, '\\0', a + 1, true)
local old, cost = string.sub(v, 1, a - 1), tonumber(string.sub(v, a + 1, b - 1))
if old ~= ARGV[2] then
  redis.call('HINCRBY', KEYS[2], old .. ':assigned', int(-cost))
  redis.call('HSETNX', KEYS[2], ARGV[2] .. ':holder', '')
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':assigned', int(cost))
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. string.sub(v, a))
end
return int(cost)
"""

# KEYS done_bits, done_ids, counters, slots, failures, failure_index
# ARGV seq (-1 if the id is not b<n>), id, slot, cost, files_done, bytes_done, files_skipped,
#      bytes_skipped, files_failed, then (path, record) pairs
_COMPLETE = LUA_COMMON + """
if tonumber(ARGV[1]) >= 0 then
  if redis.call('SETBIT', KEYS[1], ARGV[1], 1) == 1 then return 0 end
elseif redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
local c, s = KEYS[3], ARGV[3]
redis.call('HINCRBY', c, 'files_done', ARGV[5])
redis.call('HINCRBY', c, 'bytes_done', ARGV[6])
redis.call('HINCRBY', c, 'files_skipped', ARGV[7])
redis.call('HINCRBY', c, 'bytes_skipped', ARGV[8])
redis.call('HINCRBY', c, 'files_failed', ARGV[9])
redis.call('HINCRBY', c, 'batches_completed', 1)
redis.call('HSETNX', KEYS[4], s .. ':holder', '')
redis.call('HINCRBY', KEYS[4], s .. ':done_cost', ARGV[4])
redis.call('HINCRBY', KEYS[4], s .. ':files_done', ARGV[5])
redis.call('HINCRBY', KEYS[4], s .. ':bytes_done', ARGV[6])
record_failures(KEYS[5], KEYS[6], 10)
return 1
"""

# One hash per job holds every slot: fields <n>:holder|expires|seen (ms)|assigned|done_cost|...
_SLOT_LUA = LUA_COMMON + f"""
local DRAIN_SUFFIX = '{DRAIN_SUFFIX}'
""" + """
local h, worker, now = KEYS[1], ARGV[1], now_ms()
local function holder(s) return redis.call('HGET', h, s .. ':holder') end
local function claimable(s)
  local who = holder(s)
  if not who or who == '' or who == worker then return true end
  if string.sub(who, -#DRAIN_SUFFIX) == DRAIN_SUFFIX then return true end  -- only being drained
  return tonumber(redis.call('HGET', h, s .. ':expires') or '0') <= now
end
local function take(s)
  redis.call('HSET', h, s .. ':holder', worker, s .. ':expires', int(now + tonumber(ARGV[2])), s .. ':seen', int(now))
  return 1
end
"""

# ARGV worker, lease_ms, prefer ('' for none)
_CLAIM_SLOT = _SLOT_LUA + """
if ARGV[3] ~= '' and claimable(ARGV[3]) then take(ARGV[3]) return tonumber(ARGV[3]) end
local own, free, top = nil, nil, -1
for _, f in ipairs(redis.call('HKEYS', h)) do
  local s = string.match(f, '^(%d+):holder$')
  if s then
    local n = tonumber(s)
    if n > top then top = n end
    if holder(s) == worker and tonumber(redis.call('HGET', h, s .. ':expires') or '0') > now then
      if own == nil or n < own then own = n end
    elseif (free == nil or n < free) and claimable(s) then free = n end
  end
end
local n = own or free or (top + 1)
take(tostring(n))
return n
"""

_RENEW_SLOT = _SLOT_LUA + """
if holder(ARGV[3]) ~= worker then return 0 end
return take(ARGV[3])
"""

# ARGV worker, lease_ms, slot, dead holder ('' for none): a slot still held by a holder known to
# have died is taken before its lease runs out
_TAKE_OVER_SLOT = _SLOT_LUA + """
if not claimable(ARGV[3]) and (ARGV[4] == '' or holder(ARGV[3]) ~= ARGV[4]) then return 0 end
return take(ARGV[3])
"""

_RELEASE_SLOT = _SLOT_LUA + """
if holder(ARGV[3]) ~= worker then return 0 end
redis.call('HSET', h, ARGV[3] .. ':holder', '', ARGV[3] .. ':expires', 0)
return 1
"""

_SLOT_FIELDS = {b"holder", b"expires", b"seen", b"assigned", b"done_cost", b"files_done", b"bytes_done"}


def batch_seq(batch_id: str) -> int:
    """The sequence number of an id this store allocated (``b<n>``), else -1."""
    if batch_id.startswith("b") and batch_id[1:].isdigit() and int(batch_id[1:]) < 2**32:
        return int(batch_id[1:])
    return -1


class RedisStateStore:
    def __init__(self, client: redis.Redis, job: str) -> None:
        check_client(client)
        self.client, self.job, self.keys = client, job, Keys(job)
        reg = client.register_script
        self._register, self._take_batch = reg(_REGISTER), reg(_TAKE_BATCH)
        self._reassign, self._complete = reg(_REASSIGN), reg(_COMPLETE)
        self._claim_slot, self._renew_slot = reg(_CLAIM_SLOT), reg(_RENEW_SLOT)
        self._take_over_slot, self._release_slot = reg(_TAKE_OVER_SLOT), reg(_RELEASE_SLOT)

    @translated
    def register(self, spec: JobSpec) -> JobSpec:
        if spec.job != self.job:
            raise ConfigError(f"spec for job {spec.job!r} given to the store of job {self.job!r}")
        d = spec.to_dict()
        found = self._register(keys=[self.keys.spec],
                               args=[path_bytes(d[k]) for k in ("job", "source", "target", "order")])
        if not found:
            return spec
        existing = JobSpec.from_dict({path_str(found[i]): path_str(found[i + 1]) for i in range(0, len(found), 2)})
        return check_same_job(existing, spec)

    @translated
    def spec(self) -> JobSpec | None:
        found = self.client.hgetall(self.keys.spec)
        return JobSpec.from_dict({path_str(k): path_str(v) for k, v in found.items()}) if found else None

    @translated
    def counters(self) -> Counters:
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.keys.counters)
        pipe.llen(self.keys.intake)
        raw, waiting = pipe.execute()
        fields = {k.decode(): int(v) for k, v in raw.items() if k.decode() in Counters.__slots__}
        return Counters(**fields, items_waiting=int(waiting))

    # -- intake and dealing ---------------------------------------------------------------
    @translated
    def take_batch(self, slot: int, max_items: int, max_cost: int, per_file: int, per_byte: float,
                   *, max_bytes: int | None = None) -> Batch | None:
        k = self.keys
        got = self._take_batch(keys=[k.intake, k.batch_seq, k.pending, k.slots, k.counters],
                               args=[slot, max(1, max_items), max_cost, per_file, repr(float(per_byte)),
                                     "" if max_bytes is None else int(max_bytes)])
        if not got:
            return None
        batch_id, cost, body = got
        return Batch(id=batch_id.decode(), slot=slot, items=decode_items(body), cost=int(cost))

    @translated
    def pending_batches(self) -> list[Batch]:
        batches = []
        for batch_id, record in self.client.hgetall(self.keys.pending).items():
            slot, cost, body = record.split(SEP, 2)
            batches.append(Batch(id=batch_id.decode(), slot=int(slot), items=decode_items(body), cost=int(cost)))
        return sorted(batches, key=pending_order)

    @translated
    def mark_sent(self, batch_id: str) -> None:
        self.client.hdel(self.keys.pending, batch_id)

    @translated
    def reassign(self, batch: Batch, slot: int) -> Batch:
        cost = self._reassign(keys=[self.keys.pending, self.keys.slots], args=[batch.id, slot])
        return replace(batch, slot=slot) if cost is None else replace(batch, slot=slot, cost=int(cost))

    @translated
    def complete_batch(self, outcome: BatchOutcome) -> bool:
        k, o = self.keys, outcome
        args = [batch_seq(o.batch_id), o.batch_id, o.slot, o.cost, o.files_done, o.bytes_done,
                o.files_skipped, o.bytes_skipped, o.files_failed, *failure_args(o.failures)]
        keys = [k.done_bits, k.done_ids, k.counters, k.slots, k.failures, k.failure_index]
        return self._complete(keys=keys, args=args) == 1

    # -- worker slots ---------------------------------------------------------------------
    def _slot_call(self, script, worker: str, lease_s: float, slot: int | str, *extra: str) -> int:
        return script(keys=[self.keys.slots], args=[worker, max(1, int(lease_s * 1000)), slot, *extra])

    @translated
    def claim_slot(self, worker: str, lease_s: float, prefer: int | None = None) -> int:
        return int(self._slot_call(self._claim_slot, worker, lease_s, "" if prefer is None else prefer))

    @translated
    def renew_slot(self, slot: int, worker: str, lease_s: float) -> bool:
        return self._slot_call(self._renew_slot, worker, lease_s, slot) == 1

    @translated
    def release_slot(self, slot: int, worker: str) -> None:
        self._slot_call(self._release_slot, worker, 0, slot)

    @translated
    def take_over_slot(self, slot: int, worker: str, lease_s: float, dead_holder: str | None = None) -> bool:
        return self._slot_call(self._take_over_slot, worker, lease_s, slot, dead_holder or "") == 1

    @translated
    def slots(self) -> list[SlotInfo]:
        # one round trip; no MULTI/EXEC (two commands more): the clock only has to be close
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(self.keys.slots)
        (sec, usec), raw = pipe.execute()
        now = sec + usec / 1e6
        table: dict[int, dict[bytes, bytes]] = {}
        for field, value in raw.items():
            slot, _, name = field.partition(b":")
            if name in _SLOT_FIELDS:
                table.setdefault(int(slot), {})[name] = value
        infos = []
        for slot, f in sorted(table.items()):
            expires = int(f.get(b"expires", 0)) / 1000
            holder = f.get(b"holder", b"").decode() or None
            infos.append(SlotInfo(
                slot=slot, holder=holder if holder and expires > now else None, lease_expires_at=expires,
                assigned_cost=int(f.get(b"assigned", 0)), done_cost=int(f.get(b"done_cost", 0)),
                files_done=int(f.get(b"files_done", 0)), bytes_done=int(f.get(b"bytes_done", 0)),
                last_seen=int(f.get(b"seen", 0)) / 1000))
        return infos

    # -- failures -------------------------------------------------------------------------
    @translated
    def record_failures(self, failures: Sequence[Failure]) -> None:
        if not failures:
            return
        records = {path_bytes(f.path): encode_failure(f) for f in failures}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.failures, mapping=records)
        pipe.zadd(self.keys.failure_index, dict.fromkeys(records, 0))
        pipe.execute()

    @translated
    def failures(self, limit: int | None = None) -> list[Failure]:
        if limit is not None and limit <= 0:
            return []
        paths = self.client.zrange(self.keys.failure_index, b"-", b"+", bylex=True,
                                   offset=0 if limit is not None else None, num=limit)
        if not paths:
            return []
        records = self.client.hmget(self.keys.failures, paths)
        return [decode_failure(p, r) for p, r in zip(paths, records) if r is not None]

    @translated
    def record_dead_letter(self, letter: DeadLetter) -> None:
        record = json.dumps({"body": letter.body, "reason": letter.reason, "count": letter.dequeue_count})
        self.client.hset(self.keys.dead, letter.message_id, record)

    @translated
    def dead_letters(self) -> list[DeadLetter]:
        letters = []
        for message_id, raw in sorted(self.client.hgetall(self.keys.dead).items()):
            doc = json.loads(raw)
            letters.append(DeadLetter(message_id.decode(), doc["body"], doc["reason"], int(doc["count"])))
        return letters

    def close(self) -> None:
        """The client belongs to the caller (it may be shared with the frontier); nothing to do."""
