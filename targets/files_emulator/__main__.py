"""`python -m targets.files_emulator --port 10004`: serve the Azure Files emulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import signal
import sys
import threading
from pathlib import Path

from targets.files_emulator import persistence
from targets.files_emulator.server import DEFAULT_ACCOUNT, DEFAULT_KEY, EmulatorConfig, EmulatorHTTPServer
from targets.files_emulator.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m targets.files_emulator",
                                     description="A local Azure Files (file share REST API) emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10004, help="0 picks a free port")
    parser.add_argument("--data", type=Path, help="keep the namespace in DIR (default: in memory)")
    parser.add_argument("--account", default=DEFAULT_ACCOUNT)
    parser.add_argument("--key", default=DEFAULT_KEY, help="base64 account key")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without credentials")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        base64.b64decode(args.key, validate=True)
    except binascii.Error:
        parser.error("--key must be base64")

    store = persistence.load(args.data) if args.data else Store()
    snapshots = persistence.Snapshotter(store, args.data) if args.data else None
    server = EmulatorHTTPServer((args.host, args.port), store,
                                EmulatorConfig(args.account, args.key, auth=not args.no_auth))
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if snapshots:
        snapshots.start()
    print(f"Azure Files emulator listening on http://{args.host}:{server.port}/{args.account}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if snapshots:
            snapshots.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
