"""``copier copy``'s worker children: forked early, held on a pipe, released or cancelled."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from copier.embedded import WorkerProcesses


def _failing_work(tmp_path: Path) -> list[str]:
    """A ``copier work`` that exits 2 at once: its state folder does not exist."""
    return ["work", "--job", "j", "--state", str(tmp_path / "missing" / "state.sqlite"), "--wait-s", "0"]


def test_released_children_run_their_command_and_a_failure_is_reported(tmp_path) -> None:
    children = WorkerProcesses([_failing_work(tmp_path)] * 2, target_url=None)
    errors: list[str] = []
    children.run(threading.Event(), errors)
    assert [p.exitcode for p in children.procs] == [2, 2]
    assert errors == ["a worker process exited with code 2"]


def test_cancelled_children_exit_without_running_their_command(tmp_path) -> None:
    children = WorkerProcesses([_failing_work(tmp_path)] * 2, target_url=None)
    children.cancel()
    assert [p.exitcode for p in children.procs] == [0, 0]  # 2 had they run


def test_held_children_exit_when_their_parent_is_killed(tmp_path) -> None:
    script = ("import sys, time\n"
              "from copier.embedded import WorkerProcesses\n"
              f"w = WorkerProcesses([{_failing_work(tmp_path)!r}], None)\n"
              "print(w.procs[0].pid, flush=True)\n"
              "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child), "a held child outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
