"""Wiring: open the state, frontier and queue backends of one job.

Distributed: Redis (``COPIER_REDIS_URL``) for state and frontier; Azure Storage Queues
(``COPIER_QUEUE_CONNECTION_STRING``) or Redis lists for the work queues.
Embedded: one SQLite file for all of it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any

from copier.errors import ConfigError
from copier.models import Order
from copier.protocols import Frontier, QueueFactory, StateStore


@dataclass
class Backends:
    job: str
    state: StateStore
    queues: QueueFactory
    kind: str  # "redis" or "sqlite"
    _open_frontier: Any
    redis_client: Any = None

    def frontier(self, order: Order) -> Frontier:
        return self._open_frontier(order)

    def close(self) -> None:
        self.state.close()
        if self.redis_client is not None:
            self.redis_client.close()


def open_backends(job: str, *, redis_url: str | None, state_path: str | None,
                  queues: str | None = None, queue_connection_string: str | None = None) -> Backends:
    from copier.backends.queues import open_queue_factory

    if state_path and redis_url:
        raise ConfigError("give either --state (embedded SQLite) or a Redis URL, not both")
    if state_path:
        from copier.backends.sqlite_frontier import SqliteFrontier
        from copier.backends.sqlite_state import SqliteStateStore

        kind = queues or "sqlite"
        if kind != "sqlite":
            raise ConfigError("the embedded SQLite state keeps its queues in SQLite (--queues sqlite)")
        return Backends(job, SqliteStateStore(state_path, job),
                        open_queue_factory("sqlite", job=job, sqlite_path=state_path), "sqlite",
                        lambda order: SqliteFrontier(state_path, job, order))
    if not redis_url:
        raise ConfigError("no Redis given: set COPIER_REDIS_URL or pass --redis (or --state PATH for one machine)")
    from copier.backends.redis_frontier import RedisFrontier
    from copier.backends.redis_state import RedisStateStore, connect

    client = connect(redis_url)
    kind = queues or ("azure" if queue_connection_string else "redis")
    if kind == "azure":
        if not queue_connection_string:
            raise ConfigError("--queues azure needs COPIER_QUEUE_CONNECTION_STRING (or use --queues redis)")
        factory = open_queue_factory("azure", job=job, connection_string=queue_connection_string)
    elif kind == "redis":
        factory = open_queue_factory("redis", job=job, redis_client=client)
    else:
        raise ConfigError(f"unknown queue backend {kind!r}: choose azure or redis")
    return Backends(job, RedisStateStore(client, job), factory, "redis",
                    lambda order: RedisFrontier(client, job, order), redis_client=client)


def new_worker_id(role: str) -> str:
    """``COPIER_WORKER_ID``, else role, host and pid: a container restarted in place keeps its
    host name and pid, so it takes its own slot back (two live processes never share one)."""
    return os.environ.get("COPIER_WORKER_ID") or f"{role}-{socket.gethostname()[:32]}-{os.getpid()}"


def died_here(holder: str, role: str = "worker") -> bool:
    """True if ``holder`` is an id ``new_worker_id`` gave a process of this host that no longer
    runs: a worker killed and started again on the same machine takes its slot back at once
    instead of waiting out the lease. Conservative: an id of another host, of this process, or
    of a process this user may not signal is never called dead."""
    prefix = f"{role}-{socket.gethostname()[:32]}-"
    pid = holder[len(prefix):] if holder.startswith(prefix) else ""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


PARENT_PID_ENV = "COPIER_PARENT_PID"


def stop_with_parent(stop: threading.Event) -> None:
    """A worker process started by ``copier copy`` (``COPIER_PARENT_PID`` set) stops when that
    process is gone, so a killed ``copier copy`` leaves no worker behind: on Linux the kernel
    sends SIGTERM when the parent dies; a parent gone before this call is noticed here."""
    parent = os.environ.get(PARENT_PID_ENV, "")
    if not parent.isdigit():
        return
    # Ctrl-C reaches the whole process group; the parent passes the stop on as one SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: only the check below
        pass
    if os.getppid() != int(parent):
        stop.set()


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT ask the roles to stop gracefully; a second one exits at once."""

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
