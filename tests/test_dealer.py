"""The dealer without servers: batches always fit one queue message; slot choice."""

from __future__ import annotations

import random

import pytest

from controller.dealer import BATCH_MAX_BYTES, Dealer
from copier.backends.queues import MAX_BODY_BYTES, open_queue_factory
from copier.backends.sqlite_frontier import SqliteFrontier
from copier.backends.sqlite_state import SqliteStateStore
from copier.config import Tuning
from copier.models import Batch, ListingPage, Order, SlotInfo, WorkItem

JOB = "dealt"
LEASE_S = 600.0


def random_name(rng: random.Random, nbytes: int, pick) -> str:
    """A name of exactly ``nbytes`` bytes (UTF-8, surrogateescape) of characters from ``pick``."""
    chars, size = [], 0
    while size < nbytes:
        c = pick(rng)
        n = len(c.encode("utf-8", "surrogateescape"))
        if size + n > nbytes:
            c, n = "z", 1
        chars.append(c)
        size += n
    return "".join(chars)


def mixed_char(rng: random.Random) -> str:
    """Poorly compressible: control characters, ASCII, 2-, 3- and 4-byte UTF-8, undecodable bytes."""
    r = rng.random()
    if r < 0.10:
        return chr(rng.randrange(1, 0x20))
    if r < 0.15:
        return rng.choice(['"', "\\", "\udcff"])  # escaped in JSON, or an undecodable byte
    if r < 0.55:
        return rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .-_+=~!#$%&()[]{}")
    if r < 0.75:
        return chr(rng.randrange(0xA0, 0x800))
    if r < 0.95:
        return chr(rng.randrange(0x4E00, 0x9FFF))
    return chr(rng.randrange(0x1F300, 0x1F650))


def escaped_char(rng: random.Random) -> str:
    """Only characters JSON writes as six bytes (``\\u00XX``): the worst expansion."""
    return rng.choice([chr(c) for c in range(1, 0x20) if chr(c) not in "\b\t\n\f\r"])


def deal_everything(tmp_path, items: list[WorkItem], slots: int = 2) -> list[str]:
    """Commit ``items`` as one listing page, deal until the intake is empty, return every body put."""
    db = tmp_path / "state.db"
    frontier, state = SqliteFrontier(db, JOB, Order.DFS), SqliteStateStore(db, JOB)
    queues = open_queue_factory("sqlite", job=JOB, sqlite_path=str(tmp_path / "queues.db"))
    try:
        assert frontier.seed_root()
        assert frontier.commit(frontier.claim("seeder", LEASE_S), ListingPage((), tuple(items), (), 0, True))
        for w in range(slots):
            state.claim_slot(f"w{w}", LEASE_S)
        dealer = Dealer(frontier, state, queues, Tuning())
        while dealer.deal_once():
            pass
        counters = state.counters()
        assert (counters.items_waiting, counters.files_total) == (0, len(items))
        assert state.pending_batches() == []
        bodies = []
        for slot in range(slots):
            queue = queues.queue(slot)
            while got := queue.receive(32, LEASE_S):
                bodies.extend(d.body for d in got)
        assert len(bodies) == counters.batches_dealt == dealer.batches_sent
        return bodies
    finally:
        frontier.close()
        state.close()


def items_named(names: list[str]) -> list[WorkItem]:
    return [WorkItem(name, 1000 + i, 1_700_000_000_000_000_000 + i, 0o100644, verify=i % 2 == 1)
            for i, name in enumerate(names)]


@pytest.mark.parametrize(("pick", "nbytes"), [(mixed_char, 2000), (escaped_char, 4000)], ids=["mixed", "escaped"])
def test_long_incompressible_names_are_dealt_once_each_in_messages_that_fit(tmp_path, pick, nbytes):
    rng = random.Random(20240611)
    items = items_named([random_name(rng, nbytes, pick) for _ in range(250)])
    assert len({it.path for it in items}) == 250
    bodies = deal_everything(tmp_path, items)
    sizes = [len(body.encode("utf-8")) for body in bodies]
    assert max(sizes) <= MAX_BODY_BYTES
    dealt = [it for body in bodies for it in Batch.decode(body).items]
    assert len(dealt) == 250 and len(bodies) > 1  # one batch of 250 would be far over the limit
    assert sorted(dealt, key=lambda it: it.path) == sorted(items, key=lambda it: it.path)  # each exactly once


def test_ordinary_paths_still_fill_a_whole_batch(tmp_path):
    names = [f"projects/alpha/src/module_{i:03}/".ljust(140, "x") + f"/file{i:03}.py" for i in range(250)]
    assert all(len(n) == 151 for n in names)
    (body,) = deal_everything(tmp_path, items_named(names))
    assert len(Batch.decode(body).items) == Tuning().batch_max_items


def test_batch_bound_leaves_room_for_the_worst_case():
    # the proof in controller/dealer.py, recomputed: JSON ≤ bound + header, zlib's compressBound, base64
    n = BATCH_MAX_BYTES + 128
    z = n + (n >> 12) + (n >> 14) + (n >> 25) + 13
    assert 4 * -(-z // 3) <= MAX_BODY_BYTES


# -- choose_slot --------------------------------------------------------------------------

NOW = 1_000_000.0


def dealer(batch_max_cost: int = 100, deal_ahead_batches: int = 2) -> Dealer:
    tuning = Tuning(batch_max_cost=batch_max_cost, deal_ahead_batches=deal_ahead_batches)  # ahead bound: 200
    return Dealer(frontier=None, state=None, queues=None, tuning=tuning)


def live(slot: int, assigned: int = 0, done: int = 0) -> SlotInfo:
    return SlotInfo(slot=slot, holder=f"w{slot}", lease_expires_at=NOW + 30, assigned_cost=assigned, done_cost=done)


def test_choose_slot_picks_least_assigned_cost_among_live_slots():
    slots = [live(0, assigned=50), live(1, assigned=20), live(2, assigned=30)]
    assert dealer().choose_slot(slots, NOW) == 1


def test_choose_slot_breaks_ties_by_lowest_slot():
    assert dealer().choose_slot([live(3, 10), live(1, 10), live(2, 10)], NOW) == 1


def test_choose_slot_skips_free_and_expired_slots():
    free = SlotInfo(slot=0, holder=None, lease_expires_at=0.0)
    expired = SlotInfo(slot=1, holder="w1", lease_expires_at=NOW)  # expires exactly now: not live
    assert dealer().choose_slot([free, expired, live(2, assigned=500, done=450)], NOW) == 2


def test_choose_slot_skips_slots_at_or_past_the_ahead_bound():
    full = live(0, assigned=200, done=0)  # unfinished 200 == ahead bound: full
    assert dealer().choose_slot([full, live(1, assigned=199)], NOW) == 1
    assert dealer().choose_slot([full, live(1, assigned=200, done=50)], NOW) == 1
    assert dealer().choose_slot([full, live(1, assigned=300, done=50)], NOW) is None


def test_a_slot_dealt_ahead_of_a_slower_one_waits_for_it():
    d = dealer()
    slow = live(0, assigned=1000, done=800)  # full, but finishing work: it holds the floor
    fast = live(1, assigned=1030, done=1030)  # hungry, yet 3% over the floor (slack is 2%)
    assert d.choose_slot([slow, fast], NOW, mono=0.0) is None
    assert d.choose_slot([slow, live(1, assigned=1019, done=1019)], NOW, mono=1.0) == 1  # within 2%


def test_a_slot_that_finishes_nothing_for_stall_s_stops_holding_the_others_back():
    d = dealer()
    stuck = live(0, assigned=1000, done=800)
    fast = live(1, assigned=1100, done=1100)
    assert d.choose_slot([stuck, fast], NOW, mono=0.0) is None
    stall_s = d.tuning.stall_s
    assert d.choose_slot([stuck, fast], NOW, mono=stall_s - 0.1) is None
    assert d.choose_slot([stuck, fast], NOW, mono=stall_s) == 1
    moved = live(0, assigned=1001, done=801)  # it finished something (and was dealt): the floor again
    assert d.choose_slot([moved, fast], NOW, mono=stall_s + 1) is None


def test_a_slot_that_waited_idle_is_not_stalled_when_it_gets_work():
    d = dealer()
    assert d.choose_slot([live(0), live(1)], NOW, mono=0.0) == 0
    later = d.tuning.stall_s * 3  # both owed nothing all along: neither has stalled
    assert d.choose_slot([live(0), live(1)], NOW, mono=later) == 0
    # slot 0 got a full load a second ago: it holds the floor, and slot 1 is 2.5% above it
    assert d.choose_slot([live(0, assigned=200), live(1, assigned=205, done=205)], NOW, mono=later + 1) is None


def test_a_late_slot_is_levelled_from_one_ahead_window_below_the_others():
    d = dealer()  # ahead window: 2 batches of 100
    old = [live(0, assigned=5000, done=4950), live(1, assigned=5000, done=5000)]
    assert d.choose_slot(old, NOW, mono=0.0) == 0
    late = live(2)
    assert d.choose_slot(old + [late], NOW, mono=1.0) == 2  # dealt to at once
    # it catches up by one ahead window (200), then the three are level
    assert d.choose_slot(old + [live(2, assigned=199, done=199)], NOW, mono=2.0) == 2
    assert d.choose_slot(old + [live(2, assigned=200, done=200)], NOW, mono=3.0) == 0


def test_large_slack_deals_by_speed():
    d = Dealer(frontier=None, state=None, queues=None,
               tuning=Tuning(batch_max_cost=100, deal_ahead_batches=2, balance_slack=1.0))
    assert d.choose_slot([live(0, assigned=1000, done=800), live(1, assigned=1900, done=1900)], NOW) == 1


def test_choose_slot_is_none_without_live_slots():
    assert dealer().choose_slot([], NOW) is None
    assert dealer().choose_slot([SlotInfo(0, None, 0.0), SlotInfo(1, "w1", NOW - 1, assigned_cost=0)], NOW) is None
