"""Bad input and unreachable services: one clear line, exit code 2, no secret, no traceback,
nothing half-registered."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time

import pytest

from copier import log
from tests import e2e
from tests.servers import free_port

SECRET = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtc2hvd24="


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(e2e.copier_cmd(*args), env=env or e2e.base_env(), capture_output=True, text=True, timeout=120)


def _one_clean_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr + result.stdout
    return lines[0]


def test_unreachable_redis_is_one_line_without_the_password(tmp_path):
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    line = _one_clean_line(_run("seed", str(tmp_path), "--job", "j", "--target", str(tmp_path / "t"), "--redis", url))
    assert "unreachable" in line and "127.0.0.1" in line


def test_a_password_with_a_slash_is_not_shown_either(tmp_path):
    url = f"rediss://:{SECRET[:10]}/{SECRET[10:]}@127.0.0.1:{free_port()}/0"
    result = _run("status", "--job", "j", "--redis", url)
    assert result.returncode == 2
    assert SECRET[:10] not in result.stderr and SECRET[10:] not in result.stderr


def test_unreachable_queue_account_is_one_line_without_the_key(tmp_path, redis_url):
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={SECRET};"
            f"QueueEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;")
    env = e2e.base_env(COPIER_REDIS_URL=redis_url, COPIER_QUEUE_CONNECTION_STRING=conn, COPIER_QUEUES="azure")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    assert _run("seed", str(src), "--job", "j", "--target", str(tmp_path / "t"), env=env).returncode == 0
    line = _one_clean_line(_run("work", "--job", "j", "--wait-s", "5", env=env))
    assert "127.0.0.1" in line


def test_missing_source_registers_nothing(tmp_path, redis_url):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url)
    line = _one_clean_line(_run("seed", str(tmp_path / "missing"), "--job", "j", "--target", str(tmp_path / "t"), env=env))
    assert "does not exist" in line
    assert not e2e.registered("j", env)


def test_unreachable_target_registers_nothing(tmp_path, redis_url):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url,
                       AZURE_STORAGE_CONNECTION_STRING=f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                                                       f"AccountKey={SECRET};")
    target = f"http://127.0.0.1:{free_port()}/devstoreaccount1/cont/x"
    _one_clean_line(_run("seed", str(tmp_path), "--job", "j", "--target", target, env=env))
    assert not e2e.registered("j", env)


def test_same_job_with_another_target_is_refused(tmp_path, redis_url):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url)
    src = tmp_path / "src"
    src.mkdir()
    assert _run("seed", str(src), "--job", "j", "--target", str(tmp_path / "a"), env=env).returncode == 0
    line = _one_clean_line(_run("seed", str(src), "--job", "j", "--target", str(tmp_path / "b"), env=env))
    assert "target" in line


def test_log_lines_never_carry_secrets():
    stream = io.StringIO()
    log.configure("info", json=True, stream=stream)
    log.get().info("connecting", url=f"https://acct.blob.core.windows.net/c?sv=2024&sig={SECRET}",
                   conn=f"AccountName=a;AccountKey={SECRET};", redis=f"redis://:{SECRET}@host:6379/0",
                   error=ValueError(f"failed with SharedKey acct:{SECRET}"))
    text = stream.getvalue()
    assert SECRET not in text
    doc = json.loads(text)
    assert doc["event"] == "connecting" and "***" in doc["conn"]


@pytest.mark.slow
def test_sigterm_stops_a_worker_gracefully(tmp_path, redis_url):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url, COPIER_QUEUES="redis")
    src = tmp_path / "src"
    src.mkdir()
    (src / "waiting").write_bytes(b"x")
    assert _run("seed", str(src), "--job", "j", "--target", str(tmp_path / "t"), env=env).returncode == 0
    # The controller is not running, so the job is not done: the worker waits for work.
    worker = subprocess.Popen(e2e.copier_cmd("work", "--job", "j"), env=env, stderr=subprocess.PIPE, text=True)
    e2e.poll(lambda: any(w["live"] for w in e2e.status("j", env)["workers"]), 60, "the worker to take a slot")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    slots = e2e.status("j", env)["workers"]
    assert not any(w["live"] for w in slots), "a stopped worker gives its slot back"
