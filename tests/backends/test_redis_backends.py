"""What only the Redis backends promise: round trips per step, error translation, connect."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from copier.backends.redis_frontier import RedisFrontier
from copier.backends.redis_state import RedisStateStore, connect
from copier.errors import BackendUnavailable, TransientError
from copier.models import BatchOutcome, ListingPage, Order, WorkItem
from tests.servers import free_port


class CountingRedis(redis.Redis):
    """Counts the commands sent outside pipelines (scripts run as one EVALSHA each)."""

    sent: list[str]

    def execute_command(self, *args, **options):
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def counting_client(url: str) -> CountingRedis:
    client = CountingRedis.from_url(url)
    client.sent = []
    return client


def files(n: int, prefix: str = "f") -> tuple[WorkItem, ...]:
    return tuple(WorkItem(f"{prefix}{i:05}", 1000 + i, 1, 0o644) for i in range(n))


def test_each_page_batch_and_outcome_is_one_redis_command(redis_url, unique):
    client = counting_client(redis_url)
    frontier, state = RedisFrontier(client, unique, Order.DFS), RedisStateStore(client, unique)
    frontier.seed_root()
    lease = frontier.claim("s1", 30)
    assert frontier.commit(lease, ListingPage((), (), (), 0, False))  # loads the script once per process
    client.sent.clear()
    assert frontier.commit(lease, ListingPage(("d1", "d2"), files(1000), (), 1000, False))
    assert frontier.commit(lease, ListingPage((), files(1000, "g"), (), 2000, True))
    assert client.sent == ["EVALSHA", "EVALSHA"]  # one per page of 1000 files

    batches = [state.take_batch(0, 100, 10**9, 1, 0.0) for _ in range(19)]
    state.complete_batch(BatchOutcome("warm-up", 0, 0))
    client.sent.clear()
    batches.append(state.take_batch(0, 100, 10**9, 1, 0.0))
    assert client.sent == ["EVALSHA"] and all(len(b.items) == 100 for b in batches)
    client.sent.clear()
    for batch in batches:
        state.mark_sent(batch.id)
        state.complete_batch(BatchOutcome(batch.id, 0, batch.cost, files_done=len(batch.items)))
    assert len(client.sent) == 2 * len(batches)  # HDEL (mark_sent) + EVALSHA (complete) per 100 files
    assert state.counters().files_done == 2000
    client.close()


def test_completed_batches_cost_a_bit_each(redis_url, unique):
    client = redis.Redis.from_url(redis_url)
    state = RedisStateStore(client, unique)
    for seq in range(1, 10_001):
        state.complete_batch(BatchOutcome(f"b{seq}", 0, 1, files_done=1))
    assert client.memory_usage(f"copier:{{{unique}}}:done_bits") < 4096
    client.close()


def test_connect_to_nothing_raises_backend_unavailable_without_password():
    port = free_port()
    with pytest.raises(BackendUnavailable) as caught:
        connect(f"redis://admin:hunter2@127.0.0.1:{port}/0?password=hunter3", connect_timeout_s=1)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "hunter" not in message and "admin" not in message


def test_lost_connection_is_a_transient_error(unique):
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(TransientError):
        RedisStateStore(client, unique).counters()
    with pytest.raises(TransientError):
        RedisFrontier(client, unique, Order.BFS).claim("s1", 30)


def test_frontier_runs_on_fakeredis_when_lua_is_available(unique):
    pytest.importorskip("lupa", reason="fakeredis needs lupa to run Lua scripts")
    import fakeredis

    client = fakeredis.FakeRedis()
    frontier, state = RedisFrontier(client, unique, Order.DFS), RedisStateStore(client, unique)
    assert frontier.seed_root()
    lease = frontier.claim("s1", 30)
    assert frontier.commit(lease, ListingPage(("a", "b"), files(3), (), 5, True))
    assert frontier.claim("s1", 30).node.path == "a"
    assert state.take_batch(0, 10, 10**9, 1, 0.0).items == files(3)


def commands_run(client: redis.Redis) -> dict[str, int]:
    """Redis's own count of commands by name (INFO commandstats counts those scripts run)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items() if name != "cmdstat_info"}


def commands_since(client: redis.Redis, before: dict[str, int]) -> dict[str, int]:
    after = commands_run(client)
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


def test_small_directories_handed_on_together_cost_a_few_redis_commands(redis_url, unique):
    """Issue 5: at most one Redis command per file on a tree of folders of about ten files.
    Directories handed on together with the claim of the next ones are one script whatever
    their number: EVALSHA, HMGET (the lease check), HDEL, RPUSH of their files, LPUSH of their
    subdirectories (if any), the counters (HMGET + HSET), TIME, LPOP and HSET of the new leases."""
    client = redis.Redis.from_url(redis_url)
    for order in (Order.DFS, Order.BFS):
        frontier = RedisFrontier(client, unique + order.value, order)
        frontier.seed_root()
        lease = frontier.claim("s1", 30)
        subdirs = tuple(f"d{i:02d}" for i in range(40))
        flags, leases = frontier.commit_many([(lease, ListingPage(subdirs, files(3), ()))], "s1", 30, 16)
        assert flags == [True] and len(leases) == 16  # the script is loaded now
        before = commands_run(client)
        leaves = [(held, ListingPage((), files(10, held.node.path), ())) for held in leases]
        flags, leases = frontier.commit_many(leaves, "s1", 30, 16)
        assert flags == [True] * 16 and len(leases) == 16
        leaf = commands_since(client, before)
        assert sum(leaf.values()) == 9, leaf
        before = commands_run(client)
        inner = [(held, ListingPage(("x", "y"), files(10, held.node.path), ())) for held in leases]
        flags, leases = frontier.commit_many(inner, "s1", 30, 16)
        assert flags == [True] * 16 and len(leases) == 16
        with_subdirs = commands_since(client, before)
        assert sum(with_subdirs.values()) == 10, with_subdirs
        assert with_subdirs.get("time") == 1 and "zadd" not in with_subdirs and "hget" not in with_subdirs
    client.close()
