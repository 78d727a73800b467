"""The WorkQueue contract, run against Azure Storage Queues (Azurite), Redis and SQLite.

Waiting for a visibility timeout is done by polling against a deadline, never by a fixed sleep.
Visibility timeouts are 1 s where a test waits for one: Azure counts whole seconds.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from copier.backends.azure_queue import AzureQueueFactory, AzureWorkQueue, queue_name
from copier.backends.queues import MAX_BODY_BYTES, open_queue_factory
from copier.backends.redis_queue import RedisQueueFactory, RedisWorkQueue
from copier.backends.sqlite_queue import SqliteQueueFactory, SqliteWorkQueue
from copier.errors import AuthenticationFailed, BackendUnavailable, ConfigError, TransientError
from copier.models import Batch, DeadLetter, Delivery, WorkItem
from copier.protocols import QueueFactory, WorkQueue
from tests import servers

LONG_S = 30.0  # a visibility timeout no test outlives
REDELIVERY_DEADLINE_S = 15.0

MakeFactory = Callable[[str], QueueFactory]


@pytest.fixture(params=["azure", "redis", "sqlite"])
def make_factory(request, tmp_path) -> Iterator[MakeFactory]:
    """Makes the factory of one job on the backend under test; destroys every queue it handed
    out afterwards."""
    handed_out: list[WorkQueue] = []
    clients = []
    if request.param == "azure":
        conn = request.getfixturevalue("azurite").connection_string

        def build(job: str) -> QueueFactory:
            return AzureQueueFactory(conn, job=job)
    elif request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        clients.append(client)

        def build(job: str) -> QueueFactory:
            return RedisQueueFactory(client, job)
    else:
        path = str(tmp_path / "state.db")

        def build(job: str) -> QueueFactory:
            return SqliteQueueFactory(path, job)

    def make(job: str) -> QueueFactory:
        factory = build(job)
        original = factory.queue

        def queue(slot: int) -> WorkQueue:
            q = original(slot)
            handed_out.append(q)
            return q

        factory.queue = queue  # type: ignore[method-assign]
        return factory

    yield make
    for q in handed_out:
        q.destroy()
    for client in clients:
        client.close()


@pytest.fixture
def queue(make_factory: MakeFactory, unique: str) -> WorkQueue:
    q = make_factory(unique).queue(0)
    q.create()
    return q


def wait_for_delivery(q: WorkQueue, deadline_s: float = REDELIVERY_DEADLINE_S) -> Delivery:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        got = q.receive(1, LONG_S)
        if got:
            return got[0]
        time.sleep(0.1)
    raise AssertionError(f"no delivery within {deadline_s}s")


def drain_ids(q: WorkQueue) -> list[str]:
    ids = []
    while got := q.receive(32, LONG_S):
        ids += [d.message_id for d in got]
    return ids


# -- the contract ---------------------------------------------------------------------------

def test_put_then_receive_returns_body_once(queue: WorkQueue) -> None:
    queue.put("hello")
    got = queue.receive(32, LONG_S)
    assert [(d.body, d.dequeue_count) for d in got] == [("hello", 1)]
    assert got[0].message_id and got[0].receipt
    assert queue.receive(32, LONG_S) == []


def test_receive_on_empty_queue_returns_at_once(queue: WorkQueue) -> None:
    start = time.monotonic()
    assert queue.receive(32, LONG_S) == []
    assert time.monotonic() - start < 2.0


def test_receive_caps_at_32_and_at_max(queue: WorkQueue) -> None:
    for i in range(40):
        queue.put(f"m{i}")
    first = queue.receive(5, LONG_S)
    second = queue.receive(50, LONG_S)
    rest = queue.receive(32, LONG_S)
    assert (len(first), len(second), len(rest)) == (5, 32, 3)
    bodies = [d.body for d in first + second + rest]
    assert sorted(bodies) == sorted(f"m{i}" for i in range(40))


def test_fifo_order(queue: WorkQueue) -> None:
    for i in range(12):
        queue.put(f"m{i:02d}")
    assert [d.body for d in queue.receive(32, LONG_S)] == [f"m{i:02d}" for i in range(12)]


def test_undeleted_delivery_comes_back_after_visibility_timeout_with_higher_dequeue_count(queue: WorkQueue) -> None:
    queue.put("again")
    first = queue.receive(1, 1.0)[0]
    second = wait_for_delivery(queue)
    assert (second.message_id, second.body) == (first.message_id, "again")
    assert second.dequeue_count == first.dequeue_count + 1 == 2
    assert second.receipt != first.receipt
    queue.delete(first)  # stale since the redelivery: the message stays
    assert queue.depth() == 1
    queue.delete(second)
    assert queue.depth() == 0


def test_delete_removes_message_and_tolerates_a_second_delete(queue: WorkQueue) -> None:
    queue.put("done")
    (d,) = queue.receive(1, LONG_S)
    queue.delete(d)
    queue.delete(d)
    assert queue.depth() == 0


def test_delete_with_stale_receipt_keeps_message(queue: WorkQueue) -> None:
    queue.put("kept")
    (old,) = queue.receive(1, LONG_S)
    new = queue.extend(old, LONG_S)  # a new receipt makes the old one stale
    queue.delete(old)
    assert queue.depth() == 1
    queue.delete(new)
    assert queue.depth() == 0


def test_extend_keeps_message_hidden(queue: WorkQueue) -> None:
    queue.put("busy")
    (d,) = queue.receive(1, 1.0)
    extended = queue.extend(d, LONG_S)
    assert (extended.message_id, extended.body, extended.dequeue_count) == (d.message_id, "busy", 1)
    end = time.monotonic() + 2.5  # well past the first 1 s timeout
    while time.monotonic() < end:
        assert queue.receive(1, LONG_S) == []
        time.sleep(0.2)
    queue.delete(extended)
    assert queue.depth() == 0


def test_extend_with_stale_receipt_raises_transient(queue: WorkQueue) -> None:
    queue.put("x")
    (old,) = queue.receive(1, LONG_S)
    queue.extend(old, LONG_S)
    with pytest.raises(TransientError):
        queue.extend(old, LONG_S)


def test_extend_after_delete_raises_transient(queue: WorkQueue) -> None:
    queue.put("x")
    (d,) = queue.receive(1, LONG_S)
    queue.delete(d)
    with pytest.raises(TransientError):
        queue.extend(d, LONG_S)


def test_dead_letter_moves_message_and_keeps_reason(queue: WorkQueue) -> None:
    queue.put("poison")
    queue.put("fine")
    d = next(d for d in queue.receive(32, LONG_S) if d.body == "poison")
    queue.dead_letter(d, "undecodable batch: ünïcode reason")
    expected = [DeadLetter(d.message_id, "poison", "undecodable batch: ünïcode reason", 1)]
    assert queue.dead_letters() == expected
    assert queue.dead_letters() == expected  # reading does not consume them
    assert queue.depth() == 1  # only "fine" is left


def test_dead_letter_with_stale_receipt_changes_nothing(queue: WorkQueue) -> None:
    queue.put("contested")
    (old,) = queue.receive(1, LONG_S)
    current = queue.extend(old, LONG_S)
    queue.dead_letter(old, "from a holder that lost it")
    assert queue.dead_letters() == []
    assert queue.depth() == 1
    queue.dead_letter(current, "from the holder")
    assert [dl.reason for dl in queue.dead_letters()] == ["from the holder"]
    assert queue.depth() == 0


def test_dead_letters_lists_more_than_one_receive_holds(queue: WorkQueue) -> None:
    for i in range(35):
        queue.put(f"p{i}")
    while got := queue.receive(32, LONG_S):
        for d in got:
            queue.dead_letter(d, "bad")
    letters = queue.dead_letters()
    assert sorted(dl.body for dl in letters) == sorted(f"p{i}" for i in range(35))
    assert len(queue.dead_letters()) == 35


def test_depth_counts_hidden_and_visible(queue: WorkQueue) -> None:
    for body in "abc":
        queue.put(body)
    queue.receive(2, LONG_S)
    assert queue.depth() == 3


def test_two_jobs_do_not_share_queues(make_factory: MakeFactory, unique: str) -> None:
    a0, a1 = make_factory(unique + "-a").queue(0), make_factory(unique + "-a").queue(1)
    b0 = make_factory(unique + "-b").queue(0)
    for q in (a0, a1, b0):
        q.create()
    a0.put("for a0")
    assert (b0.receive(32, LONG_S), a1.receive(32, LONG_S)) == ([], [])
    assert (a0.depth(), a1.depth(), b0.depth()) == (1, 0, 0)
    assert len({a0.name, a1.name, b0.name}) == 3
    assert [d.body for d in make_factory(unique + "-a").queue(0).receive(32, LONG_S)] == ["for a0"]


def test_destroy_is_idempotent_and_drops_dead_letters(queue: WorkQueue) -> None:
    queue.put("a")
    queue.put("b")
    queue.dead_letter(queue.receive(1, LONG_S)[0], "bad")
    queue.destroy()
    queue.destroy()
    queue.create()
    assert (queue.depth(), queue.dead_letters(), queue.receive(32, LONG_S)) == (0, [], [])


def test_create_is_idempotent(queue: WorkQueue) -> None:
    queue.put("stays")
    queue.create()
    assert [d.body for d in queue.receive(32, LONG_S)] == ["stays"]


def test_oversized_body_is_rejected(queue: WorkQueue) -> None:
    with pytest.raises(ValueError):
        queue.put("x" * (MAX_BODY_BYTES + 1))
    with pytest.raises(ValueError):
        queue.put("é" * (MAX_BODY_BYTES // 2 + 1))  # the limit counts UTF-8 bytes
    assert queue.depth() == 0


def test_largest_body_round_trips_and_can_be_dead_lettered(queue: WorkQueue) -> None:
    body = "B" * MAX_BODY_BYTES
    queue.put(body)
    (d,) = queue.receive(1, LONG_S)
    assert d.body == body
    queue.dead_letter(d, "r" * 2000)
    (letter,) = queue.dead_letters()
    assert letter.body == body and letter.reason.startswith("rrr")


@pytest.mark.parametrize("body", ["\x00", "a\x1fb", "\ud800"], ids=["nul", "unit-separator", "lone-surrogate"])
def test_body_no_backend_can_carry_is_rejected(queue: WorkQueue, body: str) -> None:
    with pytest.raises(ValueError):
        queue.put(body)
    assert queue.depth() == 0


def test_unicode_text_body_round_trips(queue: WorkQueue) -> None:
    body = "héllo ✓ 日本 😀 <&>\"' \t\r\n  "
    queue.put(body)
    assert [d.body for d in queue.receive(1, LONG_S)] == [body]


def test_batch_with_control_characters_in_names_round_trips(queue: WorkQueue) -> None:
    items = (WorkItem("dir/ctl\x01\x1f\x7f\n\r.txt", 10, 1_700_000_000_123456789, 0o644),
             WorkItem("ünï/日本/😀 <&>.bin", 2**40, 1, 0o600),
             WorkItem("raw/bytes-\udcff\udc80", 0, 0, 0o400))
    batch = Batch(id="b-42", slot=0, items=items, cost=123)
    queue.put(batch.encode())
    (d,) = queue.receive(1, LONG_S)
    assert Batch.decode(d.body) == batch


def test_concurrent_receivers_never_share_a_delivery(make_factory: MakeFactory, unique: str) -> None:
    first = make_factory(unique).queue(0)
    first.create()
    for i in range(40):
        first.put(f"m{i}")
    seen: list[str] = []
    errors: list[Exception] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def receiver() -> None:
        q = make_factory(unique).queue(0)
        start.wait()
        try:
            while got := q.receive(3, LONG_S):
                with lock:
                    seen.extend(d.body for d in got)
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=receiver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(seen) == sorted(f"m{i}" for i in range(40))


def _receive_all(path: str, job: str, out) -> None:
    q = SqliteQueueFactory(path, job).queue(0)
    bodies = []
    while got := q.receive(2, LONG_S):
        bodies += [d.body for d in got]
        for d in got:
            q.delete(d)
    out.put(bodies)


def test_sqlite_receivers_in_several_processes_never_share_a_delivery(tmp_path, unique: str) -> None:
    import multiprocessing

    path = str(tmp_path / "state.db")
    q = SqliteQueueFactory(path, unique).queue(0)
    q.create()
    for i in range(200):
        q.put(f"m{i}")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_receive_all, args=(path, unique, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert sorted(b for r in results for b in r) == sorted(f"m{i}" for i in range(200))
    assert q.depth() == 0


# -- names, errors and choice of backend --------------------------------------------------------

AZURE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


@pytest.mark.parametrize("job", ["nightly", "Nightly Run!", "ÜBER//job--x", "", "-", "a" * 300, "日本"])
def test_azure_queue_names_are_valid_for_any_job(job: str) -> None:
    for slot in (0, 7, 10**9):
        name = queue_name(job, slot)
        assert AZURE_NAME.match(name) and AZURE_NAME.match(name + "-dl"), name


def test_azure_queue_names_of_similar_jobs_differ() -> None:
    jobs = ["Nightly Run", "nightly-run", "nightly_run", "a" * 300, "a" * 301]
    assert len({queue_name(j, 0) for j in jobs}) == len(jobs)
    assert queue_name("x", 1) != queue_name("x", 11)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


def test_azure_unreachable_endpoint_fails_fast_without_secrets() -> None:
    port = closed_port()
    conn = (f"DefaultEndpointsProtocol=http;AccountName={servers.AZURITE_ACCOUNT};"
            f"AccountKey={servers.AZURITE_KEY};QueueEndpoint=http://127.0.0.1:{port}/{servers.AZURITE_ACCOUNT};")
    q = AzureQueueFactory(conn, job="j").queue(0)
    start = time.monotonic()
    with pytest.raises(BackendUnavailable) as err:
        q.create()
    assert time.monotonic() - start < 15
    assert f"127.0.0.1:{port}" in str(err.value)
    assert servers.AZURITE_KEY[:12] not in str(err.value)
    with pytest.raises(TransientError):
        q.put("x")


def test_azure_sas_is_not_in_errors() -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/{servers.AZURITE_ACCOUNT}?sv=2020-08-04&sig=SECRETSIGNATURE"
    q = AzureQueueFactory(job="j", account_url=url).queue(0)
    with pytest.raises(TransientError) as err:
        q.receive(1, 1)
    assert "SECRETSIGNATURE" not in str(err.value) and err.value.__cause__ is None


def test_azure_wrong_key_is_authentication_failed(azurite, unique: str) -> None:
    wrong = azurite.connection_string.replace(servers.AZURITE_KEY, "d3Jvbmcta2V5" * 8)
    q = AzureQueueFactory(wrong, job=unique).queue(0)
    with pytest.raises(AuthenticationFailed) as err:
        q.create()
    assert "d3Jvbmcta2V5" not in str(err.value)


def test_redis_unreachable_is_backend_unavailable_then_transient() -> None:
    client = redis.Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    q = RedisQueueFactory(client, "j").queue(0)
    with pytest.raises(BackendUnavailable):
        q.create()
    with pytest.raises(TransientError):
        q.receive(1, 1)


def test_sqlite_unopenable_file_is_backend_unavailable(tmp_path) -> None:
    q = SqliteQueueFactory(str(tmp_path / "missing-dir" / "state.db"), "j").queue(0)
    with pytest.raises(BackendUnavailable):
        q.create()


def test_sqlite_queue_tables_share_the_file_with_others(tmp_path, unique: str) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER)")
    q = SqliteQueueFactory(str(path), unique).queue(3)
    q.create()
    q.put("x")
    with sqlite3.connect(path) as other:
        tables = {r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        mode = other.execute("PRAGMA journal_mode").fetchone()[0]
    assert {"counters", "queue_messages", "queue_dead_letters"} <= tables
    assert mode == "wal"


def test_open_queue_factory_chooses_the_backend(tmp_path, redis_url: str, azurite) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert isinstance(open_queue_factory("redis", job="j", redis_client=client).queue(0), RedisWorkQueue)
        assert isinstance(open_queue_factory("sqlite", job="j", sqlite_path=str(tmp_path / "s.db")).queue(0),
                          SqliteWorkQueue)
        assert isinstance(open_queue_factory("azure", job="j", connection_string=azurite.connection_string)
                          .queue(0), AzureWorkQueue)
    finally:
        client.close()
    with pytest.raises(ConfigError):
        open_queue_factory("kafka", job="j")
    with pytest.raises(ConfigError):
        open_queue_factory("redis", job="j")


def test_redis_queue_on_fakeredis() -> None:
    pytest.importorskip("lupa", reason="fakeredis runs Lua only with lupa installed")
    import fakeredis

    q = RedisQueueFactory(fakeredis.FakeRedis(), "fake").queue(0)
    q.create()
    q.put("a")
    q.put("b")
    first = q.receive(32, LONG_S)
    assert [(d.body, d.dequeue_count) for d in first] == [("a", 1), ("b", 1)]
    kept = q.extend(first[0], LONG_S)
    q.delete(first[0])
    assert q.depth() == 2
    q.delete(kept)
    q.dead_letter(first[1], "bad")
    assert (q.depth(), [dl.body for dl in q.dead_letters()]) == (0, ["b"])
