"""Helpers for end-to-end tests: run copier's roles as separate processes, kill and restart
them, read back what landed at the target."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Small leases and timeouts so that kills are recovered from within seconds.
FAST_TUNING = {
    "COPIER_SLOT_LEASE_S": "3",
    "COPIER_DIR_LEASE_S": "3",
    "COPIER_VISIBILITY_TIMEOUT_S": "6",
    "COPIER_IDLE_POLL_S": "0.2",
    "COPIER_BATCH_MAX_ITEMS": "40",
    "COPIER_BATCH_MAX_COST": "4000000",
    "COPIER_DEAL_AHEAD_BATCHES": "3",
    "COPIER_INTAKE_HIGH_WATER": "1000",
    "COPIER_PAGE_ENTRIES": "200",
    "COPIER_WORKER_CONCURRENCY": "8",
    "COPIER_LOG_LEVEL": "warning",
}


def copier_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "copier.cli", *args]


@dataclass
class Role:
    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    exit_codes: list[int] = field(default_factory=list)

    def start(self) -> "Role":
        self.starts += 1
        log = open(self.log_dir / f"{self.name}.{self.starts}.log", "wb")
        self.proc = subprocess.Popen(copier_cmd(*self.args), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def wait(self, deadline: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        self.exit_codes.append(code)
        return code

    def output(self) -> str:
        return "\n".join((self.log_dir / f"{self.name}.{i}.log").read_text(errors="replace")
                         for i in range(1, self.starts + 1))


def poll(condition: Callable[[], bool], deadline_s: float, what: str, every_s: float = 0.1) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")


def status(job: str, env: dict[str, str], *extra: str) -> dict:
    out = subprocess.run(copier_cmd("status", "--job", job, "--json", *extra), env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def registered(job: str, env: dict[str, str]) -> bool:
    out = subprocess.run(copier_cmd("status", "--job", job, "--json"), env=env, capture_output=True, text=True, timeout=60)
    return out.returncode == 0


def failures(job: str, env: dict[str, str], *extra: str) -> dict:
    out = subprocess.run(copier_cmd("failures", "--job", job, "--json", *extra), env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def local_digest(root: Path) -> dict[str, tuple[int, str]]:
    result = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            data = Path(full).read_bytes()
            result[rel] = (len(data), hashlib.md5(data).hexdigest())
    return result


def blob_digest(connection_string: str, container: str, prefix: str) -> dict[str, tuple[int, str]]:
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient.from_connection_string(connection_string)
    cc = svc.get_container_client(container)
    result = {}
    base = prefix.rstrip("/") + "/" if prefix else ""
    for props in cc.list_blobs(name_starts_with=base):
        data = cc.download_blob(props.name).readall()
        result[props.name[len(base):]] = (len(data), hashlib.md5(data).hexdigest())
    return result


def source_digest(root: Path) -> dict[str, tuple[int, str]]:
    """Regular files only (symlinks and special files are not copied)."""
    return local_digest(root)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPIER_", "AZURE_"))}
    env.update(FAST_TUNING)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    env.update(extra)
    return env


def files_digest(connection_string: str, share: str, base: str) -> dict[str, tuple[int, str]]:
    """Every file under ``share/base`` on an Azure Files endpoint, read back through the SDK."""
    from azure.storage.fileshare import ShareServiceClient

    client = ShareServiceClient.from_connection_string(connection_string).get_share_client(share)
    result: dict[str, tuple[int, str]] = {}
    pending = [base]
    while pending:
        folder = pending.pop()
        for entry in client.get_directory_client(folder).list_directories_and_files():
            path = f"{folder}/{entry['name']}" if folder else entry["name"]
            if entry["is_directory"]:
                pending.append(path)
            else:
                data = client.get_file_client(path).download_file().readall()
                result[path[len(base) + 1:] if base else path] = (len(data), hashlib.md5(data).hexdigest())
    return result


def files_dirs(connection_string: str, share: str, base: str) -> set[str]:
    from azure.storage.fileshare import ShareServiceClient

    client = ShareServiceClient.from_connection_string(connection_string).get_share_client(share)
    found: set[str] = set()
    pending = [base]
    while pending:
        folder = pending.pop()
        for entry in client.get_directory_client(folder).list_directories_and_files():
            if entry["is_directory"]:
                path = f"{folder}/{entry['name']}"
                found.add(path[len(base) + 1:])
                pending.append(path)
    return found


def dir_calls_from_logs(text: str) -> int:
    calls = 0
    for line in text.splitlines():
        if '"worker_stopped"' in line:
            value = json.loads(line).get("dir_calls")
            calls += value or 0
    return calls
