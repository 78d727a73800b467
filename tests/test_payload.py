"""FilePayload: large files are hashed ahead of sending through a gate (one at a time here),
except from a network mount."""

from __future__ import annotations

import hashlib
import threading

from copier import payload
from copier.payload import SMALL_LIMIT, FilePayload, gate_for_source


def _peak_hashing(tmp_path, monkeypatch, hash_gate=None) -> int:
    """How many of three large files were hashed ahead at once, the gate of the process
    admitting one; checks the digests too."""
    paths = []
    for i in range(3):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * (SMALL_LIMIT + 1))
        paths.append(p)
    monkeypatch.setattr(payload, "HASH_AHEAD_GATE", threading.BoundedSemaphore(1))

    lock = threading.Lock()
    inside, peak = 0, 0
    another_entered = threading.Event()
    real_chunks = FilePayload.chunks

    def chunks(self, chunk_size, digest=True):
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
            if inside > 1:
                another_entered.set()
        try:
            # Without the gate the other threads come in while this one waits here.
            another_entered.wait(timeout=1.0)
            yield from real_chunks(self, chunk_size, digest)
        finally:
            with lock:
                inside -= 1

    monkeypatch.setattr(FilePayload, "chunks", chunks)
    payloads = [FilePayload(str(p), p.stat().st_size, p.stat().st_mtime_ns, 0o644, hash_gate) for p in paths]
    digests: dict[int, bytes] = {}
    threads = [threading.Thread(target=lambda i=i: digests.__setitem__(i, payloads[i].md5_ahead()))
               for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert digests == {i: hashlib.md5(p.read_bytes()).digest() for i, p in enumerate(paths)}
    return peak


def test_large_files_are_hashed_ahead_through_the_gate(tmp_path, monkeypatch):
    assert _peak_hashing(tmp_path, monkeypatch) == 1


def test_files_on_a_network_mount_are_read_ahead_together(tmp_path, monkeypatch):
    monkeypatch.setattr("targets.local.on_network_fs", lambda path: path == "/mnt/nfs")
    assert gate_for_source(str(tmp_path)) is None  # a local disk: the process's gate
    assert _peak_hashing(tmp_path, monkeypatch, gate_for_source("/mnt/nfs")) > 1
