"""``copier copy``: every role in one process, on the embedded SQLite default or on Redis.

The same Seeder, Dealer and Worker as the distributed commands, run as threads. Threads
rather than subprocesses: the work is I/O-bound round trips, and one process keeps the
SQLite file's writers in one place (see BENCHMARKS.md for the figures).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from copier import log
from copier.config import Tuning
from copier.models import Counters, JobSpec
from copier.protocols import Target
from copier.runtime import Backends, new_worker_id
from copier.transfer import Transfer
from controller.dealer import Dealer
from controller.seeder import Seeder
from workers.worker import Worker


@dataclass
class RunResult:
    counters: Counters
    seconds: float
    stopped: bool
    errors: list[str] = field(default_factory=list)


def run_job(spec: JobSpec, backends: Backends, target: Target, tuning: Tuning, stop: threading.Event,
            on_tick: Callable[[Counters, float], None] | None = None, tick_s: float = 0.5) -> RunResult:
    """Run seeder, dealer and one worker in threads until the job is done or ``stop`` is set."""
    frontier = backends.frontier(spec.order)
    started = time.monotonic()
    errors: list[str] = []

    def guarded(name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # a fatal error in one role stops them all
                errors.append(f"{name}: {exc}")
                log.get().error("role_failed", role=name, error=str(exc))
                stop.set()
        return run

    seeder = Seeder(spec, frontier, backends.state, target, tuning, new_worker_id("seeder"), stop)
    dealer = Dealer(frontier, backends.state, backends.queues, tuning, stop)
    worker = Worker(new_worker_id("worker"), frontier, backends.state, backends.queues,
                    Transfer(spec.source, target, attempts=tuning.transfer_attempts), tuning, stop, prefer_slot=0)
    threads = [threading.Thread(target=guarded(n, f), name=n, daemon=True)
               for n, f in (("seeder", seeder.run), ("controller", dealer.run), ("worker", worker.run))]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        threads[-1].join(timeout=tick_s)
        if on_tick is not None:
            on_tick(backends.state.counters(), time.monotonic() - started)
    for t in threads:
        t.join()
    return RunResult(backends.state.counters(), time.monotonic() - started, stop.is_set(), errors)
