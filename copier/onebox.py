"""``copier copy`` on one machine: resume, progress, summary, dry run."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from typing import Any

import typer

from copier import log
from copier.config import Tuning
from copier.embedded import RunResult, WorkerProcesses, run_job
from copier.errors import ConfigError
from copier.models import Counters, JobSpec, Order, Phase
from copier.phase import job_phase
from copier.protocols import Target
from copier.runtime import Backends, open_backends
from copier.status import _size


def copy(spec: JobSpec, backends: Backends, target: Target, tuning: Tuning, stop: threading.Event,
         *, quiet: bool, rescan: bool, worker_processes: WorkerProcesses | None = None) -> int:
    existing = backends.state.spec()
    if existing is not None and rescan:
        _sqlite_only(backends, "--rescan")
        from copier.backends.sqlite_state import purge_job

        purge_job(backends.state)  # type: ignore[arg-type]
        existing = None
    if existing is not None and backends.kind == "sqlite":
        from copier.backends.sqlite_state import recover_embedded

        recover_embedded(backends.state)  # type: ignore[arg-type]
    spec = backends.state.register(spec)
    frontier = backends.frontier(spec.order)
    if existing is not None and job_phase(frontier, backends.state) == Phase.DONE:
        c = backends.state.counters()
        typer.echo(f"nothing new to copy: job {spec.job} already finished ({c.files_done} copied, "
                   f"{c.files_skipped} skipped, {c.files_failed} failed of {c.files_total} files). "
                   f"Use --rescan to walk the source again and copy what changed.")
        return 1 if c.files_failed else 0
    resumed = existing is not None
    frontier.seed_root()
    if not quiet:
        typer.echo(f"{'resuming' if resumed else 'starting'} job {spec.job}: {spec.source} -> {spec.target}", err=True)
    progress = _Progress(quiet)
    try:
        result = run_job(spec, backends, target, tuning, stop, on_tick=progress.tick,
                         worker_processes=worker_processes)
    finally:
        progress.close()
    return _summary(spec, backends, result)


def _sqlite_only(backends: Backends, what: str) -> None:
    if backends.kind != "sqlite":
        raise ConfigError(f"{what} works on the embedded state; on Redis start a new --job")


def _summary(spec: JobSpec, backends: Backends, result: RunResult) -> int:
    c = result.counters
    secs = max(result.seconds, 1e-6)
    lines = [
        f"job {spec.job}: {'stopped' if result.stopped else 'done'} in {result.seconds:.1f} s",
        f"  files   {c.files_done} copied, {c.files_skipped} already there, {c.files_failed} failed, of {c.files_total}",
        f"  bytes   {_size(c.bytes_done)} copied ({_size(c.bytes_done / secs)}/s), {c.files_done / secs:.0f} files/s",
        f"  other   {c.entries_failed} entries not copied (symlinks, special files, unreadable directories)",
    ]
    failures = backends.state.failures(limit=20)
    if failures:
        lines.append("  not copied:")
        lines += [f"    {f.path}: {f.reason}" for f in failures]
        total = c.files_failed + c.entries_failed
        if total > len(failures):
            lines.append(f"    … {total - len(failures)} more: copier failures --job {spec.job}"
                         + (f" --state {backends.state.db.path}" if backends.kind == "sqlite" else ""))  # type: ignore[attr-defined]
    for err in result.errors:
        lines.append(f"  error: {log.scrub(err)}")
    if result.stopped and not result.errors:
        lines.append("  run the same command again to resume")
    typer.echo("\n".join(lines))
    if result.errors:
        return 2
    if result.stopped:
        return 130
    return 1 if (c.files_failed or c.entries_failed) else 0


class _Progress:
    """Live progress on a terminal; a plain line every 10 s otherwise; nothing when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._last_line = 0.0
        self._live: Any = None
        if not quiet and self.tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=Console(stderr=True), refresh_per_second=4, transient=True)
            self._live.start()

    def tick(self, c: Counters, elapsed: float) -> None:
        if self.quiet:
            return
        rate = c.files_done / elapsed if elapsed > 0 else 0.0
        byte_rate = c.bytes_done / elapsed if elapsed > 0 else 0.0
        walked = c.dirs_total > 0 and c.dirs_done == c.dirs_total  # the walk is over: totals are final
        eta = ""
        if walked and rate > 0:
            left = c.files_total - c.files_settled
            eta = f"  ETA {max(0, left) / rate:.0f} s"
        line = (f"{c.files_settled}/{c.files_total}{'' if walked else '+'} files  "
                f"{_size(c.bytes_done)}/{_size(c.bytes_total)}  {rate:.0f} files/s  {_size(byte_rate)}/s"
                f"{eta}  failed {c.files_failed + c.entries_failed}  dirs {c.dirs_done}/{c.dirs_total}")
        if self._live is not None:
            self._live.update(line)
        elif time.monotonic() - self._last_line >= 10:
            self._last_line = time.monotonic()
            log.get().info("progress", files_done=c.files_done, files_total=c.files_total,
                           bytes_done=c.bytes_done, files_per_s=round(rate, 1), failed=c.files_failed)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


class _NullTarget:
    """What a dry run writes to: nothing. Empty, so the walk checks nothing per file."""

    url = "(dry run)"
    has_directories = False
    mtime_tolerance_ns = 0

    def is_empty(self) -> bool:
        return True

    def make_dir(self, path: str) -> None:
        pass

    def flush(self) -> None:
        pass


def dry_run(source: str, target_url: str, order: Order, quiet: bool) -> int:
    """Walk SOURCE with the real seeder into a throwaway state and report what it found."""
    from controller.seeder import Seeder
    from targets.url import redact

    log.configure("warning")
    with tempfile.TemporaryDirectory(prefix="copier-dry-run-") as tmp:
        backends = open_backends("dry-run", redis_url=None, state_path=os.path.join(tmp, "state.sqlite"))
        spec = backends.state.register(JobSpec("dry-run", source, redact(target_url), order))
        frontier = backends.frontier(order)
        frontier.seed_root()
        tuning = Tuning.from_env(intake_high_water=10**12)
        started = time.monotonic()
        Seeder(spec, frontier, backends.state, _NullTarget(), tuning, "dry-run").run()  # type: ignore[arg-type]
        c = backends.state.counters()
        failures = backends.state.failures()
        typer.echo(f"dry run: {source} -> {spec.target} (nothing written)")
        typer.echo(f"  would copy {c.files_total} files, {_size(c.bytes_total)}, in {c.dirs_total} directories"
                   f" (walked in {time.monotonic() - started:.1f} s)")
        if failures:
            typer.echo(f"  would not copy {len(failures)} entries:")
            for f in failures[:50]:
                typer.echo(f"    {f.kind:8} {f.path}: {f.reason}")
            if len(failures) > 50:
                typer.echo(f"    … {len(failures) - 50} more")
        backends.close()
    return 1 if failures else 0
