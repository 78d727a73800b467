"""Optional persistence: the whole namespace pickled to DIR/state.pickle, written aside and renamed."""

from __future__ import annotations

import logging
import os
import pickle
import threading
from pathlib import Path

from targets.files_emulator.store import Store

log = logging.getLogger("files_emulator")
STATE_FILE = "state.pickle"


def load(directory: Path) -> Store:
    path = directory / STATE_FILE
    if not path.exists():
        return Store()
    with path.open("rb") as fh:
        store = pickle.load(fh)  # our own file, written by save() below
    log.info("loaded %d shares from %s", len(store.shares), path)
    return store


def save(store: Store, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    aside = directory / (STATE_FILE + ".tmp")
    with store.lock:
        payload = pickle.dumps(store, protocol=pickle.HIGHEST_PROTOCOL)
    with aside.open("wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(aside, directory / STATE_FILE)


class Snapshotter:
    """Writes the namespace when it has changed, at most every `interval_s` seconds."""

    def __init__(self, store: Store, directory: Path, interval_s: float = 1.0) -> None:
        self.store, self.directory, self.interval_s = store, directory, interval_s
        self._saved = store.version
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="files-emulator-snapshot", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        version = self.store.version
        if version != self._saved:
            save(self.store, self.directory)
            self._saved = version

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
