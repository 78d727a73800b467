"""``copier copy``: every role in one process, on the embedded SQLite default or on Redis.

The same Seeder, Dealer and Worker as the distributed commands, run as threads. To Blob and
Files the worker is a thread too: the work is round trips, which threads overlap. Between
local disks, where each copy is a dozen quick system calls on the processor, the workers run
in forked child processes (``WorkerProcesses``), one per core.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
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
            worker_processes: WorkerProcesses | None = None) -> RunResult:
    """Run seeder, dealer and one worker in threads until the job is done or ``stop`` is set.
    With ``worker_processes`` (held ``copier work`` children), those are released and do the
    copying instead, so copies use every core."""
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
    if worker_processes is not None:
        roles.append(("workers", lambda: worker_processes.run(stop, errors)))
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


class WorkerProcesses:
    """``copier work`` children for ``copier copy``, forked early and held until released.

    Forked before the parent opens its state store or starts a thread, so a child shares no
    open database and no lock held by another thread; and forked rather than started afresh,
    so it skips the interpreter's start and the imports (about 0.4 s of processor each). Each
    child waits on a pipe: ``release`` lets them run, ``cancel`` (or the parent's death, which
    closes the pipe) makes them exit without touching the job. The target URL reaches them in
    the environment, never on a command line that ``ps`` shows."""

    def __init__(self, commands: list[list[str]], target_url: str | None, env: dict[str, str] | None = None) -> None:
        env = {**(env or {}), PARENT_PID_ENV: str(os.getpid())}
        if target_url:
            env["COPIER_TARGET"] = target_url
        self._go_r, self._go_w = os.pipe()
        ctx = multiprocessing.get_context("fork")
        self.procs = [ctx.Process(target=_held_child, args=(args, env, self._go_r, self._go_w),
                                  name=f"copier-work-{i}", daemon=False) for i, args in enumerate(commands)]
        self._released = False
        try:
            for proc in self.procs:
                proc.start()
        except BaseException:  # a fork refused halfway: the ones started must not wait forever
            self.cancel()
            raise
        finally:
            os.close(self._go_r)

    def release(self) -> None:
        """Let every child run its ``copier work``."""
        if not self._released:
            self._released = True
            os.write(self._go_w, b"g" * len(self.procs))
            os.close(self._go_w)

    def cancel(self) -> None:
        """Children not yet released exit at once; released ones get SIGTERM. Waits for all."""
        if not self._released:
            self._released = True
            os.close(self._go_w)  # end of file: each child exits 0 without starting
        else:
            for proc in self.procs:
                if proc.is_alive():
                    proc.terminate()
        for proc in self.procs:
            if proc.pid is not None:  # started
                proc.join()

    def run(self, stop: threading.Event, errors: list[str]) -> None:
        """Release the children and wait for them; pass a stop on as SIGTERM."""
        if stop.is_set():
            self.cancel()
            return
        self.release()
        try:
            while any(p.exitcode is None for p in self.procs):
                # Woken by a child's exit; the timeout bounds how late a stop is passed on.
                multiprocessing.connection.wait([p.sentinel for p in self.procs if p.exitcode is None], timeout=0.05)
                for p in self.procs:
                    p.join(timeout=0)  # reap the finished ones (sets exitcode)
                if stop.is_set():
                    self.cancel()
            failed = [p.exitcode for p in self.procs if p.exitcode]
            if failed and not stop.is_set():
                errors.append(f"a worker process exited with code {failed[0]}")
        finally:
            for p in self.procs:
                if p.is_alive():
                    p.kill()
                    p.join()


def _held_child(args: list[str], env: dict[str, str], go_r: int, go_w: int) -> None:
    """In a forked child: wait for the parent's go, then run ``copier work`` with ``args``."""
    os.close(go_w)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which passes it on
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nothing to lose before the go
    if not os.read(go_r, 1):
        return  # cancelled, or the parent died
    os.close(go_r)
    os.environ.update(env)
    from copier.cli import app

    app(args=args, prog_name="copier")  # raises SystemExit with the command's exit code
