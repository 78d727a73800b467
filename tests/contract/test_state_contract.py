"""The StateStore contract (copier.protocols.StateStore), run against every state backend."""

from __future__ import annotations

import json
import threading

import pytest

from copier.errors import JobMismatch
from copier.models import BatchOutcome, DeadLetter, Failure, JobSpec, ListingPage, Order, WorkItem, drain_holder
from tests.contract.state_backends import backend, eventually  # noqa: F401  (fixture)

LEASE_S = 30.0
SHORT_LEASE_S = 0.2


def spec(job: str, source: str = "/data", target: str = "https://acct.blob.core.windows.net/c/p") -> JobSpec:
    return JobSpec(job=job, source=source, target=target, order=Order.DFS)


def fill_intake(backend, job: str, sizes: list[int]) -> list[WorkItem]:
    """Hand file items on through the frontier, as a seeder does."""
    items = [WorkItem(f"f{i:04}", size, 1_700_000_000_000_000_000 + i, 0o644, verify=i % 2 == 1)
             for i, size in enumerate(sizes)]
    frontier = backend.frontier(job)
    frontier.seed_root()
    lease = frontier.claim("seeder", LEASE_S)
    assert frontier.commit(lease, ListingPage((), tuple(items), (), 0, True))
    return items


def test_spec_is_none_before_register(backend, unique):
    assert backend.state(unique).spec() is None
    assert backend.state(unique).counters().to_dict() == dict.fromkeys(backend.state(unique).counters().to_dict(), 0)


def test_register_same_spec_twice_is_idempotent(backend, unique):
    assert backend.state(unique).register(spec(unique)) == spec(unique)
    assert backend.state(unique).register(spec(unique)) == spec(unique)
    assert backend.state(unique).spec() == spec(unique)


def test_register_other_source_raises_job_mismatch(backend, unique):
    backend.state(unique).register(spec(unique))
    with pytest.raises(JobMismatch, match="source"):
        backend.state(unique).register(spec(unique, source="/elsewhere"))


def test_register_other_target_raises_job_mismatch_without_secrets(backend, unique):
    backend.state(unique).register(spec(unique, target="https://u:pw1@acct.blob.core.windows.net/c?sig=SECRET1"))
    with pytest.raises(JobMismatch, match="target") as caught:
        backend.state(unique).register(spec(unique, target="https://acct.blob.core.windows.net/d?sig=SECRET2"))
    message = str(caught.value)
    assert "SECRET" not in message and "pw1" not in message
    assert "acct.blob.core.windows.net/d" in message


def test_take_batch_from_empty_intake_returns_none(backend, unique):
    assert backend.state(unique).take_batch(0, 10, 1000, 1, 0.0) is None
    assert backend.state(unique).counters().batches_dealt == 0


def test_take_batch_respects_max_items_and_cost_but_takes_at_least_one(backend, unique):
    items = fill_intake(backend, unique, [10, 10, 10, 10, 10, 1000, 10])
    state = backend.state(unique)
    # cost = 5 per file + size: 15 each for the small ones
    by_items = state.take_batch(0, max_items=2, max_cost=10**6, per_file=5, per_byte=1.0)
    assert by_items.items == tuple(items[0:2]) and by_items.cost == 30
    by_cost = state.take_batch(0, max_items=100, max_cost=40, per_file=5, per_byte=1.0)
    assert by_cost.items == tuple(items[2:4]) and by_cost.cost == 30
    stops_before_expensive = state.take_batch(0, max_items=100, max_cost=40, per_file=5, per_byte=1.0)
    assert stops_before_expensive.items == (items[4],)
    over_budget_alone = state.take_batch(0, max_items=100, max_cost=40, per_file=5, per_byte=1.0)
    assert over_budget_alone.items == (items[5],) and over_budget_alone.cost == 1005
    assert state.take_batch(1, max_items=0, max_cost=0, per_file=5, per_byte=1.0).items == (items[6],)
    assert state.take_batch(0, 100, 10**6, 5, 1.0) is None
    c = state.counters()
    assert (c.batches_dealt, c.items_waiting, c.files_total) == (5, 0, 7)


def test_cost_rounds_bytes_down_like_work_item_cost(backend, unique):
    items = fill_intake(backend, unique, [3, 7, 1_000_000_007])
    batch = backend.state(unique).take_batch(2, 10, 10**12, 64, 0.001)
    assert batch.cost == sum(it.cost(64, 0.001) for it in items)
    assert {s.slot: s.assigned_cost for s in backend.state(unique).slots()} == {2: batch.cost}


def test_batch_ids_are_fresh_and_no_item_is_dealt_twice(backend, unique):
    items = fill_intake(backend, unique, [1] * 400)
    state = backend.state(unique)
    dealt: list = []

    def controller() -> None:
        while (batch := state.take_batch(0, 7, 10**6, 1, 0.0)) is not None:
            dealt.append(batch)

    threads = [threading.Thread(target=controller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len({b.id for b in dealt}) == len(dealt)
    got = [it for b in dealt for it in b.items]
    assert sorted(got, key=lambda it: it.path) == items
    assert state.counters().batches_dealt == len(dealt)


def test_pending_batch_survives_until_marked_sent(backend, unique):
    fill_intake(backend, unique, [1, 2, 3])
    first = backend.state(unique).take_batch(0, 2, 10**6, 1, 0.0)
    second = backend.state(unique).take_batch(1, 2, 10**6, 1, 0.0)
    assert backend.state(unique).pending_batches() == [first, second]  # a new controller sees them
    backend.state(unique).mark_sent(first.id)
    backend.state(unique).mark_sent(first.id)  # idempotent
    assert backend.state(unique).pending_batches() == [second]
    backend.state(unique).mark_sent(second.id)
    assert backend.state(unique).pending_batches() == []


def test_reassign_moves_cost(backend, unique):
    fill_intake(backend, unique, [100, 200])
    state = backend.state(unique)
    batch = state.take_batch(0, 10, 10**6, 10, 1.0)
    moved = state.reassign(batch, 3)
    assert (moved.id, moved.slot, moved.cost, moved.items) == (batch.id, 3, 320, batch.items)
    assert state.reassign(moved, 3) == moved  # again: no double move
    assert {s.slot: s.assigned_cost for s in state.slots()} == {0: 0, 3: 320}
    assert state.pending_batches() == [moved]


def test_complete_batch_twice_counts_once(backend, unique):
    fill_intake(backend, unique, [5, 6])
    state = backend.state(unique)
    batch = state.take_batch(0, 10, 10**6, 1, 1.0)
    outcome = BatchOutcome(batch.id, 0, batch.cost, files_done=1, bytes_done=5, files_skipped=0,
                           files_failed=1, failures=(Failure("f0001", "vanished"),))
    assert state.complete_batch(outcome) is True
    assert state.complete_batch(outcome) is False
    assert backend.state(unique).complete_batch(outcome) is False
    c = state.counters()
    assert (c.files_done, c.bytes_done, c.files_failed, c.batches_completed) == (1, 5, 1, 1)
    (slot,) = state.slots()
    assert (slot.done_cost, slot.files_done, slot.bytes_done) == (batch.cost, 1, 5)
    assert state.failures() == [Failure("f0001", "vanished")]


def test_complete_batch_counts_skips(backend, unique):
    state = backend.state(unique)
    assert state.complete_batch(BatchOutcome("b1", 1, 50, files_skipped=3, bytes_skipped=30))
    assert state.complete_batch(BatchOutcome("other-id", 1, 10, files_done=1, bytes_done=1))
    assert not state.complete_batch(BatchOutcome("other-id", 1, 10, files_done=1, bytes_done=1))
    c = state.counters()
    assert (c.files_skipped, c.bytes_skipped, c.files_done, c.batches_completed) == (3, 30, 1, 2)


def test_claim_slot_gives_lowest_free_then_new(backend, unique):
    state = backend.state(unique)
    assert [state.claim_slot(w, LEASE_S) for w in ("w0", "w1", "w2")] == [0, 1, 2]
    state.release_slot(1, "w1")
    assert state.claim_slot("w3", LEASE_S) == 1
    assert [(s.slot, s.holder) for s in state.slots()] == [(0, "w0"), (1, "w3"), (2, "w2")]


def test_claim_slot_prefers_expired_own_slot(backend, unique):
    state = backend.state(unique)
    assert state.claim_slot("w0", SHORT_LEASE_S) == 0
    assert state.claim_slot("w1", SHORT_LEASE_S) == 1
    eventually(lambda: all(s.holder is None for s in state.slots()))
    assert state.claim_slot("w1", LEASE_S, prefer=1) == 1
    assert state.claim_slot("w2", LEASE_S, prefer=1) == 0  # prefer is held: the lowest free one
    assert state.claim_slot("w3", LEASE_S, prefer=7) == 7  # never claimed: free
    assert [s.slot for s in state.slots()] == [0, 1, 7]


def test_claim_slot_again_by_its_holder_returns_the_same_slot(backend, unique):
    state = backend.state(unique)
    assert state.claim_slot("w0", LEASE_S) == 0
    assert state.claim_slot("w0", LEASE_S) == 0  # a retried claim does not leak a second slot
    assert state.claim_slot("w1", LEASE_S) == 1


def test_take_over_only_expired_slot(backend, unique):
    state = backend.state(unique)
    live = state.claim_slot("w0", LEASE_S)
    dying = state.claim_slot("w1", SHORT_LEASE_S)
    assert state.take_over_slot(live, "w2", LEASE_S) is False
    eventually(lambda: state.take_over_slot(dying, "w2", LEASE_S))
    holders = {s.slot: s.holder for s in state.slots()}
    assert holders == {live: "w0", dying: "w2"}
    assert state.renew_slot(dying, "w1", LEASE_S) is False  # the old holder learns it lost it
    assert state.renew_slot(dying, "w2", LEASE_S) is True


def test_take_over_a_live_slot_only_from_the_holder_named_dead(backend, unique):
    state = backend.state(unique)
    slot = state.claim_slot("w0", LEASE_S)
    assert state.take_over_slot(slot, "w2", LEASE_S, dead_holder="w1") is False  # w0 holds it, not w1
    assert state.slots()[0].holder == "w0"
    assert state.take_over_slot(slot, "w2", LEASE_S, dead_holder="w0") is True
    assert state.slots()[0].holder == "w2"
    assert state.renew_slot(slot, "w0", LEASE_S) is False


def test_renew_slot_extends_lease_and_last_seen(backend, unique):
    state = backend.state(unique)
    slot = state.claim_slot("w0", SHORT_LEASE_S)
    (before,) = state.slots()
    assert state.renew_slot(slot, "w0", LEASE_S) is True
    (after,) = state.slots()
    assert after.lease_expires_at > before.lease_expires_at + 10 and after.last_seen >= before.last_seen
    assert after.holder == "w0" and after.live(after.last_seen)


def test_release_slot_frees_it_only_for_its_holder(backend, unique):
    state = backend.state(unique)
    slot = state.claim_slot("w0", LEASE_S)
    state.release_slot(slot, "w1")
    assert state.slots()[0].holder == "w0"
    state.release_slot(slot, "w0")
    (info,) = state.slots()
    assert info.holder is None and info.lease_expires_at == 0
    assert state.take_over_slot(slot, "w1", LEASE_S) is True


def test_failures_keyed_by_path(backend, unique):
    state = backend.state(unique)
    state.record_failures([Failure("b/2", "unreadable"), Failure("a/1", "special", "special"),
                           Failure("c/\udcff", "bad name")])
    state.record_failures([Failure("b/2", "vanished")])
    assert state.failures() == [Failure("a/1", "special", "special"), Failure("b/2", "vanished"),
                                Failure("c/\udcff", "bad name")]
    assert state.failures(limit=2) == state.failures()[:2]
    assert state.failures(limit=0) == []
    assert state.counters().files_failed == 0  # recording does not count


def test_dead_letters_are_idempotent_by_message_id(backend, unique):
    state = backend.state(unique)
    letter = DeadLetter("m1", "body\u00e9", "undecodable", 5)
    state.record_dead_letter(letter)
    state.record_dead_letter(letter)
    state.record_dead_letter(DeadLetter("m0", "x", "poison", 1))
    assert state.dead_letters() == [DeadLetter("m0", "x", "poison", 1), letter]


def test_two_jobs_in_one_store_are_isolated(backend, unique):
    one, two = backend.state(unique + "a"), backend.state(unique + "b")
    one.register(spec(unique + "a"))
    two.register(spec(unique + "b", source="/other"))
    fill_intake(backend, unique + "a", [1, 2])
    assert two.take_batch(0, 10, 10**6, 1, 0.0) is None
    batch = one.take_batch(0, 10, 10**6, 1, 0.0)
    assert batch.id == "b1" and two.pending_batches() == []
    one.claim_slot("w", LEASE_S)
    one.record_failures([Failure("x", "y")])
    assert two.slots() == [] and two.failures() == []
    assert two.complete_batch(BatchOutcome(batch.id, 0, 1, files_done=2)) is True  # other job's id space
    assert one.counters().files_done == 0 and two.counters().files_done == 2
    assert two.spec().source == "/other"


def encoded_size(item: WorkItem) -> int:
    """An item's encoded size as the take_batch contract defines it."""
    p = item.path.encode("utf-8", "surrogateescape")
    control = sum(b < 0x20 for b in p)
    digits = len(str(item.size)) + len(str(item.mtime_ns)) + len(str(item.mode))
    return len(p) + 5 * control + p.count(b'"') + p.count(b"\\") + digits + 10


def test_take_batch_stops_before_max_bytes_but_takes_at_least_one(backend, unique):
    paths = ["plain", "d/tab\there\x1f", 'quote"back\\slash', "d\u00e9/\u4e2d\U0001f600\udcff", "x" * 3000, "e"]
    items = [WorkItem(p, 10 ** i, -5 if i == 2 else 1_700_000_000_000_000_000 + i, 0o100644, verify=i % 2 == 1)
             for i, p in enumerate(paths)]
    for it in items:  # the size bounds the item's entry in Batch.encode's JSON (and its comma)
        entry = json.dumps([it.path, it.size, it.mtime_ns, it.mode, int(it.verify)], ensure_ascii=False,
                           separators=(",", ":")).encode("utf-8", "surrogateescape")
        assert len(entry) + 1 <= encoded_size(it)
    sizes = [encoded_size(it) for it in items]
    frontier = backend.frontier(unique)
    frontier.seed_root()
    assert frontier.commit(frontier.claim("seeder", LEASE_S), ListingPage((), tuple(items), (), 0, True))
    state = backend.state(unique)
    exactly = state.take_batch(0, 100, 10**9, 1, 0.0, max_bytes=sizes[0] + sizes[1])
    assert exactly.items == tuple(items[0:2])  # reaching max_bytes is allowed, passing it is not
    stops_before = state.take_batch(0, 100, 10**9, 1, 0.0, max_bytes=sizes[2] + sizes[3] - 1)
    assert stops_before.items == (items[2],)
    assert state.take_batch(1, 100, 10**9, 1, 0.0, max_bytes=1).items == (items[3],)  # at least one
    assert state.take_batch(1, 100, 10**9, 1, 0.0, max_bytes=0).items == (items[4],)
    assert state.take_batch(1, 100, 10**9, 1, 0.0, max_bytes=None).items == (items[5],)
    assert state.take_batch(0, 100, 10**9, 1, 0.0, max_bytes=10**6) is None
    c = state.counters()
    assert (c.batches_dealt, c.items_waiting) == (5, 0)
    assert state.pending_batches()[0] == exactly


def test_take_batch_with_max_bytes_still_respects_max_items_and_cost(backend, unique):
    items = fill_intake(backend, unique, [10, 10, 10, 1000, 10])
    state = backend.state(unique)
    assert state.take_batch(0, 2, 10**6, 5, 1.0, max_bytes=10**6).items == tuple(items[0:2])
    assert state.take_batch(0, 100, 40, 5, 1.0, max_bytes=10**6).items == (items[2],)
    bound = encoded_size(items[3]) + encoded_size(items[4])
    assert state.take_batch(0, 100, 10**6, 5, 1.0, max_bytes=bound).items == tuple(items[3:5])


def test_a_slot_only_being_drained_goes_to_the_next_worker_that_needs_one(backend, unique):
    state = backend.state(unique)
    state.claim_slot("w0", LEASE_S)
    dead = state.claim_slot("w1", SHORT_LEASE_S)
    eventually(lambda: state.take_over_slot(dead, drain_holder("w0"), LEASE_S))
    assert state.slots()[dead].holder == drain_holder("w0")
    # w1 comes back (or a new worker joins): it gets the drained slot, not a new one
    assert state.claim_slot("w1b", LEASE_S) == dead
    assert state.slots()[dead].holder == "w1b"
    state.release_slot(dead, drain_holder("w0"))  # the drainer's release no longer frees it
    assert state.slots()[dead].holder == "w1b"
    assert state.claim_slot("w2", LEASE_S) == 2
