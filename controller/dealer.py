"""The submission controller: deal file items in batches over the live worker slots.

    pick the slot with the least assigned cost that is not too far ahead of what it finished
    → take a batch for it from the intake → put it on the slot's queue → mark it sent.

A batch is recorded as pending in the state store before it is put, so a controller killed in
between sends it again on restart under the same batch id (a duplicate message is counted
once by the worker's ``complete_batch``).
"""

from __future__ import annotations

import threading
import time

from copier import log
from copier.config import Tuning
from copier.backends.queues import MAX_BODY_BYTES
from copier.errors import TransientError
from copier.models import Batch, Phase, SlotInfo
from copier.phase import job_phase
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

    def run(self) -> None:
        self.log.info("controller_started")
        for batch in self.state.pending_batches():
            self._send(self._live_or_same(batch))
        while not self.stop.is_set():
            try:
                if self.deal_once():
                    continue
                self.frontier.requeue_expired()
                if self.exit_when_dealt and self._nothing_left_to_deal():
                    self.log.info("dealing_finished", batches_sent=self.batches_sent)
                    return
            except TransientError as exc:
                self.log.warning("controller_backing_off", error=str(exc))
                self.stop.wait(1.0)
                continue
            self.stop.wait(self.tuning.idle_poll_s)

    def deal_once(self) -> bool:
        """Deal one batch if a slot can take it and the intake has items."""
        slot = self.choose_slot(self.state.slots(), time.time())
        if slot is None:
            return False
        t = self.tuning
        batch = self.state.take_batch(slot, t.batch_max_items, t.batch_max_cost, t.cost_per_file, t.cost_per_byte,
                                      max_bytes=BATCH_MAX_BYTES)
        if batch is None:
            return False
        self._send(batch)
        return True

    def choose_slot(self, slots: list[SlotInfo], now: float) -> int | None:
        """The live slot with the least assigned cost among those whose unfinished cost is
        under the deal-ahead bound; None if every live slot is full (or none is live)."""
        ahead = self.tuning.deal_ahead_batches * self.tuning.batch_max_cost
        eligible = [s for s in slots if s.live(now) and s.assigned_cost - s.done_cost < ahead]
        if not eligible:
            return None
        return min(eligible, key=lambda s: (s.assigned_cost, s.slot)).slot

    def _live_or_same(self, batch: Batch) -> Batch:
        now = time.time()
        slots = self.state.slots()
        if any(s.slot == batch.slot and s.live(now) for s in slots):
            return batch
        other = self.choose_slot(slots, now)
        return self.state.reassign(batch, other) if other is not None else batch

    def _send(self, batch: Batch) -> None:
        body = batch.encode()
        if len(body) > MAX_BODY_BYTES:
            raise ValueError(f"batch {batch.id} encodes to {len(body)} chars, over the queue's limit")
        queue = self.queues.queue(batch.slot)
        while True:
            try:
                if batch.slot not in self._created:
                    queue.create()
                    self._created.add(batch.slot)
                queue.put(body)
                break
            except TransientError as exc:
                if self.stop.is_set():
                    return  # stays pending; the next controller sends it
                self.log.warning("batch_put_retry", batch=batch.id, error=str(exc))
                self.stop.wait(1.0)
        self.state.mark_sent(batch.id)
        self.batches_sent += 1
        self.log.debug("batch_dealt", batch=batch.id, slot=batch.slot, items=len(batch.items), cost=batch.cost)

    def _nothing_left_to_deal(self) -> bool:
        if job_phase(self.frontier, self.state) == Phase.SEEDING:
            return False
        counters = self.state.counters()
        return counters.items_waiting == 0 and not self.state.pending_batches()
