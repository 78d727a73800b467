"""Payloads: the bytes of one file on their way to a target (see ``protocols.Payload``)."""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

from copier.errors import SourceChanged, SourceError

# Files up to this size are read whole before they are sent: one request, MD5 up front.
SMALL_LIMIT = 4 * 1024 * 1024
HASH_CHUNK = 1024 * 1024
# Large files hashed ahead of sending at once, per process. Unbounded, sixteen threads that
# each take a 64 MiB file all hash together and all start sending together, a second or more
# later, while the network idles; gated, the first is sent while the next is hashed. A source
# on a network mount is not gated (see ``gate_for_source``): there reading, not hashing, is
# the wait, and reads in flight together are what hides it.
HASH_AHEAD_GATE = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) // 2))


def gate_for_source(source_root: str) -> AbstractContextManager | None:
    """The hash-ahead gate for files under ``source_root``: None (the per-process gate) for a
    local disk; for a network mount (NFS, SMB, FUSE) one that never makes a copy wait."""
    from targets.local import on_network_fs

    return nullcontext() if on_network_fs(source_root) else None


class BytesPayload:
    """A payload held in memory (small files, tests)."""

    def __init__(self, data: bytes, mtime_ns: int, mode: int = 0o644) -> None:
        self.data = data
        self.size = len(data)
        self.mtime_ns = mtime_ns
        self.mode = mode
        self._md5 = hashlib.md5(data).digest()

    def chunks(self, chunk_size: int, digest: bool = True) -> Iterator[bytes]:
        for start in range(0, self.size, chunk_size):
            yield self.data[start:start + chunk_size]

    def md5(self) -> bytes:
        return self._md5

    def md5_ahead(self) -> bytes:
        return self._md5


class FilePayload:
    """A source file as it was listed (``size``, ``mtime_ns``). Reading checks that it still is:
    a file that vanished, changed size or mtime, or is no longer a regular file raises
    ``SourceChanged`` — before the first byte for small files, after the last chunk for
    large ones, so the target never commits a torn copy."""

    def __init__(self, path: str, size: int, mtime_ns: int, mode: int,
                 hash_gate: AbstractContextManager | None = None) -> None:
        self.path = path
        self._hash_gate = hash_gate
        self.size = size
        self.mtime_ns = mtime_ns
        self.mode = mode
        self.data: bytes | None = None
        self._md5: bytes | None = None
        if size <= SMALL_LIMIT:
            self.data = self._read_small()  # its MD5 only when asked: a local target never is

    def _open(self) -> int:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOATIME", 0)
        try:
            return os.open(self.path, flags)
        except PermissionError:
            if flags & getattr(os, "O_NOATIME", 0):  # O_NOATIME needs ownership
                try:
                    return os.open(self.path, flags & ~os.O_NOATIME)
                except OSError as exc:
                    raise _source_error(exc) from exc
            raise SourceError("permission denied") from None
        except OSError as exc:
            raise _source_error(exc) from exc

    def _check(self, st: os.stat_result, read: int | None = None) -> None:
        if not stat_mod.S_ISREG(st.st_mode):
            raise SourceChanged("no longer a regular file")
        if st.st_size != self.size or (read is not None and read != self.size):
            raise SourceChanged(f"size changed while copying (listed {self.size}, now {st.st_size})")
        if st.st_mtime_ns != self.mtime_ns:
            raise SourceChanged("modified while copying (mtime changed)")

    def _read_small(self) -> bytes:
        fd = self._open()
        try:
            self._check(os.fstat(fd))
            parts = []
            remaining = self.size + 1  # one byte more reveals a file that grew
            while remaining > 0:
                part = os.read(fd, remaining)
                if not part:
                    break
                parts.append(part)
                remaining -= len(part)
            data = b"".join(parts)
            self._check(os.fstat(fd), read=len(data))
            return data
        except OSError as exc:
            raise _source_error(exc) from exc
        finally:
            os.close(fd)

    def chunks(self, chunk_size: int, digest: bool = True) -> Iterator[bytes]:
        if self.data is not None:
            for start in range(0, self.size, chunk_size):
                yield self.data[start:start + chunk_size]
            return
        fd = self._open()
        hasher = hashlib.md5() if digest else None
        read = 0
        try:
            self._check(os.fstat(fd))
            while True:
                try:
                    chunk = os.read(fd, chunk_size)
                except OSError as exc:
                    raise _source_error(exc) from exc
                if not chunk:
                    break
                read += len(chunk)
                if read > self.size:
                    raise SourceChanged(f"size changed while copying (listed {self.size}, read more)")
                if hasher is not None:
                    hasher.update(chunk)
                yield chunk
            self._check(os.fstat(fd), read=read)
            if hasher is not None:
                self._md5 = hasher.digest()
        finally:
            os.close(fd)

    def md5(self) -> bytes:
        if self._md5 is None and self.data is not None:
            self._md5 = hashlib.md5(self.data).digest()
        if self._md5 is None:
            raise RuntimeError("md5 of a large payload is known only after chunks() is exhausted")
        return self._md5

    def md5_ahead(self) -> bytes:
        if self._md5 is None and self.data is None:  # in memory: md5() hashes it, no read, no gate
            with self._hash_gate if self._hash_gate is not None else HASH_AHEAD_GATE:
                for _ in self.chunks(HASH_CHUNK):
                    pass
        return self.md5()


def _source_error(exc: OSError) -> SourceError:
    import errno

    if exc.errno == errno.ENOENT:
        return SourceChanged("vanished before it could be copied")
    if exc.errno == errno.ELOOP:
        return SourceError("became a symbolic link; not followed")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SourceError("permission denied")
    return SourceError(f"cannot read: {exc.strerror or exc}")
