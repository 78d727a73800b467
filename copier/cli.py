"""The ``copier`` command: seed, control, work, status, failures (distributed) and copy
(everything in one process). Every fatal error ends as one line on stderr, exit code 2."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

import typer

from copier import log
from copier.config import EMBEDDED_IDLE_POLL_S, Tuning, default_state_path
from copier.errors import ConfigError, CopierError, FatalError, JobMismatch
from copier.models import JobSpec, Order, Phase
from copier.phase import job_phase
from copier.runtime import Backends, new_worker_id, open_backends, stop_on_signals, stop_with_parent
from copier.status import render_status, status_document

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Copy huge file trees to Azure Blob Storage, Azure Files or a local disk: on one machine (copy) or on a fleet (seed, control, work).")

JobOpt = typer.Option(..., "--job", "-j", help="job name; every process of one job uses the same")
RedisOpt = typer.Option(None, "--redis", envvar="COPIER_REDIS_URL", help="Redis URL of the distributed state", show_default=False)
StateOpt = typer.Option(None, "--state", help="SQLite state file (one machine, no Redis)")
QueuesOpt = typer.Option(None, "--queues", envvar="COPIER_QUEUES", help="where per-worker queues live: azure | redis | sqlite")
QueueConnOpt = typer.Option(None, "--queue-connection-string", envvar="COPIER_QUEUE_CONNECTION_STRING",
                            help="Azure Storage account holding the work queues", show_default=False)
LogOpt = typer.Option("info", "--log-level", envvar="COPIER_LOG_LEVEL")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"copier: error: {log.scrub(message)}", err=True)
    raise typer.Exit(code)


def _guard(fn: Callable[[], int | None]) -> None:
    """Run a command body; translate copier's errors into one line and an exit code."""
    try:
        code = fn()
    except FatalError as exc:
        _fail(str(exc))
    except CopierError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    raise typer.Exit(code or 0)


def _check_source(source: str) -> str:
    path = os.path.abspath(source)
    if not os.path.exists(path):
        raise ConfigError(f"source {path} does not exist")
    if not os.path.isdir(path):
        raise ConfigError(f"source {path} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"source {path} cannot be read (permission denied)")
    return path


def _open_target(url: str):
    from targets import open_target

    target = open_target(url)
    target.check()
    return target


def _tuning(target, source: str, concurrency: int | None, embedded: bool = False) -> Tuning:
    """Settings from the environment; copies in flight from the flag, else COPIER_WORKER_CONCURRENCY,
    else what the target suggests for this source (few for local disks), else the default.
    On the embedded state an idle poll is a local query, not a request: poll more often."""
    if concurrency is None and "COPIER_WORKER_CONCURRENCY" not in os.environ:
        suggest = getattr(target, "suggested_concurrency", None)
        concurrency = suggest(source) if suggest is not None else None
    poll = EMBEDDED_IDLE_POLL_S if embedded and "COPIER_IDLE_POLL_S" not in os.environ else None
    return Tuning.from_env(worker_concurrency=concurrency, idle_poll_s=poll)


def _suggested_processes(target, source: str) -> int:
    """Worker processes when the user names none: what the target suggests (one per core
    between local disks, where each copy is a few system calls and one interpreter lock would
    bind them all to one core), else none."""
    suggest = getattr(target, "suggested_processes", None)
    return suggest(source) if suggest is not None else 0


def _backends(job: str, redis_url: str | None, state: str | None, queues: str | None, queue_conn: str | None) -> Backends:
    return open_backends(job, redis_url=redis_url, state_path=state, queues=queues, queue_connection_string=queue_conn)


def _wait_for_spec(backends: Backends, stop: threading.Event, role: str, wait_s: float) -> JobSpec:
    """Workers and controllers may start before the first seeder registers the job."""
    deadline = time.monotonic() + wait_s
    logged = 0.0
    while True:
        spec = backends.state.spec()
        if spec is not None:
            return spec
        if time.monotonic() > deadline or stop.is_set():
            raise ConfigError(f"job {backends.job!r} does not exist (start `copier seed SRC --job {backends.job} --target URL` first)")
        if time.monotonic() - logged > 10:
            log.get().info("waiting_for_job", role=role)
            logged = time.monotonic()
        stop.wait(0.5)


def _setup(job: str, role: str, level: str) -> threading.Event:
    log.configure(level)
    log.bind_context(job=job, role=role)
    stop = threading.Event()
    stop_on_signals(stop)
    return stop


@app.command()
def seed(
    source: Optional[str] = typer.Argument(None, help="source root; omit to join a walk already registered"),
    job: str = JobOpt,
    target: Optional[str] = typer.Option(None, "--target", "-t", help="target URL (path, file://, https://…blob…, https://…file…)"),
    order: Order = typer.Option(Order.DFS, "--order", help="dfs: a stack (deep first); bfs: a queue (level by level)"),
    redis_url: Optional[str] = RedisOpt, state: Optional[str] = StateOpt,
    queues: Optional[str] = QueuesOpt, queue_conn: Optional[str] = QueueConnOpt, log_level: str = LogOpt,
) -> None:
    """Walk a source tree and hand its files on. Several seeders may walk one tree."""
    from controller.seeder import Seeder

    def body() -> int:
        stop = _setup(job, "seeder", log_level)
        backends = _backends(job, redis_url, state, queues, queue_conn)
        if source is not None:
            if target is None:
                raise ConfigError("--target is required when a source is given")
            src = _check_source(source)
            tgt = _open_target(target)
            spec = backends.state.register(JobSpec(job, src, tgt.url, order))
        else:
            spec = backends.state.spec()
            if spec is None:
                raise ConfigError(f"job {job!r} does not exist: give the source and --target to start it")
            _check_source(spec.source)
            tgt = _open_target(target or spec.target)
        frontier = backends.frontier(spec.order)
        frontier.seed_root()
        Seeder(spec, frontier, backends.state, tgt, Tuning.from_env(), new_worker_id("seeder"), stop).run()
        return 0

    _guard(body)


@app.command()
def control(
    job: str = JobOpt, redis_url: Optional[str] = RedisOpt, state: Optional[str] = StateOpt,
    queues: Optional[str] = QueuesOpt, queue_conn: Optional[str] = QueueConnOpt, log_level: str = LogOpt,
    wait_s: float = typer.Option(3600, "--wait-s", help="how long to wait for the job to be registered"),
) -> None:
    """Deal file items over the workers' queues, balanced by cost. Exits when all is dealt."""
    from controller.dealer import Dealer

    def body() -> int:
        stop = _setup(job, "controller", log_level)
        backends = _backends(job, redis_url, state, queues, queue_conn)
        spec = _wait_for_spec(backends, stop, "controller", wait_s)
        Dealer(backends.frontier(spec.order), backends.state, backends.queues, Tuning.from_env(), stop).run()
        return 0

    _guard(body)


@app.command()
def work(
    job: str = JobOpt, redis_url: Optional[str] = RedisOpt, state: Optional[str] = StateOpt,
    queues: Optional[str] = QueuesOpt, queue_conn: Optional[str] = QueueConnOpt, log_level: str = LogOpt,
    target: Optional[str] = typer.Option(None, "--target", "-t", envvar="COPIER_TARGET",
                                         help="target URL with credentials (e.g. a SAS); default: the job's"),
    source_root: Optional[str] = typer.Option(None, "--source-root", help="where the source is mounted on this machine; default: the job's"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", help="copies in flight in this worker"),
    wait_s: float = typer.Option(3600, "--wait-s", help="how long to wait for the job to be registered"),
) -> None:
    """Copy the batches dealt to this worker. Exits when the job is done."""
    from copier.transfer import Transfer
    from workers.worker import Worker

    def body() -> int:
        stop = _setup(job, "worker", log_level)
        stop_with_parent(stop)
        backends = _backends(job, redis_url, state, queues, queue_conn)
        spec = _wait_for_spec(backends, stop, "worker", wait_s)
        tgt = _open_target(target or spec.target)
        if tgt.url != spec.target:
            raise JobMismatch(f"--target {tgt.url} is not the job's target {spec.target}")
        root = _check_source(source_root or spec.source)
        tuning = _tuning(tgt, root, concurrency)
        worker_id = new_worker_id("worker")
        log.bind_context(worker=worker_id)
        Worker(worker_id, backends.frontier(spec.order), backends.state, backends.queues,
               Transfer(root, tgt, attempts=tuning.transfer_attempts), tuning, stop).run()
        return 0

    _guard(body)


@app.command()
def status(
    job: str = JobOpt, redis_url: Optional[str] = RedisOpt, state: Optional[str] = StateOpt,
    queues: Optional[str] = QueuesOpt, queue_conn: Optional[str] = QueueConnOpt,
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    watch: bool = typer.Option(False, "--watch", help="refresh every 2 s until the job is done"),
) -> None:
    """Show the counters and the workers. Changes nothing."""

    def body() -> int:
        log.configure("warning")
        backends = _backends(job, redis_url, state, queues, queue_conn)
        spec = backends.state.spec()
        if spec is None:
            raise ConfigError(f"job {job!r} does not exist")
        frontier = backends.frontier(spec.order)
        while True:
            doc = status_document(job, frontier, backends.state, backends.queues)
            typer.echo(json.dumps(doc) if as_json else render_status(doc))
            if not watch or doc["state"] == str(Phase.DONE):
                return 0
            time.sleep(2)

    _guard(body)


@app.command()
def failures(
    job: str = JobOpt, redis_url: Optional[str] = RedisOpt, state: Optional[str] = StateOpt,
    queues: Optional[str] = QueuesOpt, queue_conn: Optional[str] = QueueConnOpt,
    as_json: bool = typer.Option(False, "--json"),
    limit: Optional[int] = typer.Option(None, "--limit"),
) -> None:
    """List what was not copied, with the reason, and the dead-lettered messages."""

    def body() -> int:
        log.configure("warning")
        backends = _backends(job, redis_url, state, queues, queue_conn)
        if backends.state.spec() is None:
            raise ConfigError(f"job {job!r} does not exist")
        records = backends.state.failures(limit)
        letters = backends.state.dead_letters()
        if as_json:
            typer.echo(json.dumps({
                "job": job,
                "failures": [{"path": f.path, "kind": f.kind, "reason": f.reason} for f in records],
                "dead_letters": [{"message_id": d.message_id, "reason": d.reason, "dequeue_count": d.dequeue_count}
                                 for d in letters],
            }))
        else:
            for f in records:
                typer.echo(f"{f.kind:8} {f.path}: {f.reason}")
            for d in letters:
                typer.echo(f"dead-letter message {d.message_id} ({d.dequeue_count} deliveries): {d.reason}")
            typer.echo(f"{len(records)} failure records, {len(letters)} dead letters", err=True)
        return 0

    _guard(body)


def _default_job(source: str, target_url: str) -> str:
    digest = hashlib.sha256(f"{source}\0{target_url}".encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"copy-{digest}"


@app.command()
def copy(
    source: str = typer.Argument(..., help="source directory"),
    target: str = typer.Argument(..., help="target URL or path"),
    job: Optional[str] = typer.Option(None, "--job", "-j", help="job name (default: derived from SOURCE and TARGET)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", show_default=False,
                                          help="copies in flight in each worker process; default 16, 4 between local disks"),
    processes: Optional[int] = typer.Option(None, "--processes", "-p", show_default=False,
                                            help="worker processes (0: the worker runs in this process); default: one per "
                                                 "usable core (at most 8) between local disks, else 0"),
    order: Order = typer.Option(Order.DFS, "--order"),
    dry_run: bool = typer.Option(False, "--dry-run", help="walk and report what would be copied; write nothing"),
    state: Optional[str] = typer.Option(None, "--state", help="SQLite state file (default: per-user state dir)"),
    redis_url: Optional[str] = typer.Option(None, "--redis", help="run on the distributed backends instead"),
    queues: Optional[str] = QueuesOpt, queue_conn: Optional[str] = QueueConnOpt,
    rescan: bool = typer.Option(False, "--rescan", help="walk a finished job again and copy what changed"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress, only the summary"),
    log_level: str = typer.Option("warning", "--log-level", envvar="COPIER_LOG_LEVEL"),
) -> None:
    """Copy SOURCE to TARGET on this machine, resumably: run it again after a kill to resume."""
    from copier import onebox

    def body() -> int:
        src = _check_source(source)
        if dry_run:
            return onebox.dry_run(src, target, order, quiet)
        tgt = _open_target(target)
        name = job or _default_job(src, tgt.url)
        stop = _setup(name, "copy", log_level)
        state_path = None if redis_url else (state or default_state_path(name))
        tuning = _tuning(tgt, src, workers, embedded=redis_url is None)
        procs = processes if processes is not None else _suggested_processes(tgt, src)
        children = None
        if procs > 0:  # forked before the state is opened: see WorkerProcesses
            from copier.embedded import WorkerProcesses

            where = ["--redis", redis_url] if redis_url else ["--state", str(state_path)]
            where += ["--queues", queues] if queues else []
            children = WorkerProcesses([["work", "--job", name, *where, "--concurrency", str(tuning.worker_concurrency),
                                         "--log-level", log_level, "--wait-s", "60"] for _ in range(procs)],
                                       target_url=target, env={"COPIER_IDLE_POLL_S": str(tuning.idle_poll_s)})
        try:
            backends = _backends(name, redis_url, state_path, queues, queue_conn)
            return onebox.copy(JobSpec(name, src, tgt.url, order), backends, tgt, tuning, stop, quiet=quiet,
                               rescan=rescan, worker_processes=children)
        finally:
            if children is not None:
                children.cancel()

    _guard(body)


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `copier failures | head`
        sys.stderr.close()


if __name__ == "__main__":
    main()
