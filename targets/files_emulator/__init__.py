"""A local Azure Files emulator that answers like the real service (no Azure emulator has Files).

Path-style endpoint, as Azurite: `http://127.0.0.1:PORT/ACCOUNT/SHARE/dir/file`, so the
official SDK works against it with a connection string whose FileEndpoint points here.
`../shared/azure-files-recordings/` (the real service's answers) is replayed against it by
tests/test_files_emulator_recordings.py.

Reading order: server (HTTP, auth, routing) -> share_api / directory_api / file_api (the
operations) -> store (the namespace) -> listing (XML) and headers (properties on the wire).
Run it with `python -m targets.files_emulator --port 10004`.
"""

from targets.files_emulator.server import (DEFAULT_ACCOUNT, DEFAULT_KEY, EmulatorConfig,
                                           EmulatorHTTPServer)
from targets.files_emulator.store import Store

__all__ = ["DEFAULT_ACCOUNT", "DEFAULT_KEY", "EmulatorConfig", "EmulatorHTTPServer", "Store"]
