"""The worker in-process on the embedded backends: poison and over-delivered messages go to
the dead-letter store and become failure records; bad source files fail with their reason;
the worker carries on and exits when the job is done."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from copier.backends.queues import open_queue_factory
from copier.backends.sqlite_frontier import SqliteFrontier
from copier.backends.sqlite_state import SqliteStateStore
from copier.config import Tuning
from copier.models import JobSpec, ListingPage, Order, WorkItem
from copier.runtime import died_here
from copier.transfer import Transfer
from targets.local import LocalTarget
from workers.worker import Worker

TUNING = Tuning(idle_poll_s=0.02, visibility_timeout_s=1, slot_lease_s=5, max_deliveries=1, worker_concurrency=2)


class Job:
    def __init__(self, tmp_path: Path) -> None:
        self.src, self.dst = tmp_path / "src", tmp_path / "dst"
        self.src.mkdir()
        db = str(tmp_path / "state.sqlite")
        self.state = SqliteStateStore(db, "j")
        self.frontier = SqliteFrontier(db, "j", Order.DFS)
        self.queues = open_queue_factory("sqlite", job="j", sqlite_path=db)
        self.state.register(JobSpec("j", str(self.src), str(self.dst)))
        self.frontier.seed_root()

    def walk(self, items: list[WorkItem]) -> None:
        """Commit the root's listing as a seeder would."""
        lease = self.frontier.claim("seeder", 30)
        assert self.frontier.commit(lease, ListingPage((), tuple(items), (), last=True))

    def deal(self, slot: int = 0):
        batch = self.state.take_batch(slot, 100, 10**12, 1, 0.0)
        queue = self.queues.queue(slot)
        queue.create()
        queue.put(batch.encode())
        self.state.mark_sent(batch.id)
        return batch, queue

    def worker(self) -> Worker:
        target = LocalTarget(str(self.dst))
        target.check()
        return Worker("w1", self.frontier, self.state, self.queues, Transfer(str(self.src), target, attempts=1),
                      TUNING, threading.Event(), prefer_slot=0)


def _file(job: Job, name: str, data: bytes) -> WorkItem:
    path = job.src / name
    path.write_bytes(data)
    st = path.stat()
    return WorkItem(name, st.st_size, st.st_mtime_ns, 0o644)


def _run(worker: Worker, deadline_s: float = 30) -> None:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(deadline_s)
    assert not thread.is_alive(), "the worker did not finish the job"


def test_undecodable_message_is_dead_lettered_and_the_worker_goes_on(tmp_path):
    job = Job(tmp_path)
    good = _file(job, "good.txt", b"good")
    job.walk([good])
    _, queue = job.deal()
    queue.put("this is not a batch")
    _run(job.worker())
    [letter] = job.state.dead_letters()
    assert "undecodable" in letter.reason
    assert (job.dst / "good.txt").read_bytes() == b"good"
    assert job.state.counters().files_done == 1


def test_message_delivered_too_often_is_dead_lettered_and_its_items_fail(tmp_path):
    job = Job(tmp_path)
    items = [_file(job, f"f{i}", b"x") for i in range(3)]
    job.walk(items)
    _, queue = job.deal()
    [first] = queue.receive(1, 30)  # a worker that died holding it...
    queue.extend(first, 0)  # ...and its visibility timeout ran out
    _run(job.worker())
    [letter] = job.state.dead_letters()
    assert "delivered 2 times" in letter.reason
    c = job.state.counters()
    assert (c.files_failed, c.files_done, c.batches_completed, c.batches_dealt) == (3, 0, 1, 1)
    reasons = {f.path: f.reason for f in job.state.failures()}
    assert set(reasons) == {"f0", "f1", "f2"} and all("dead-lettered" in r for r in reasons.values())
    assert queue.dead_letters(), "the queue's own dead-letter store keeps the message"


def test_vanished_and_changed_source_files_fail_with_their_reason(tmp_path):
    job = Job(tmp_path)
    gone = _file(job, "gone.txt", b"soon gone")
    grew = _file(job, "grew.txt", b"short")
    fine = _file(job, "fine.txt", b"fine")
    job.walk([gone, grew, fine])
    os.remove(job.src / "gone.txt")
    (job.src / "grew.txt").write_bytes(b"much longer than it was")
    job.deal()
    _run(job.worker())
    reasons = {f.path: f.reason for f in job.state.failures()}
    assert "vanished" in reasons["gone.txt"]
    assert "size changed" in reasons["grew.txt"]
    assert not (job.dst / "gone.txt").exists() and not (job.dst / "grew.txt").exists()
    assert (job.dst / "fine.txt").read_bytes() == b"fine"
    c = job.state.counters()
    assert (c.files_done, c.files_failed) == (1, 2)


def test_redelivered_batch_is_counted_once(tmp_path):
    job = Job(tmp_path)
    items = [_file(job, f"f{i}", b"data") for i in range(4)]
    job.walk(items)
    batch, queue = job.deal()
    queue.put(batch.encode())  # the same batch twice: a controller died between put and mark_sent
    _run(job.worker())
    c = job.state.counters()
    assert (c.files_done, c.bytes_done, c.files_skipped) == (4, 16, 0)
    assert queue.depth() == 0


def test_died_here_names_only_dead_processes_of_this_host():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = socket.gethostname()[:32]
    assert died_here(f"worker-{host}-{child.pid}")
    assert not died_here(f"worker-{host}-{os.getpid()}")  # this process
    assert not died_here(f"worker-{host}-{os.getppid()}")  # alive
    assert not died_here(f"worker-another-host-{child.pid}")
    assert not died_here(f"seeder-{host}-{child.pid}")  # another role's id
    assert not died_here("a-name-of-my-own")


def test_a_restarted_worker_takes_back_the_slot_of_its_dead_predecessor(tmp_path):
    job = Job(tmp_path)
    job.walk([_file(job, "a", b"x")])
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = f"worker-{socket.gethostname()[:32]}-{child.pid}"
    assert job.state.claim_slot("someone-else", 600) == 0
    assert job.state.claim_slot(dead, 600) == 1  # lease still running, but its process is gone
    batch, _ = job.deal(slot=1)
    target = LocalTarget(str(job.dst))
    worker = Worker(f"worker-{socket.gethostname()[:32]}-{os.getpid()}", job.frontier, job.state, job.queues,
                    Transfer(str(job.src), target, attempts=1), TUNING, threading.Event())
    _run(worker)
    assert worker.slot == 1
    assert (job.dst / "a").read_bytes() == b"x"
    assert len(job.state.slots()) == 2


def test_a_worker_draining_a_dead_slot_stops_once_another_worker_claims_it(tmp_path):
    job = Job(tmp_path)
    job.walk([_file(job, "a", b"1"), _file(job, "b", b"2")])
    assert job.state.claim_slot("gone", 0.05) == 0
    queue = job.queues.queue(0)
    queue.create()

    def deal_one() -> None:
        batch = job.state.take_batch(0, 1, 10**12, 1, 0.0)
        queue.put(batch.encode())
        job.state.mark_sent(batch.id)

    deal_one()
    deadline = time.monotonic() + 10
    while any(s.live(time.time()) for s in job.state.slots()):
        assert time.monotonic() < deadline, "the dead worker's lease never ran out"
        time.sleep(0.01)
    worker = job.worker()
    drain_once = worker.drain_once

    def drain_then_newcomer(*args, **kwargs):
        found = drain_once(*args, **kwargs)
        # a restarted worker needs a slot while this one drains: it gets this one, not a new
        # one, and the dealer feeds it again; that is the newcomer's work, not the drainer's
        if job.state.slots()[0].holder != "newcomer":
            assert job.state.claim_slot("newcomer", 600) == 0
            deal_one()
        return found

    worker.drain_once = drain_then_newcomer
    assert worker._take_over_one() is True
    assert queue.depth() == 1
    assert [s.holder for s in job.state.slots()] == ["newcomer"]


def test_copies_are_flushed_before_their_batch_is_counted(tmp_path):
    job = Job(tmp_path)
    items = [_file(job, f"f{i}", b"data %d" % i) for i in range(3)]
    job.walk(items)
    job.deal()
    worker = job.worker()
    events: list[str] = []
    target, state = worker.transfer.target, worker.state
    real_put, real_flush, real_complete = target.put, target.flush, state.complete_batch

    def put(path, payload):
        real_put(path, payload)
        events.append("put")

    def flush():
        real_flush()
        events.append("flush")

    def complete_batch(outcome):
        events.append("complete")
        return real_complete(outcome)

    target.put, target.flush, state.complete_batch = put, flush, complete_batch
    _run(worker)
    assert events == ["put", "put", "put", "flush", "complete"]
    assert job.state.counters().files_done == 3


def test_a_target_that_cannot_make_a_batch_durable_stops_the_worker_and_keeps_the_batch(tmp_path):
    from copier.errors import BackendUnavailable

    job = Job(tmp_path)
    job.walk([_file(job, "f", b"data")])
    job.deal()
    worker = job.worker()

    def failing_flush():
        raise BackendUnavailable("the disk reported a write error")

    worker.transfer.target.flush = failing_flush
    raised: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the worker went on after its target failed"
    assert [type(e) for e in raised] == [BackendUnavailable]
    assert job.state.counters().files_done == 0  # not acknowledged: the message comes back
