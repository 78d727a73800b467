"""The worker: hold a slot, receive batches, copy every item, record the outcome once.

    claim a slot → receive up to 32 messages → copy their items (bounded concurrency)
    → complete_batch (counted once per batch id) → delete the message → repeat.

When its own queue is empty the worker takes over the queue of a slot whose lease ran out,
so no work is stranded behind a dead container. A message delivered more than
``max_deliveries`` times, or one that cannot be decoded, goes to the dead-letter store and
its items become failure records. The worker exits 0 when the job is done.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from copier import log
from copier.config import Tuning
from copier.errors import FatalError, PoisonMessage, TransientError
from copier.models import Batch, BatchOutcome, DeadLetter, Delivery, Failure, Phase, drain_holder
from copier.phase import job_phase
from copier.protocols import Frontier, QueueFactory, StateStore, WorkQueue
from copier.runtime import died_here
from copier.transfer import Outcome, Status, Transfer


@dataclass
class _InHand:
    """One delivery being worked on, and the item outcomes gathered so far."""

    queue: WorkQueue
    delivery: Delivery
    batch: Batch
    pending: int
    received_at: float
    outcomes: list[Outcome] = field(default_factory=list)
    # Held across extend-and-assign and across complete-and-delete, so a delete never uses a
    # receipt that an extension has just replaced.
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


class Worker:
    def __init__(self, worker_id: str, frontier: Frontier, state: StateStore, queues: QueueFactory,
                 transfer: Transfer, tuning: Tuning, stop: threading.Event | None = None,
                 prefer_slot: int | None = None) -> None:
        self.id = worker_id
        self.frontier = frontier
        self.state = state
        self.queues = queues
        self.transfer = transfer
        self.tuning = tuning
        self.stop = stop or threading.Event()
        self.prefer_slot = prefer_slot
        self.slot: int | None = None
        self.log = log.get().bind(role="worker", worker=worker_id)
        self._pool = ThreadPoolExecutor(max_workers=tuning.worker_concurrency, thread_name_prefix=f"copy-{worker_id}")
        self._lock = threading.Lock()
        self._in_hand: dict[str, _InHand] = {}
        self._slots_held: set[int] = set()
        self._queues_by_slot: dict[int, WorkQueue] = {}
        self._fatal: BaseException | None = None
        self._done_event = threading.Event()
        self._looked_for_expired_at = float("-inf")
        self._walked = False

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        self.slot = self._reclaim_from_dead_predecessor()
        if self.slot is None:
            self.slot = self.state.claim_slot(self.id, self.tuning.slot_lease_s, prefer=self.prefer_slot)
        self._slots_held.add(self.slot)
        own = self._queue(self.slot)
        own.create()
        self.log.info("worker_started", slot=self.slot, queue=own.name)
        keeper = threading.Thread(target=self._keep_leases, name=f"lease-{self.id}", daemon=True)
        keeper.start()
        idle_s = 0.0
        try:
            while not self.stop.is_set() and self._fatal is None:
                try:
                    if self.drain_once(self._queue(self.slot), check_all=False):
                        idle_s = 0.0
                        continue
                    if self._take_over_one():
                        idle_s = 0.0
                        continue
                    if self._idle_and_done():
                        self.log.info("job_done")
                        return
                except TransientError as exc:
                    self.log.warning("worker_backing_off", error=str(exc))
                    self.stop.wait(1.0)
                    continue
                # An empty queue is often only a gap between two deals: look again soon, then
                # back off exponentially to idle_poll_s so an idle fleet costs few requests.
                idle_s = min(self.tuning.idle_poll_s, max(idle_s * 2, self.tuning.idle_poll_s / 16))
                self.stop.wait(idle_s)
        finally:
            self._finish_in_hand()
            self._pool.shutdown(wait=True, cancel_futures=self._fatal is not None)
            self._done_event.set()
            for slot in list(self._slots_held):
                self.state.release_slot(slot, self.id)
            keeper.join(timeout=5)
            self.log.info("worker_stopped", dir_calls=getattr(self.transfer.target, "dir_calls", None))
        if self._fatal is not None:
            raise self._fatal

    def drain_once(self, queue: WorkQueue, check_all: bool) -> bool:
        """Receive one round of messages from ``queue`` and start their items. Waits while
        too much is in hand. Returns True if anything was received."""
        while self._items_in_hand() >= 2 * self.tuning.worker_concurrency and not self.stop.is_set():
            time.sleep(0.005)
        try:
            deliveries = queue.receive(self.tuning.receive_max, self.tuning.visibility_timeout_s)
        except TransientError as exc:
            self.log.warning("receive_failed", queue=queue.name, error=str(exc))
            return False
        for delivery in deliveries:
            self._start(queue, delivery, check_all)
        return bool(deliveries)

    def _start(self, queue: WorkQueue, delivery: Delivery, check_all: bool) -> None:
        try:
            batch = Batch.decode(delivery.body)
        except PoisonMessage as exc:
            self._dead_letter(queue, delivery, None, str(exc))
            return
        if delivery.dequeue_count > self.tuning.max_deliveries:
            self._dead_letter(queue, delivery, batch, f"delivered {delivery.dequeue_count} times without completing")
            return
        if not batch.items:
            self._complete(_InHand(queue, delivery, batch, 0, time.time()))
            return
        hand = _InHand(queue, delivery, batch, len(batch.items), time.time())
        with self._lock:
            held = self._in_hand.get(delivery.message_id)
            if held is not None:  # back to us while still in hand (an extension failed)
                with held.lock:
                    held.delivery, held.received_at = delivery, time.time()
                return
            self._in_hand[delivery.message_id] = hand
        # A redelivered batch may have been partly copied by its earlier attempt: look before
        # sending again, and count a match as ours unless the target held files beforehand.
        again = check_all or delivery.dequeue_count > 1
        for item in batch.items:
            future = self._pool.submit(self.transfer, item, again or item.verify, again and not item.verify)
            future.add_done_callback(lambda f, h=hand: self._item_done(h, f))

    def _item_done(self, hand: _InHand, future: Future) -> None:
        if future.cancelled():
            return  # stopping after a fatal error; the message comes back to someone else
        exc = future.exception()
        if exc is not None:
            if isinstance(exc, FatalError):
                self._fatal = self._fatal or exc
                self.stop.set()
            else:
                self.log.error("transfer_crashed", batch=hand.batch.id, error=repr(exc))
            with self._lock:
                self._in_hand.pop(hand.delivery.message_id, None)
            return  # the message stays; it comes back after its visibility timeout
        with self._lock:
            hand.outcomes.append(future.result())
            hand.pending -= 1
            finished = hand.pending == 0
            if finished:
                self._in_hand.pop(hand.delivery.message_id, None)
        if finished:
            self._complete(hand)

    def _complete(self, hand: _InHand) -> None:
        done = [o for o in hand.outcomes if o.status is Status.COPIED]
        skipped = [o for o in hand.outcomes if o.status is Status.SKIPPED]
        failed = [o for o in hand.outcomes if o.status is Status.FAILED]
        outcome = BatchOutcome(
            batch_id=hand.batch.id, slot=hand.batch.slot, cost=hand.batch.cost,
            files_done=len(done), bytes_done=sum(o.item.size for o in done),
            files_skipped=len(skipped), bytes_skipped=sum(o.item.size for o in skipped),
            files_failed=len(failed),
            failures=tuple(Failure(o.item.path, o.reason, "file") for o in failed),
        )
        for o in failed:
            self.log.warning("item_failed", path=o.item.path, reason=o.reason)
        try:
            if done:  # what is counted copied must be durable first (one sync per batch)
                self.transfer.target.flush()
            first = self.state.complete_batch(outcome)
            with hand.lock:
                hand.closed = True
                hand.queue.delete(hand.delivery)
        except TransientError as exc:
            self.log.warning("complete_failed", batch=hand.batch.id, error=str(exc))
            return  # redelivered later; complete_batch is idempotent
        except FatalError as exc:  # the target cannot make the batch durable: stop, keep the message
            self._fatal = self._fatal or exc
            self.stop.set()
            return
        self.log.debug("batch_completed", batch=hand.batch.id, first=first, done=len(done),
                       skipped=len(skipped), failed=len(failed))

    def _dead_letter(self, queue: WorkQueue, delivery: Delivery, batch: Batch | None, reason: str) -> None:
        self.log.error("batch_dead_lettered", message=delivery.message_id, reason=reason)
        self.state.record_dead_letter(DeadLetter(delivery.message_id, delivery.body, reason, delivery.dequeue_count))
        if batch is not None:
            why = f"dead-lettered: {reason}"
            self.state.complete_batch(BatchOutcome(
                batch_id=batch.id, slot=batch.slot, cost=batch.cost, files_failed=len(batch.items),
                failures=tuple(Failure(it.path, why, "file") for it in batch.items)))
        queue.dead_letter(delivery, reason)

    # -- takeover, leases, shutdown ---------------------------------------------------------
    def _reclaim_from_dead_predecessor(self) -> int | None:
        """A slot still leased to a worker process of this host that has died (killed and
        started again): take it now, with its queue and its place in the levelling, rather
        than open a new slot and leave that one to expire."""
        if self.prefer_slot is not None:
            return None
        now = time.time()
        for info in self.state.slots():
            if info.live(now) and info.holder and died_here(info.holder):
                if self.state.take_over_slot(info.slot, self.id, self.tuning.slot_lease_s, dead_holder=info.holder):
                    self.log.info("slot_reclaimed", slot=info.slot, from_worker=info.holder)
                    return info.slot
        return None

    def _take_over_one(self) -> bool:
        """Drain one expired slot's queue, if any has messages. True if work was found.
        Looks at most once per idle poll period: a slot expires a lease after its worker
        died, and an idle fleet asking every few milliseconds would cost the state store."""
        mono = time.monotonic()
        if mono - self._looked_for_expired_at < self.tuning.idle_poll_s:
            return False
        self._looked_for_expired_at = mono
        now = time.time()
        for info in self.state.slots():
            if info.slot in self._slots_held or info.live(now):
                continue
            queue = self._queue(info.slot)
            if queue.depth() == 0:
                continue
            # Held under a drain name: a worker that needs a slot (its dead owner started again,
            # or a newcomer) may claim it meanwhile; the draining stops once one has.
            drainer = drain_holder(self.id)
            if not self.state.take_over_slot(info.slot, drainer, self.tuning.slot_lease_s):
                continue
            self._slots_held.add(info.slot)
            self.log.info("slot_taken_over", slot=info.slot, from_worker=info.holder)
            found = False
            try:
                while (not self.stop.is_set() and not self._claimed_by_another(info.slot, drainer)
                       and self.drain_once(queue, check_all=True)):
                    found = True
                self._wait_in_hand()
            finally:
                self._slots_held.discard(info.slot)
                self.state.release_slot(info.slot, drainer)
            if found:
                return True
        return False

    def _claimed_by_another(self, slot: int, drainer: str) -> bool:
        holder = next((s.holder for s in self.state.slots() if s.slot == slot), None)
        return holder is not None and holder != drainer

    def _keep_leases(self) -> None:
        """Renew this worker's own slot (a slot taken over is not renewed: its lease runs out
        and the dealer stops feeding it while it is drained) and extend long batches."""
        period = self.tuning.slot_lease_s / 3
        while not self._done_event.wait(period):
            slot = self.slot
            try:
                if slot is not None and not self.state.renew_slot(slot, self.id, self.tuning.slot_lease_s):
                    self.log.warning("slot_lease_lost", slot=slot)
                    self._slots_held.discard(slot)
                    self.slot = self.state.claim_slot(self.id, self.tuning.slot_lease_s, prefer=slot)
                    self._slots_held.add(self.slot)
                    self._queue(self.slot).create()
                self._extend_visibility()
            except TransientError as exc:
                self.log.warning("lease_renew_failed", slot=slot, error=str(exc))
            except Exception as exc:  # the keeper must not die silently: stop the worker instead
                self.log.error("lease_keeper_failed", error=repr(exc))
                self._fatal = self._fatal or exc
                self.stop.set()
                return

    def _extend_visibility(self) -> None:
        """Keep long batches hidden while they are still being copied."""
        now = time.time()
        with self._lock:
            hands = [h for h in self._in_hand.values()
                     if now - h.received_at > self.tuning.visibility_timeout_s / 2]
        for hand in hands:
            with hand.lock:
                if hand.closed:
                    continue
                try:
                    hand.delivery = hand.queue.extend(hand.delivery, self.tuning.visibility_timeout_s)
                    hand.received_at = time.time()
                except TransientError as exc:
                    self.log.warning("extend_failed", batch=hand.batch.id, error=str(exc))

    def _queue(self, slot: int) -> WorkQueue:
        queue = self._queues_by_slot.get(slot)
        if queue is None:
            queue = self._queues_by_slot[slot] = self.queues.queue(slot)
        return queue

    def _items_in_hand(self) -> int:
        with self._lock:
            return sum(h.pending for h in self._in_hand.values())

    def _wait_in_hand(self) -> None:
        while self._items_in_hand() and self._fatal is None:
            time.sleep(0.01)

    def _finish_in_hand(self) -> None:
        """Graceful stop: let the copies in hand finish and record them."""
        self._wait_in_hand()

    def _idle_and_done(self) -> bool:
        if self._items_in_hand():
            return False
        if not self._walked:
            self._walked = self.frontier.exhausted()  # once true, true for good
        return job_phase(self.frontier, self.state, walked=self._walked) == Phase.DONE
