"""Frontier on Redis: one list of directory nodes, popped from the left.

DFS pushes new nodes on the left (a stack, in listed order), BFS on the right (a queue).
A claimed node moves into the ``leases`` hash: token -> ``expires_ms NUL owner NUL cursor TAB
path``, the expiry by the Redis clock. There is no expiry index: the hash holds one field per
node being listed (about one per seeder), so ``requeue_expired`` reads it whole. A page is
committed by one script, so it is counted once or not at all.

Redis commands per directory matter (issue 5: at most one per file on a tree of small
folders, counted with the commands scripts run): a one-page directory committed together
with the claim of the next (``commit_and_claim``) costs the EVALSHA, HDEL (which is also the
lease check), RPUSH of its files, LPUSH of its subdirectories (if any; none for the first one
under DFS, which is leased at once), its counters (HINCRBY for one or two of them, else one
HMGET and one HSET), then TIME, LPOP and HSET for the next lease.
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

# A lease value: expires_ms NUL owner NUL node. A value with one NUL (owner NUL node) was
# written by an older version, whose expiry lived elsewhere: it reads as expired.
_LEASES = LUA_COMMON + """
local function parse_lease(v)
  local a = string.find(v, '\0', 1, true)
  local b = string.find(v, '\0', a + 1, true)
  if not b then return 0, string.sub(v, 1, a - 1), string.sub(v, a + 1) end
  return tonumber(string.sub(v, 1, a - 1)), string.sub(v, a + 1, b - 1), string.sub(v, b + 1)
end
local function put_lease(leases, token, owner, node, lease_ms, now)
  local expires = (now or now_ms()) + tonumber(lease_ms)
  redis.call('HSET', leases, token, int(expires) .. '\0' .. owner .. '\0' .. node)
  return {node, int(expires)}
end
"""

# KEYS frontier, leases; ARGV owner, token, lease_ms
_CLAIM = _LEASES + """
local node = redis.call('LPOP', KEYS[1])
if not node then return false end
return put_lease(KEYS[2], ARGV[2], ARGV[1], node, ARGV[3])
"""

# KEYS leases; ARGV token, lease_ms
_RENEW = _LEASES + """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local _, owner, node = parse_lease(v)
put_lease(KEYS[1], ARGV[1], owner, node, ARGV[2])
return 1
"""

# KEYS frontier, leases; ARGV token
_RELEASE = _LEASES + """
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
local _, _, node = parse_lease(v)
redis.call('LPUSH', KEYS[1], node)
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# KEYS frontier, leases. The expired nodes go back to the front, the latest expiry frontmost
# (as if each were pushed in turn, in order of expiry).
_REQUEUE_EXPIRED = _LEASES + """
local all = redis.call('HGETALL', KEYS[2])
if #all == 0 then return 0 end
local now, expired = now_ms(), {}
for i = 1, #all, 2 do
  local expires, _, node = parse_lease(all[i + 1])
  if expires <= now then expired[#expired + 1] = {expires, all[i], node} end
end
if #expired == 0 then return 0 end
table.sort(expired, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[2] < y[2]) end)
local nodes, tokens = {}, {}
for i, e in ipairs(expired) do nodes[i], tokens[i] = e[3], e[2] end
redis.call('LPUSH', KEYS[1], unpack(nodes))
redis.call('HDEL', KEYS[2], unpack(tokens))
return #expired
"""

# KEYS frontier, leases, intake, counters, failures, failure_index
# ARGV token, push (LPUSH|RPUSH), last (1|0), cursor, n_dirs, n_files, n_bytes, n_failures,
#      owner, token and lease_ms of the next lease ('' owner: claim none), then the dir nodes,
#      the items, and (path, record) pairs
# Returns 0 if the lease is not held (nothing changed), else {1} or {1, node, expires_ms}.
_COMMIT = _LEASES + """
local token, last = ARGV[1], ARGV[3] == '1'
if last then
  if redis.call('HDEL', KEYS[2], token) == 0 then return 0 end
else
  local v = redis.call('HGET', KEYS[2], token)
  if not v then return 0 end
  local expires, owner, node = parse_lease(v)
  local tab = string.find(node, '\t', 1, true)
  redis.call('HSET', KEYS[2], token, int(expires) .. '\0' .. owner .. '\0' .. ARGV[4] .. string.sub(node, tab))
end
local first, n_dirs, n_files, n_failures = 12, tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[8])
local claim = last and ARGV[9] ~= ''
local function push(cmd, key, from, to)
  for i = from, to, 1000 do redis.call(cmd, key, unpack(ARGV, i, math.min(i + 999, to))) end
end
-- Under DFS the first listed subdirectory (last in ARGV) would be pushed and popped at once.
local next_node = nil
local dirs_to = first + n_dirs - 1
if claim and n_dirs > 0 and ARGV[2] == 'LPUSH' then
  next_node = ARGV[dirs_to]
  dirs_to = dirs_to - 1
end
if dirs_to >= first then push(ARGV[2], KEYS[1], first, dirs_to) end
if n_files > 0 then push('RPUSH', KEYS[3], first + n_dirs, first + n_dirs + n_files - 1) end
if n_failures > 0 then record_failures(KEYS[5], KEYS[6], first + n_dirs + n_files) end
-- Counters: HINCRBY each when one or two change, else one HMGET and one HSET (atomic here).
local names, deltas = {}, {}
local function add(name, delta)
  if delta ~= 0 then names[#names + 1], deltas[#deltas + 1] = name, delta end
end
add('dirs_total', n_dirs)
add('files_total', n_files)
add('bytes_total', tonumber(ARGV[7]))
add('entries_failed', n_failures)
if last then add('dirs_done', 1) end
if #names <= 2 then
  for i, name in ipairs(names) do redis.call('HINCRBY', KEYS[4], name, int(deltas[i])) end
else
  local now_values, fields = redis.call('HMGET', KEYS[4], unpack(names)), {}
  for i, name in ipairs(names) do
    fields[2 * i - 1], fields[2 * i] = name, int((tonumber(now_values[i]) or 0) + deltas[i])
  end
  redis.call('HSET', KEYS[4], unpack(fields))
end
if not claim then return {1} end
next_node = next_node or redis.call('LPOP', KEYS[1])
if not next_node then return {1} end
local got = put_lease(KEYS[2], ARGV[10], ARGV[9], next_node, ARGV[11])
return {1, got[1], got[2]}
"""

_LEASE_MS_MIN = 1


class RedisFrontier:
    def __init__(self, client: redis.Redis, job: str, order: Order) -> None:
        check_client(client)
        self.client, self.job, self.order, self.keys = client, job, Order(order), Keys(job)
        reg = client.register_script
        self._seed, self._claim, self._renew = reg(_SEED), reg(_CLAIM), reg(_RENEW)
        self._release, self._requeue, self._commit = reg(_RELEASE), reg(_REQUEUE_EXPIRED), reg(_COMMIT)
        self._lease_keys = [self.keys.frontier, self.keys.leases]

    @translated
    def seed_root(self) -> bool:
        k = self.keys
        return self._seed(keys=[k.seeded, k.frontier, k.counters], args=[encode_node(DirNode(""))]) == 1

    @translated
    def claim(self, owner: str, lease_s: float) -> DirLease | None:
        _check_owner(owner)
        token = uuid.uuid4().hex
        got = self._claim(keys=self._lease_keys, args=[owner, token, _ms(lease_s)])
        return _lease(got, owner, token) if got else None

    @translated
    def renew(self, lease: DirLease, lease_s: float) -> bool:
        return self._renew(keys=[self.keys.leases], args=[lease.token, _ms(lease_s)]) == 1

    @translated
    def commit(self, lease: DirLease, page: ListingPage) -> bool:
        return self._commit_page(lease, page, ["", "", ""]) != 0

    @translated
    def commit_and_claim(self, lease: DirLease, page: ListingPage, owner: str,
                         lease_s: float) -> tuple[bool, DirLease | None]:
        if not page.last:
            raise ValueError("commit_and_claim takes the last page of a node")
        _check_owner(owner)
        token = uuid.uuid4().hex
        got = self._commit_page(lease, page, [owner, token, _ms(lease_s)])
        if not got:
            return False, None
        return True, (_lease(got[1:], owner, token) if len(got) > 1 else None)

    def _commit_page(self, lease: DirLease, page: ListingPage, claim_args: list):
        k = self.keys
        dirs = [encode_node(DirNode(child_path(lease.node.path, name))) for name in page.subdirs]
        if self.order is Order.DFS:
            dirs.reverse()  # LPUSH a, b leaves b on top; reversed, the first listed comes out first
        failures = failure_args(page.failures)
        args = [lease.token, "LPUSH" if self.order is Order.DFS else "RPUSH", int(page.last), page.cursor,
                len(dirs), len(page.files), sum(f.size for f in page.files), len(failures) // 2, *claim_args,
                *dirs, *(encode_item(f) for f in page.files), *failures]
        keys = [*self._lease_keys, k.intake, k.counters, k.failures, k.failure_index]
        return self._commit(keys=keys, args=args)

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


def _check_owner(owner: str) -> None:
    if "\0" in owner:
        raise ValueError("an owner name cannot contain NUL")


def _lease(got, owner: str, token: str) -> DirLease:
    node, expires_ms = got
    return DirLease(node=decode_node(node), owner=owner, token=token, expires_at=int(expires_ms) / 1000)


def _ms(seconds: float) -> int:
    return max(_LEASE_MS_MIN, int(seconds * 1000))
