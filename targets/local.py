"""LocalTarget: a folder on a local or mounted file system."""

from __future__ import annotations

import ctypes
import errno
import os
import stat as stat_mod
import threading
from collections.abc import Iterator

from copier.errors import BackendUnavailable, CopierError, NameNotAllowed, PermanentError, TransientError
from copier.protocols import Payload, TargetStat
from targets import names

CHUNK = 1024 * 1024
_NAME_ERRNOS = {errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY}
# File systems where each open or fsync waits on a network: copies in flight hide that wait.
# (Any "fuse.*" type counts too: sshfs, rclone mount, blobfuse2, ...)
_NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre",
                         "gpfs", "afs", "fuse"})
# Copies in flight for a local target when neither end is on a network file system. Measured on
# this project's 2-core machine (20,000 small files, `make bench` local scenario, one process,
# when each file was fsynced): on ext4, 1 / 2 / 4 / 16 copies took 10.6 / 8.2 / 7.4 / 9.9 s; on tmpfs 1 / 4 / 16
# took 3.1-3.4 / 3.6-5.3 / 5.4-6.4 s. Past a few, threads queue on the interpreter lock (about
# 90 futex calls per file at 16) faster than the disk waits they overlap.
LOCAL_CONCURRENCY = 4
NETWORK_CONCURRENCY = 16
# Worker processes of `copier copy` between local disks: one per usable core, at most this many
# (they share one SQLite file, and a disk is not faster for more writers).
MAX_LOCAL_PROCESSES = 8


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which a container's cpuset sets)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LocalTarget:
    """Files are written aside under a hidden temporary name and renamed into place; ``flush``
    makes them durable, one ``syncfs`` for a whole batch rather than an fsync per file. On a
    network or FUSE mount, whose syncfs need not reach the server, each file is fsynced as it
    is written instead. (A folder under the root that is another mount is not covered by the
    root's syncfs.)"""

    has_directories = True

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = self.root
        self.mtime_tolerance_ns = 0
        self._name_max = _pathconf(self.root, "PC_NAME_MAX", 255)
        self._on_network = on_network_fs(self.root)  # read once: the suggestions and put ask too
        # Group commit: puts count up ``_written`` and list their paths in ``_unsynced``; a
        # flush syncs once for every put counted before it started, and one that finds its
        # puts synced by another returns. A sync that fails removes every file written since
        # the last good one and fails every later flush of this target (``_failed``): no batch
        # whose file may be lost is acknowledged; all come back and are written again.
        self._sync_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._written = 0
        self._synced = 0
        self._failed: str | None = None
        self._unsynced: list[str] = []
        # One descriptor for the target's life: Linux reports a write-back error to syncfs
        # once per open file, so a descriptor opened for each sync could miss one already
        # reported to another.
        self._root_fd: int | None = None

    def __repr__(self) -> str:
        return f"LocalTarget({self.url!r})"

    __str__ = __repr__

    def _full(self, path: str) -> str:
        if "\x00" in path:
            raise NameNotAllowed("names cannot hold NUL")
        for part in names.split_path(path):
            if len(os.fsencode(part)) > self._name_max:
                raise NameNotAllowed(f"name component longer than {self._name_max} bytes")
        return os.path.join(self.root, path)

    def check(self) -> None:
        try:
            os.makedirs(self.root, exist_ok=True)
            probe = os.path.join(self.root, names.temp_name("check"))
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.utime(fd, ns=(1_000_000_123, 1_000_000_123))
                got = os.fstat(fd).st_mtime_ns
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            raise BackendUnavailable(f"cannot write to {self.url}: {exc.strerror or exc}") from None
        self._open_root()
        # Coarse file systems (FAT: 2 s, some network mounts: 1 s or 1 µs) round mtimes.
        off = abs(got - 1_000_000_123)
        self.mtime_tolerance_ns = next((t for t in (0, 1_000, 1_000_000_000, 2_000_000_000) if off <= t), off)

    def suggested_concurrency(self, source: str) -> int:
        """Copies in flight when the user names none: few between local disks, many when
        either end is a network mount (NFS, SMB, FUSE), where every open waits on a round trip."""
        if self._on_network or on_network_fs(source):
            return NETWORK_CONCURRENCY
        return LOCAL_CONCURRENCY

    def suggested_processes(self, source: str) -> int:
        """Worker processes for ``copier copy`` when the user names none: one per usable core
        (at most ``MAX_LOCAL_PROCESSES``) between local disks (measured on tmpfs, 20,000 small files, 2 cores: 4.9-5.4 s in one process,
        2.9-3.1 s in two, where rclone --transfers 16 took 2.0 s), none when either end is a
        network mount, where the copies wait on round trips, not on the processor."""
        cores = usable_cores()
        if cores < 2 or self._on_network or on_network_fs(source):
            return 0
        return min(cores, MAX_LOCAL_PROCESSES)

    def stat(self, path: str) -> TargetStat | None:
        try:
            st = os.stat(self._full(path), follow_symlinks=False)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise _translate(exc, f"stat {path}") from None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return TargetStat(names.split_path(path)[-1], st.st_size, st.st_mtime_ns)

    def put(self, path: str, payload: Payload) -> None:
        final = self._full(path)
        folder, name = os.path.split(final)
        tmp = os.path.join(folder, names.temp_name(name))
        fd = self._create(tmp, folder, path)
        try:
            try:
                for chunk in payload.chunks(CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                if self._on_network:
                    os.fsync(fd)
                os.fchmod(fd, payload.mode & 0o7777)
                os.utime(fd, ns=(payload.mtime_ns, payload.mtime_ns))
            finally:
                os.close(fd)
            os.replace(tmp, final)
            self._note(final)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise _translate(exc, f"put {path}") from None
            raise

    def flush(self) -> None:
        """Make every put that has returned durable, with its name (and the folders made).
        One syncfs of the target's file system covers all of them, where an fsync per file
        waited for a journal commit each (on this project's VM, 20,000 small files to ext4:
        17-18 s with an fsync per file, 10-12 s with a syncfs per batch, in a slow spell of
        its disk); concurrent callers share one sync."""
        with self._count_lock:
            wanted = self._written
        if self._synced >= wanted and self._failed is None:
            return
        with self._sync_lock:
            if self._failed is not None:
                raise BackendUnavailable(self._failed)
            if self._synced >= wanted:  # another flush synced these while we waited
                return
            with self._count_lock:
                upto, paths, self._unsynced = self._written, self._unsynced, []
            try:
                if not self._on_network:
                    _syncfs_fd(self._open_root())
            except OSError as exc:
                for path in paths:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
                self._failed = (f"the file system of {self.url} reported a write error ({exc.strerror or exc}); "
                                f"the {len(paths)} files written since the last good sync were removed and "
                                f"will be copied again")
                raise BackendUnavailable(self._failed) from None
            self._synced = upto

    def _note(self, full: str | None) -> None:
        """Count a change the next flush must make durable (``full``: a file to remove if it cannot)."""
        with self._count_lock:
            self._written += 1
            if full is not None:
                self._unsynced.append(full)

    def _open_root(self) -> int:
        if self._root_fd is None:
            self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._root_fd

    def _create(self, tmp: str, folder: str, path: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        for attempt in (1, 2):
            try:
                return os.open(tmp, flags, 0o600)
            except FileNotFoundError:
                if attempt == 2:
                    raise TransientError(f"put {path}: parent folder vanished while writing") from None
                self._makedirs(folder, path)
            except OSError as exc:
                raise _translate(exc, f"put {path}") from None
        raise AssertionError("unreachable")

    def _makedirs(self, folder: str, path: str) -> None:
        try:
            os.makedirs(folder, exist_ok=True)
        except FileExistsError:
            raise PermanentError(f"put {path}: a parent is not a directory") from None
        except OSError as exc:
            raise _translate(exc, f"make parents of {path}") from None

    def make_dir(self, path: str) -> None:
        if path:
            self._makedirs(self._full(path), path)
            self._note(None)

    def list_files(self, dir_path: str) -> Iterator[TargetStat]:
        folder = self._full(dir_path) if dir_path else self.root
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise _translate(exc, f"list {dir_path}") from None
        for entry in entries:
            if names.is_temp_name(entry.name):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield TargetStat(entry.name, st.st_size, st.st_mtime_ns)

    def is_empty(self) -> bool:
        try:
            with os.scandir(self.root) as it:
                return next(it, None) is None
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise _translate(exc, "list the target root") from None

    def sweep(self, path: str) -> int:
        """Remove what an interrupted attempt at ``path`` left aside. That attempt may also have
        put the file itself without a sync (the process was killed before its flush): count it,
        so the flush that acknowledges it as copied syncs it first."""
        self._note(self._full(path))
        folder, name = os.path.split(self._full(path))
        prefix = names.temp_prefix(name)
        removed = 0
        try:
            with os.scandir(folder) as it:
                leftovers = [e.path for e in it if e.name.startswith(prefix) and names.is_temp_name(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return 0
        except OSError as exc:
            raise _translate(exc, f"sweep {path}") from None
        for leftover in leftovers:
            try:
                os.unlink(leftover)
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise _translate(exc, f"sweep {path}") from None
        return removed

    def close(self) -> None:
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None


def on_network_fs(path: str, mounts: str = "/proc/self/mounts") -> bool:
    """Whether ``path`` lies on a network file system, by the longest mount point holding it.
    False where the mount table cannot be read (not Linux)."""
    path = os.path.realpath(path)
    best, fstype = "", ""
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, fstype = point, fields[2]
    except OSError:
        return False
    return fstype in _NETWORK_FS or fstype.startswith("fuse.")


def _syncfs_fd(fd: int) -> None:
    """syncfs(2) on the file system holding the open ``fd``; sync(2) where libc has no syncfs."""
    call = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    if call is None:
        os.sync()
        return
    if call(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # no C library to load: sync(2) through the os module instead
    _LIBC = None


def _pathconf(path: str, name: str, default: int) -> int:
    """A limit of the file system holding ``path`` (or its nearest existing ancestor)."""
    while True:
        try:
            return os.pathconf(path, name)
        except FileNotFoundError:
            if path == os.path.dirname(path):
                return default
            path = os.path.dirname(path)
        except (OSError, ValueError):
            return default


def _translate(exc: OSError, what: str) -> CopierError:
    """Classify once: names, a full or read-only disk, passing trouble, the rest."""
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, CopierError):
        return exc
    if exc.errno in _NAME_ERRNOS:
        return NameNotAllowed(f"{what}: the file system refuses the name ({reason})")
    if exc.errno in _FULL_ERRNOS:
        return BackendUnavailable(f"{what}: {reason}")
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(f"{what}: {reason}")
    if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
        return PermanentError(f"{what}: a directory and a file share the name ({reason})")
    return PermanentError(f"{what}: {reason}")
