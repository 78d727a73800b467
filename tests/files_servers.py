"""The project's Azure Files emulator for tests: a child process on a free loopback port.

`start_files_emulator()` starts `python -m targets.files_emulator` with `--port 0`, reads the
endpoint it prints once it listens (no sleeps), and `stop()` ends that process by its pid.
`start_files_emulator_in_process()` serves the same code from a thread, for fast unit tests.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Azurite's well-known development account (public, documented by Microsoft).
FILES_ACCOUNT = "devstoreaccount1"
FILES_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_READY = re.compile(r"listening on http://[^:]+:(\d+)/")


@dataclass
class FilesEmulator:
    port: int
    account: str = FILES_ACCOUNT
    key: str = FILES_KEY
    proc: subprocess.Popen | None = None
    _server: object | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
                f"FileEndpoint={self.endpoint};")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]


def start_files_emulator(*, account: str = FILES_ACCOUNT, key: str = FILES_KEY, auth: bool = True,
                         data_dir: str | Path | None = None, deadline_s: float = 30.0) -> FilesEmulator:
    """Start the emulator as a child process, in memory or keeping its state in `data_dir`
    (which the caller owns; stop() leaves it in place)."""
    args = [sys.executable, "-m", "targets.files_emulator", "--host", "127.0.0.1", "--port", "0",
            "--account", account, "--key", key]
    if not auth:
        args.append("--no-auth")
    if data_dir:
        args += ["--data", str(data_dir)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(deadline_s)
    match = _READY.search(line[0]) if line else None
    if match is None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"files emulator did not start (exit code {proc.poll()}, said {line!r})")
    return FilesEmulator(int(match.group(1)), account, key, proc)


def start_files_emulator_in_process(*, account: str = FILES_ACCOUNT, key: str = FILES_KEY,
                                    auth: bool = True) -> FilesEmulator:
    from targets.files_emulator import EmulatorConfig, EmulatorHTTPServer, Store

    server = EmulatorHTTPServer(("127.0.0.1", 0), Store(), EmulatorConfig(account, key, auth))
    server.start_background()
    return FilesEmulator(server.port, account, key, _server=server)
