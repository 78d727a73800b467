"""The submission controller: deal file items in batches over the live worker slots.

    pick the least-served live slot that is not too far ahead of what it finished
    → take a batch for it from the intake → put it on the slot's queue → mark it sent.

A batch is recorded as pending in the state store before it is put, so a controller killed in
between sends it again on restart under the same batch id (a duplicate message is counted
once by the worker's ``complete_batch``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from copier import log
from copier.config import Tuning
from copier.backends.queues import MAX_BODY_BYTES
from copier.errors import TransientError
from copier.models import Batch, Counters, SlotInfo
from copier.protocols import Frontier, QueueFactory, StateStore

# The most a batch may hold, in take_batch's encoded sizes, so its message always fits in
# MAX_BODY_BYTES (64,512). The message is base64(zlib(json)):
# - json <= 48,128 + 128 = 48,256 bytes: each item's encoded size bounds its JSON entry with
#   every escape at its worst (6 bytes for a control byte, 2 for " or a backslash), and the rest,
#   {"v":1,"id":"b<seq>","s":<slot>,"c":<cost>,"i":[...]}, is 33 bytes and three numbers (< 128);
# - zlib <= compressBound(n) = n + n/4096 + n/16384 + n/2**25 + 13 = 48,282 bytes (zlib.h: what
#   does not compress goes into stored blocks; the level does not matter);
# - base64 makes 4 * ceil(z / 3) = 64,376 <= 64,512 ASCII characters.
# take_batch always takes one item even past the bound; that one alone fits while its path is
# under 8,000 bytes (all control bytes, the worst case); Linux's PATH_MAX is 4,096.
BATCH_MAX_BYTES = 47 * 1024
PUTS_IN_FLIGHT = 8
SETTLE_S = 1.0  # after the first live slot appears: one batch ahead per slot
TAIL_MIN_ITEMS = 16  # the smallest batch guided scheduling makes at the end of a job


class Dealer:
    def __init__(self, frontier: Frontier, state: StateStore, queues: QueueFactory, tuning: Tuning,
                 stop: threading.Event | None = None, exit_when_dealt: bool = True) -> None:
        self.frontier = frontier
        self.state = state
        self.queues = queues
        self.tuning = tuning
        self.stop = stop or threading.Event()
        self.exit_when_dealt = exit_when_dealt
        self.log = log.get().bind(role="controller")
        self.batches_sent = 0
        self._created: set[int] = set()
        self._seeding_done = False
        self._first_live_at: float | None = None
        # The cost of a full batch as dealt so far: batch_max_items binds before batch_max_cost
        # on small files, and an ahead bound of batch_max_cost units would let one slot take
        # dozens of batches (all of a small job, before the other workers have started).
        self._batch_cost = tuning.batch_max_cost
        self._batch_cost_seen = 0
        # levelling (choose_slot): a base subtracted from a late slot's assigned cost, and when
        # each slot's done cost last moved
        self._base: dict[int, int] = {}
        self._progress: dict[int, tuple[int, float]] = {}
        self._moving: set[int] | None = None  # slots making progress at the last choice
        self._requeued_at = float("-inf")
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._puts: set[Future] = set()

    def run(self) -> None:
        self.log.info("controller_started")
        self._pool = ThreadPoolExecutor(PUTS_IN_FLIGHT, thread_name_prefix="deal-put")
        try:
            for batch in self.state.pending_batches():
                self._send(self._live_or_same(batch))
            idle_s = 0.0
            while not self.stop.is_set():
                try:
                    self._reap_puts()
                    if self.deal_once():
                        idle_s = 0.0
                        continue
                    self._requeue_expired()
                    if self.exit_when_dealt and not self._puts and self._nothing_left_to_deal():
                        self.log.info("dealing_finished", batches_sent=self.batches_sent)
                        return
                except TransientError as exc:
                    self.log.warning("controller_backing_off", error=str(exc))
                    self.stop.wait(1.0)
                    continue
                # a worker that just started or finished a batch is served soon; an idle
                # controller backs off to idle_poll_s
                idle_s = min(self.tuning.idle_poll_s, max(idle_s * 2, self.tuning.idle_poll_s / 16))
                self.stop.wait(idle_s)
        finally:
            self._pool.shutdown(wait=True)
            self._pool = None
            self._reap_puts()

    def _requeue_expired(self) -> None:
        """Give the nodes of dead seeders back, at most every quarter of a directory lease:
        a node is only found expired a lease after its seeder died, so looking at every idle
        poll would cost Redis commands and find nothing."""
        now = time.monotonic()
        if now - self._requeued_at >= self.tuning.dir_lease_s / 4:
            self._requeued_at = now
            self.frontier.requeue_expired()

    def _reap_puts(self) -> None:
        """Forget finished puts; an error other than a transient one stops the controller."""
        done = [f for f in self._puts if f.done()]
        for f in done:
            self._puts.discard(f)
        for f in done:
            f.result()

    def deal_once(self) -> bool:
        """Deal one batch if a slot can take it and the intake has items."""
        slots = self.state.slots()
        now = time.time()
        if self._first_live_at is None and any(s.live(now) for s in slots):
            self._first_live_at = time.monotonic()
        # Workers started together register a few milliseconds apart: while the first ones
        # settle in, no slot gets more than one batch ahead, so the first to register does
        # not take the start of the job away from the others.
        settling = self._first_live_at is not None and time.monotonic() - self._first_live_at < SETTLE_S
        slot = self.choose_slot(slots, now, ahead_batches=1 if settling else None)
        if slot is None:
            return False
        counters: list[Counters] = []  # read at most once per deal, when needed

        def read_counters() -> Counters:
            if not counters:
                counters.append(self.state.counters())
            return counters[0]

        if not self._worth_dealing(next(s for s in slots if s.slot == slot), read_counters):
            return False
        t = self.tuning
        max_items, max_cost = self._batch_bounds(slots, read_counters)
        batch = self.state.take_batch(slot, max_items, max_cost, t.cost_per_file, t.cost_per_byte,
                                      max_bytes=BATCH_MAX_BYTES)
        if batch is None:
            return False
        if batch.cost > self._batch_cost_seen:
            self._batch_cost_seen = batch.cost
            self._batch_cost = min(t.batch_max_cost, max(batch.cost, t.batch_max_items * t.cost_per_file))
        self._send(batch)
        return True

    def choose_slot(self, slots: list[SlotInfo], now: float, ahead_batches: int | None = None,
                    mono: float | None = None) -> int | None:
        """The live slot to deal to next, or None if none may take more now.

        Each slot's *level* is its assigned cost less a base that only late arrivals get. The
        *floor* is the least level among live slots that are making progress. A slot may be
        dealt to while its unfinished cost is under the deal-ahead bound and its level is within
        ``balance_slack`` of the floor; of those, the lowest level wins. So a slower worker is
        not outrun: the others wait for it (on the work already in their queues) rather than
        take its share, and assigned costs end level. A slot that finishes nothing for
        ``stall_s`` (a hung or killed worker, a very large file) stops holding the floor; a
        worker that joins late, comes back, or stalled is levelled from at most one deal-ahead
        window below the floor, so it catches up without stopping the others for long."""
        mono = time.monotonic() if mono is None else mono
        ahead = (ahead_batches or self.tuning.deal_ahead_batches) * self._batch_cost
        live = [s for s in slots if s.live(now)]
        if not live:
            return None
        for s in live:
            seen = self._progress.get(s.slot)
            if seen is None or seen[0] != s.done_cost or s.assigned_cost == s.done_cost:
                self._progress[s.slot] = (s.done_cost, mono)  # finished something, or owes nothing
        moving = [s for s in live if mono - self._progress[s.slot][1] < self.tuning.stall_s]
        level = {s.slot: s.assigned_cost - self._base.get(s.slot, 0) for s in live}
        if self._moving is not None:
            # a slot that just arrived, came back or is stalled is levelled against the slots
            # that were already moving, from at most one deal-ahead window below them
            settled = [level[s.slot] for s in moving if s.slot in self._moving]
            if settled:
                lowest = min(settled) - self.tuning.deal_ahead_batches * self._batch_cost
                for s in live:
                    if s.slot not in self._moving and level[s.slot] < lowest:
                        self._base[s.slot] = s.assigned_cost - lowest
                        level[s.slot] = lowest
        self._moving = {s.slot for s in moving}
        floor = min(level[s.slot] for s in (moving or live))
        within = floor + self.tuning.balance_slack * max(floor, 0)
        eligible = [s for s in live if s.assigned_cost - s.done_cost < ahead and level[s.slot] <= within]
        if not eligible:
            return None
        return min(eligible, key=lambda s: (level[s.slot], s.slot)).slot

    def _batch_bounds(self, slots: list[SlotInfo], read_counters: Callable[[], Counters]) -> tuple[int, int]:
        """Full batches while the walk goes on; once it has finished and every slot has had
        a batch, batches shrink with what is left (guided scheduling: half a live slot's share
        of the rest), so the slots' assigned costs end level, not one slot holding the last
        big batch."""
        t = self.tuning
        if not self._seeding_done:
            return t.batch_max_items, t.batch_max_cost
        c = read_counters()
        live = max(1, sum(1 for s in slots if s.live(time.time())))
        if c.batches_dealt < live:
            return t.batch_max_items, t.batch_max_cost  # not the end of a job yet: its start
        share = -(-c.items_waiting // (2 * live))
        items = min(t.batch_max_items, max(TAIL_MIN_ITEMS, share))
        mean_size = c.bytes_total / c.files_total if c.files_total else 0.0
        cost = int(c.items_waiting * (t.cost_per_file + mean_size * t.cost_per_byte) / (2 * live))
        return items, min(t.batch_max_cost, max(cost, TAIL_MIN_ITEMS * t.cost_per_file))

    def _worth_dealing(self, info: SlotInfo, read_counters: Callable[[], Counters]) -> bool:
        """While the walk goes on, a slot that already has a batch's worth of work gets only
        full batches: dealing whatever a page just added would make batches of a few items,
        each costing a queue put, receive and delete and a completion. A hungry slot gets
        what there is, so no worker waits for the walk."""
        t = self.tuning
        if not self._seeding_done and self.frontier is not None and self.frontier.exhausted():
            self._seeding_done = True  # monotonic: an exhausted frontier gets no new nodes
        if self._seeding_done or self.frontier is None:
            return True
        if info.assigned_cost - info.done_cost < t.batch_max_items * t.cost_per_file:
            return True  # hungry
        c = read_counters()
        if c.items_waiting >= t.batch_max_items:
            return True
        mean_size = c.bytes_total / c.files_total if c.files_total else 0.0
        return c.items_waiting * (t.cost_per_file + mean_size * t.cost_per_byte) >= t.batch_max_cost

    def _live_or_same(self, batch: Batch) -> Batch:
        now = time.time()
        slots = self.state.slots()
        if any(s.slot == batch.slot and s.live(now) for s in slots):
            return batch
        other = self.choose_slot(slots, now)
        return self.state.reassign(batch, other) if other is not None else batch

    def _send(self, batch: Batch) -> None:
        """Put the batch on its slot's queue, then mark it sent. Up to PUTS_IN_FLIGHT puts
        overlap while the controller runs (a put is a round trip to the queue service, and
        far away it would otherwise pace the whole fleet); the batch is pending until then."""
        body = batch.encode()
        if len(body) > MAX_BODY_BYTES:
            raise ValueError(f"batch {batch.id} encodes to {len(body)} chars, over the queue's limit")
        if self._pool is None:
            self._put(batch, body)
            return
        while len(self._puts) >= PUTS_IN_FLIGHT:
            wait(self._puts, return_when=FIRST_COMPLETED)
            self._reap_puts()
        self._puts.add(self._pool.submit(self._put, batch, body))

    def _put(self, batch: Batch, body: str) -> None:
        queue = self.queues.queue(batch.slot)
        while True:
            try:
                if batch.slot not in self._created:
                    queue.create()
                    with self._lock:
                        self._created.add(batch.slot)
                queue.put(body)
                break
            except TransientError as exc:
                if self.stop.is_set():
                    return  # stays pending; the next controller sends it
                self.log.warning("batch_put_retry", batch=batch.id, error=str(exc))
                self.stop.wait(1.0)
        self.state.mark_sent(batch.id)
        with self._lock:
            self.batches_sent += 1
        self.log.debug("batch_dealt", batch=batch.id, slot=batch.slot, items=len(batch.items), cost=batch.cost)

    def _nothing_left_to_deal(self) -> bool:
        if not self._seeding_done:
            if not self.frontier.exhausted():
                return False
            self._seeding_done = True  # an exhausted frontier gets no new nodes
        return self.state.counters().items_waiting == 0 and not self.state.pending_batches()
