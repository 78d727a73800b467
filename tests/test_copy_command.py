"""`copier copy`: one process, embedded SQLite state; kill -9 and run again resumes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from copier.backends.sqlite_state import SqliteStateStore
from scripts import gentree
from tests import e2e

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("copy-src") / "tree"
    gentree.generate(root, "skewed", seed=3, files=3000)
    os.symlink("nowhere", root / "a link")
    return root


def _copy(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(e2e.copier_cmd("copy", *args), env=env, capture_output=True, text=True, timeout=300)


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_midway(args: list[str], env: dict[str, str], state: Path, job: str, at_files: int) -> list[int]:
    """Kill -9 a copy once it has copied ``at_files``; returns the worker processes it had
    started, each checked to have stopped with it."""
    proc = subprocess.Popen(e2e.copier_cmd("copy", *args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def progressed() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"copy finished before it could be killed (exit {proc.returncode})")
        if not state.exists():
            return False
        try:
            return SqliteStateStore(str(state), job).counters().files_done >= at_files
        except Exception:  # the schema may not exist yet
            return False

    e2e.poll(progressed, 120, f"{at_files} files copied", every_s=0.02)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    e2e.poll(lambda: not any(_alive(pid) for pid in workers), 60, "worker processes stopped with their parent")
    return workers


def _counters(state: Path, job: str):
    return SqliteStateStore(str(state), job).counters()


def _check_resumed_exactly(tree: Path, landed: dict, state: Path, job: str) -> None:
    expected = e2e.source_digest(tree)
    assert landed == expected
    c = _counters(state, job)
    assert c.files_total == len(expected)
    assert c.files_done == len(expected), "a file was counted twice or not at all"
    assert c.files_skipped == 0 and c.files_failed == 0
    assert c.bytes_done == sum(size for size, _ in expected.values())


def _default_timeouts(env: dict[str, str]) -> dict[str, str]:
    """The shipped visibility timeout (300 s) and leases: a resume must not wait them out."""
    for key in ("COPIER_VISIBILITY_TIMEOUT_S", "COPIER_DIR_LEASE_S", "COPIER_SLOT_LEASE_S"):
        env.pop(key, None)
    return env


@pytest.mark.timeout(150)
def test_kill_9_then_rerun_resumes_to_a_byte_identical_local_tree(tree, tmp_path):
    dest, state, job = tmp_path / "dest", tmp_path / "state.sqlite", "resume-local"
    env = _default_timeouts(e2e.base_env(COPIER_WORKER_CONCURRENCY="2"))
    args = [str(tree), str(dest), "--state", str(state), "--job", job, "--quiet"]
    workers = _kill_midway(args, env, state, job, at_files=300)
    assert len(workers) == ((os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 0)  # one per core by default
    assert _counters(state, job).files_done < 3000

    rerun = _copy(args, env)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr  # 1: the symlink was not copied
    _check_resumed_exactly(tree, e2e.local_digest(dest), state, job)

    again = _copy(args, env)
    assert "nothing new to copy" in again.stdout
    assert _counters(state, job).files_done == len(e2e.source_digest(tree))


def test_kill_9_then_rerun_resumes_to_azurite(tree, azurite, unique, tmp_path):
    state, job = tmp_path / "state.sqlite", "resume-blob"
    env = e2e.base_env(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string, COPIER_WORKER_CONCURRENCY="4")
    args = [str(tree), f"{azurite.blob_endpoint}/{unique}/copy", "--state", str(state), "--job", job, "--quiet"]
    _kill_midway(args, env, state, job, at_files=300)

    rerun = _copy(args, env)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    _check_resumed_exactly(tree, e2e.blob_digest(azurite.connection_string, unique, "copy"), state, job)


def test_same_job_with_another_source_is_a_clear_error(tree, tmp_path):
    state = tmp_path / "state.sqlite"
    env = e2e.base_env()
    first = _copy([str(tree), str(tmp_path / "a"), "--state", str(state), "--job", "j", "--quiet"], env)
    assert first.returncode == 1
    other = tmp_path / "other"
    other.mkdir()
    second = _copy([str(other), str(tmp_path / "a"), "--state", str(state), "--job", "j"], env)
    assert second.returncode == 2
    assert "error" in second.stderr and "source" in second.stderr
    assert "Traceback" not in second.stderr


def test_missing_source_is_one_line_and_exit_2(tmp_path):
    result = _copy([str(tmp_path / "nope"), str(tmp_path / "dest")], e2e.base_env())
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "does not exist" in result.stderr


def test_dry_run_counts_and_writes_nothing(tree, tmp_path):
    dest = tmp_path / "dest"
    result = _copy([str(tree), str(dest), "--dry-run"], e2e.base_env())
    expected = e2e.source_digest(tree)
    assert f"would copy {len(expected)} files" in result.stdout
    assert "a link" in result.stdout and "symbolic link" in result.stdout
    assert not dest.exists()


def test_rescan_copies_only_what_changed(tree, tmp_path):
    work = tmp_path / "src"
    gentree.generate(work, "sample", seed=5)
    dest, state = tmp_path / "dest", tmp_path / "state.sqlite"
    env = e2e.base_env()
    args = [str(work), str(dest), "--state", str(state), "--job", "r", "--quiet"]
    assert _copy(args, env).returncode == 0
    total = _counters(state, "r").files_total
    changed = sorted(p for p in work.rglob("*") if p.is_file())[0]
    changed.write_bytes(b"changed content")
    (work / "brand new.txt").write_bytes(b"new")

    assert _copy(args + ["--rescan"], env).returncode == 0
    c = _counters(state, "r")
    assert (c.files_total, c.files_done, c.files_skipped) == (total + 1, 2, total - 1)
    assert e2e.local_digest(dest) == e2e.source_digest(work)


def test_worker_processes_copy_the_same_tree_exactly(tree, tmp_path):
    dest, state = tmp_path / "dest", tmp_path / "state.sqlite"
    result = _copy([str(tree), str(dest), "--state", str(state), "--job", "procs", "--processes", "2",
                    "--workers", "4", "--quiet"], e2e.base_env())
    assert result.returncode == 1, result.stdout + result.stderr  # 1: the symlink was not copied
    _check_resumed_exactly(tree, e2e.local_digest(dest), state, "procs")
    assert len(SqliteStateStore(str(state), "procs").slots()) == 2


def test_copy_on_the_distributed_backends_with_redis(tree, redis_url, tmp_path):
    dest = tmp_path / "dest"
    env = e2e.base_env()
    result = _copy([str(tree), str(dest), "--redis", redis_url, "--job", "on-redis", "--quiet"], env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert e2e.local_digest(dest) == e2e.source_digest(tree)
    doc = e2e.status("on-redis", e2e.base_env(COPIER_REDIS_URL=redis_url))
    assert doc["state"] == "done" and doc["files_done"] == doc["files_total"]
