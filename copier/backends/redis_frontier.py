"""Frontier on Redis: one list of directory nodes, popped from the left.

DFS pushes new nodes on the left (a stack, in listed order), BFS on the right (a queue).
A claimed node moves into the ``leases`` hash: token -> ``expires_ms NUL owner NUL cursor TAB
path``, the expiry by the Redis clock. There is no expiry index: the hash holds one field per
node being listed (at most ``dirs_per_claim`` per seeder), so ``requeue_expired`` reads it whole. A page is
committed by one script, so it is counted once or not at all.

Redis commands matter (issue 5: at most one per file on a tree of small folders, counted
with the commands scripts run): ``commit_many`` hands on any number of one-page directories
and claims the next ones in one script whose commands do not grow with their number: the
EVALSHA, HMGET (the lease check), HDEL, RPUSH of the files, LPUSH of the subdirectories,
the counters (HINCRBY for one or two of them, else HMGET and HSET), then TIME, LPOP and HSET
of the new leases.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import redis

from copier.backends.codec import (
    check_commit_many, child_path, decode_node, encode_item, encode_node, failure_args,
)
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
# ARGV push (LPUSH|RPUSH), owner, token base, lease_ms, claim (how many nodes), n commits, then
#      per commit its head (token, last 1|0, cursor, n_dirs, n_files, n_bytes, n_failures), then
#      per commit its body (the dir nodes, the items, the (path, record) pairs of its failures)
# Returns {flags, expires_ms, node...}: flags holds '1' or '0' per commit (0: the lease was not
# held and nothing of that page changed); the claimed nodes' tokens are the base .. ':' .. i.
# Nothing is claimed unless every commit took effect.
_COMMIT_MANY = _LEASES + """
local push_cmd, owner, base, lease_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n_claim, n_commits = tonumber(ARGV[5]), tonumber(ARGV[6])
local HEAD = 7
local tokens = {}
for c = 0, n_commits - 1 do tokens[c + 1] = ARGV[HEAD + 7 * c] end
local leases = n_commits > 0 and redis.call('HMGET', KEYS[2], unpack(tokens)) or {}
local flags, all_held = {}, true
local dirs, items, done_tokens, moved = {}, {}, {}, {}
local n_dirs, n_files, n_bytes, n_failures, n_done = 0, 0, 0, 0, 0
local pos = HEAD + 7 * n_commits
for c = 0, n_commits - 1 do
  local h = HEAD + 7 * c
  local nd, nf, nx = tonumber(ARGV[h + 3]), tonumber(ARGV[h + 4]), tonumber(ARGV[h + 6])
  local held = leases[c + 1]
  if held then
    flags[c + 1] = '1'
    if ARGV[h + 1] == '1' then
      done_tokens[#done_tokens + 1] = ARGV[h]
      n_done = n_done + 1
    else
      local expires, lease_owner, node = parse_lease(held)
      local tab = string.find(node, '\t', 1, true)
      moved[#moved + 1] = ARGV[h]
      moved[#moved + 1] = int(expires) .. '\0' .. lease_owner .. '\0' .. ARGV[h + 2] .. string.sub(node, tab)
    end
    for i = pos, pos + nd - 1 do dirs[#dirs + 1] = ARGV[i] end
    for i = pos + nd, pos + nd + nf - 1 do items[#items + 1] = ARGV[i] end
    for i = pos + nd + nf, pos + nd + nf + 2 * nx - 1, 2 do
      redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
      redis.call('ZADD', KEYS[6], 0, ARGV[i])
    end
    n_dirs, n_files = n_dirs + nd, n_files + nf
    n_bytes, n_failures = n_bytes + tonumber(ARGV[h + 5]), n_failures + nx
  else
    flags[c + 1] = '0'
    all_held = false
  end
  pos = pos + nd + nf + 2 * nx
end
if #done_tokens > 0 then redis.call('HDEL', KEYS[2], unpack(done_tokens)) end
if #moved > 0 then redis.call('HSET', KEYS[2], unpack(moved)) end
local function push(cmd, key, values)
  for i = 1, #values, 1000 do redis.call(cmd, key, unpack(values, i, math.min(i + 999, #values))) end
end
push(push_cmd, KEYS[1], dirs)
push('RPUSH', KEYS[3], items)
-- Counters: HINCRBY each when one or two change, else one HMGET and one HSET (atomic here).
local names, deltas = {}, {}
local function add(name, delta)
  if delta ~= 0 then names[#names + 1], deltas[#deltas + 1] = name, delta end
end
add('dirs_total', n_dirs)
add('files_total', n_files)
add('bytes_total', n_bytes)
add('entries_failed', n_failures)
add('dirs_done', n_done)
if #names <= 2 then
  for i, name in ipairs(names) do redis.call('HINCRBY', KEYS[4], name, int(deltas[i])) end
elseif #names > 0 then
  local now_values, fields = redis.call('HMGET', KEYS[4], unpack(names)), {}
  for i, name in ipairs(names) do
    fields[2 * i - 1], fields[2 * i] = name, int((tonumber(now_values[i]) or 0) + deltas[i])
  end
  redis.call('HSET', KEYS[4], unpack(fields))
end
local result = {table.concat(flags), 0}
if not all_held or n_claim < 1 then return result end
local nodes = redis.call('LPOP', KEYS[1], n_claim)
if not nodes then return result end
local expires = now_ms() + tonumber(lease_ms)
local fields = {}
for i, node in ipairs(nodes) do
  fields[2 * i - 1], fields[2 * i] = base .. ':' .. i, int(expires) .. '\0' .. owner .. '\0' .. node
  result[i + 2] = node
end
redis.call('HSET', KEYS[2], unpack(fields))
result[2] = int(expires)
return result
"""

_LEASE_MS_MIN = 1


class RedisFrontier:
    def __init__(self, client: redis.Redis, job: str, order: Order) -> None:
        check_client(client)
        self.client, self.job, self.order, self.keys = client, job, Order(order), Keys(job)
        reg = client.register_script
        self._seed, self._claim, self._renew = reg(_SEED), reg(_CLAIM), reg(_RENEW)
        self._release, self._requeue, self._commit = reg(_RELEASE), reg(_REQUEUE_EXPIRED), reg(_COMMIT_MANY)
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
        return self._commit_many([(lease, page)], "", 0, 0)[0][0]

    @translated
    def commit_and_claim(self, lease: DirLease, page: ListingPage, owner: str,
                         lease_s: float) -> tuple[bool, DirLease | None]:
        if not page.last:
            raise ValueError("commit_and_claim takes the last page of a node")
        (committed,), leases = self._commit_many([(lease, page)], owner, lease_s, 1)
        return committed, (leases[0] if leases else None)

    @translated
    def commit_many(self, commits: Sequence[tuple[DirLease, ListingPage]], owner: str, lease_s: float,
                    claim: int) -> tuple[list[bool], list[DirLease]]:
        return self._commit_many(commits, owner, lease_s, claim)

    def _commit_many(self, commits: Sequence[tuple[DirLease, ListingPage]], owner: str, lease_s: float,
                     claim: int) -> tuple[list[bool], list[DirLease]]:
        check_commit_many(commits, claim)
        k = self.keys
        dfs = self.order is Order.DFS
        base = uuid.uuid4().hex
        if claim > 0:
            _check_owner(owner)
        heads: list = []
        bodies: list = []
        for lease, page in commits:
            dirs = [encode_node(DirNode(child_path(lease.node.path, name))) for name in page.subdirs]
            if dfs:
                dirs.reverse()  # LPUSH a, b leaves b on top; reversed, the first listed comes out first
            failures = failure_args(page.failures)
            heads += (lease.token, int(page.last), page.cursor, len(dirs), len(page.files),
                      sum(f.size for f in page.files), len(failures) // 2)
            bodies += dirs
            bodies += [encode_item(f) for f in page.files]
            bodies += failures
        args = ["LPUSH" if dfs else "RPUSH", owner, base, _ms(lease_s), claim, len(commits), *heads, *bodies]
        got = self._commit(keys=[*self._lease_keys, k.intake, k.counters, k.failures, k.failure_index], args=args)
        flags = [flag == ord("1") for flag in got[0]]
        expires_at = int(got[1]) / 1000
        leases = [DirLease(node=decode_node(node), owner=owner, token=f"{base}:{i}", expires_at=expires_at)
                  for i, node in enumerate(got[2:], start=1)]
        return flags, leases

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
