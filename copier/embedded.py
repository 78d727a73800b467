"""``copier copy``: every role in one process, on the embedded SQLite default or on Redis.

The same Seeder, Dealer and Worker as the distributed commands, run as threads. Threads
rather than subprocesses: the work is I/O-bound round trips, and one process keeps the
SQLite file's writers in one place (see BENCHMARKS.md for the figures).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from copier import log
from copier.config import Tuning
from copier.models import Counters, JobSpec
from copier.protocols import Target
from copier.runtime import PARENT_PID_ENV, Backends, new_worker_id
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
            on_tick: Callable[[Counters, float], None] | None = None, tick_s: float = 0.5,
            worker_processes: list[list[str]] | None = None, target_url: str | None = None) -> RunResult:
    """Run seeder, dealer and one worker in threads until the job is done or ``stop`` is set.
    With ``worker_processes`` (the ``copier work`` arguments of each), the workers run as
    child processes instead, so copies use every core."""
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
    roles: list[tuple[str, Callable[[], Any]]] = [("seeder", seeder.run), ("controller", dealer.run)]
    if worker_processes:
        roles.append(("workers", lambda: _run_children(worker_processes, stop, target_url, errors)))
    else:
        worker = Worker(new_worker_id("worker"), frontier, backends.state, backends.queues,
                        Transfer(spec.source, target, attempts=tuning.transfer_attempts), tuning, stop, prefer_slot=0)
        roles.append(("worker", worker.run))
    threads = [threading.Thread(target=guarded(n, f), name=n, daemon=True) for n, f in roles]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        threads[-1].join(timeout=tick_s)
        if on_tick is not None:
            on_tick(backends.state.counters(), time.monotonic() - started)
    for t in threads:
        t.join()
    return RunResult(backends.state.counters(), time.monotonic() - started, stop.is_set(), errors)


def _run_children(commands: list[list[str]], stop: threading.Event, target_url: str | None, errors: list[str]) -> None:
    """Start ``copier work`` children and wait for them; pass a stop on as SIGTERM. The target
    URL travels in the environment, never on a command line that ``ps`` shows."""
    env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
    if target_url:
        env["COPIER_TARGET"] = target_url
    children = [subprocess.Popen([sys.executable, "-m", "copier.cli", *args], env=env) for args in commands]
    try:
        while any(c.poll() is None for c in children):
            if stop.wait(0.05):  # a short poll: the job ends when the last child does
                for c in children:
                    if c.poll() is None:
                        c.send_signal(signal.SIGTERM)
                for c in children:
                    c.wait()
        failed = [c.returncode for c in children if c.returncode]
        if failed and not stop.is_set():
            errors.append(f"a worker process exited with code {failed[0]}")
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
