"""Frontier on Redis: one list of directory nodes, popped from the left.

DFS pushes new nodes on the left (a stack, in listed order), BFS on the right (a queue).
A claimed node moves into the ``leases`` hash (token -> ``owner NUL cursor TAB path``) with
its expiry, by the Redis clock, in the ``lease_exp`` sorted set. A page is committed by one
script, so it is counted once or not at all.
"""

from __future__ import annotations

import uuid

import redis

from copier.backends.codec import child_path, decode_node, encode_item, encode_node, failure_args
from copier.backends.redis_state import LUA_COMMON, Keys, check_client, translated
from copier.models import DirLease, DirNode, ListingPage, Order

_SEED = """
if redis.call('SET', KEYS[1], 1, 'NX') == false then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'dirs_total', 1)
return 1
"""

# KEYS frontier, leases, lease_exp; ARGV owner, token, lease_ms
_CLAIM = LUA_COMMON + """
local node = redis.call('LPOP', KEYS[1])
if not node then return false end
local expires = now_ms() + tonumber(ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1] .. '\\0' .. node)
redis.call('ZADD', KEYS[3], expires, ARGV[2])
return {node, expires}
"""

# KEYS leases, lease_exp; ARGV token, lease_ms
_RENEW = LUA_COMMON + """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
"""

_NODE_OF_LEASE = """
local function node_of(lease) return string.sub(lease, string.find(lease, '\\0', 1, true) + 1) end
local function requeue(token)
  local lease = redis.call('HGET', KEYS[2], token)
  redis.call('ZREM', KEYS[3], token)
  if not lease then return 0 end
  redis.call('LPUSH', KEYS[1], node_of(lease))
  redis.call('HDEL', KEYS[2], token)
  return 1
end
"""

# KEYS frontier, leases, lease_exp; ARGV token
_RELEASE = _NODE_OF_LEASE + "return requeue(ARGV[1])"

# KEYS frontier, leases, lease_exp
_REQUEUE_EXPIRED = LUA_COMMON + _NODE_OF_LEASE + """
local n = 0
for _, token in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_ms())) do n = n + requeue(token) end
return n
"""

# KEYS frontier, leases, lease_exp, intake, counters, failures, failure_index
# ARGV token, push (LPUSH|RPUSH), last (1|0), cursor, n_dirs, n_files, n_bytes, n_failures,
#      then the dir nodes, the items, and (path, record) pairs
_COMMIT = LUA_COMMON + """
local lease = redis.call('HGET', KEYS[2], ARGV[1])
if not lease then return 0 end
local function push(cmd, key, first, last)
  for i = first, last, 1000 do redis.call(cmd, key, unpack(ARGV, i, math.min(i + 999, last))) end
end
local n_dirs, n_files, n_failures = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[8])
local c = KEYS[5]
if n_dirs > 0 then
  push(ARGV[2], KEYS[1], 9, 8 + n_dirs)
  redis.call('HINCRBY', c, 'dirs_total', n_dirs)
end
if n_files > 0 then
  push('RPUSH', KEYS[4], 9 + n_dirs, 8 + n_dirs + n_files)
  redis.call('HINCRBY', c, 'files_total', n_files)
  redis.call('HINCRBY', c, 'bytes_total', ARGV[7])
end
if n_failures > 0 then
  record_failures(KEYS[6], KEYS[7], 9 + n_dirs + n_files)
  redis.call('HINCRBY', c, 'entries_failed', n_failures)
end
if ARGV[3] == '1' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HINCRBY', c, 'dirs_done', 1)
else
  local owner_end = string.find(lease, '\\0', 1, true)
  local cursor_end = string.find(lease, '\\t', owner_end + 1, true)
  redis.call('HSET', KEYS[2], ARGV[1], string.sub(lease, 1, owner_end) .. ARGV[4] .. string.sub(lease, cursor_end))
end
return 1
"""

_LEASE_MS_MIN = 1


class RedisFrontier:
    def __init__(self, client: redis.Redis, job: str, order: Order) -> None:
        check_client(client)
        self.client, self.job, self.order, self.keys = client, job, Order(order), Keys(job)
        reg = client.register_script
        self._seed, self._claim, self._renew = reg(_SEED), reg(_CLAIM), reg(_RENEW)
        self._release, self._requeue, self._commit = reg(_RELEASE), reg(_REQUEUE_EXPIRED), reg(_COMMIT)
        self._lease_keys = [self.keys.frontier, self.keys.leases, self.keys.lease_exp]

    @translated
    def seed_root(self) -> bool:
        k = self.keys
        return self._seed(keys=[k.seeded, k.frontier, k.counters], args=[encode_node(DirNode(""))]) == 1

    @translated
    def claim(self, owner: str, lease_s: float) -> DirLease | None:
        if "\0" in owner:
            raise ValueError("an owner name cannot contain NUL")
        token = uuid.uuid4().hex
        got = self._claim(keys=self._lease_keys, args=[owner, token, _ms(lease_s)])
        if not got:
            return None
        node, expires_ms = got
        return DirLease(node=decode_node(node), owner=owner, token=token, expires_at=int(expires_ms) / 1000)

    @translated
    def renew(self, lease: DirLease, lease_s: float) -> bool:
        return self._renew(keys=[self.keys.leases, self.keys.lease_exp], args=[lease.token, _ms(lease_s)]) == 1

    @translated
    def commit(self, lease: DirLease, page: ListingPage) -> bool:
        k = self.keys
        dirs = [encode_node(DirNode(child_path(lease.node.path, name))) for name in page.subdirs]
        if self.order is Order.DFS:
            dirs.reverse()  # LPUSH a, b leaves b on top; reversed, the first listed comes out first
        failures = failure_args(page.failures)
        args = [lease.token, "LPUSH" if self.order is Order.DFS else "RPUSH", int(page.last), page.cursor,
                len(dirs), len(page.files), sum(f.size for f in page.files), len(failures) // 2,
                *dirs, *(encode_item(f) for f in page.files), *failures]
        keys = [*self._lease_keys, k.intake, k.counters, k.failures, k.failure_index]
        return self._commit(keys=keys, args=args) == 1

    @translated
    def release(self, lease: DirLease) -> None:
        self._release(keys=self._lease_keys, args=[lease.token])

    @translated
    def requeue_expired(self) -> int:
        return int(self._requeue(keys=self._lease_keys))

    @translated
    def exhausted(self) -> bool:
        pipe = self.client.pipeline(transaction=True)
        pipe.exists(self.keys.seeded)
        pipe.llen(self.keys.frontier)
        pipe.hlen(self.keys.leases)
        seeded, waiting, leased = pipe.execute()
        return bool(seeded) and waiting == 0 and leased == 0


def _ms(seconds: float) -> int:
    return max(_LEASE_MS_MIN, int(seconds * 1000))
