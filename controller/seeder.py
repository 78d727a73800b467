"""The seeder: walk the source tree one directory node at a time.

    claim a node → list one page of it → commit the page (subdirs, file items, failures)
    → next page or next node, until the frontier is exhausted.

Any number of seeders may walk one tree. A directory is listed in name order and each page
is committed as one unit under the node's lease, with the last name it covers as the cursor:
a seeder killed halfway leaves its node to be taken again after that name, so no file item is
handed on twice and none is skipped, even if the directory changed in between. Symlinks are
never followed.
"""

from __future__ import annotations

import heapq
import itertools
import os
import stat as stat_mod
import threading
import time
from collections.abc import Iterator

from copier import log
from copier.config import Tuning
from copier.errors import TransientError
from copier.models import DirLease, Failure, JobSpec, ListingPage, WorkItem, decode_cursor, encode_cursor
from copier.protocols import ChainingFrontier, Frontier, Lister, StateStore, Target

_SPECIAL = (
    (stat_mod.S_ISFIFO, "named pipe (FIFO); not a regular file"),
    (stat_mod.S_ISSOCK, "socket; not a regular file"),
    (stat_mod.S_ISCHR, "character device; not a regular file"),
    (stat_mod.S_ISBLK, "block device; not a regular file"),
)


class _Unlistable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class Seeder:
    def __init__(self, spec: JobSpec, frontier: Frontier, state: StateStore, target: Target,
                 tuning: Tuning, owner: str, stop: threading.Event | None = None) -> None:
        self.spec = spec
        self.frontier = frontier
        self.state = state
        self.target = target
        self.tuning = tuning
        self.owner = owner
        self.stop = stop or threading.Event()
        self.log = log.get().bind(role="seeder", worker=owner)
        # A target that held nothing when this seeder started needs no per-file checks.
        self._target_fresh = bool(getattr(target, "is_empty", lambda: False)())
        self.pages = 0
        self._check_every = max(1, tuning.intake_high_water // 10)
        self._unchecked = self._check_every  # look once before the first node
        # Hand on listed nodes and take the next ones in one step, where the frontier can.
        self._chains = isinstance(frontier, ChainingFrontier)

    def run(self) -> None:
        """Walk until the frontier is exhausted or ``stop`` is set."""
        self.log.info("seeder_started", fresh_target=self._target_fresh)
        held: list[DirLease] = []  # claimed (with the last commit, where the frontier chains), not yet listed
        while not self.stop.is_set():
            try:
                if not held:
                    if self._over_high_water():
                        self.stop.wait(self.tuning.idle_poll_s)  # backpressure: let the dealer catch up
                        continue
                    held = self._claim()
                    if not held:
                        if self.frontier.requeue_expired():
                            continue
                        if self.frontier.exhausted():
                            self.target.flush()  # the empty folders this seeder made
                            self.log.info("walk_finished", pages=self.pages)
                            return
                        self.stop.wait(self.tuning.idle_poll_s)
                        continue
                held = self.walk_nodes(held)
            except TransientError as exc:  # the nodes' leases run out and they are listed again
                held = []
                self.log.warning("seeder_backing_off", error=str(exc))
                self.stop.wait(1.0)
        self._release(held)

    def _over_high_water(self) -> bool:
        """The intake is checked once per tenth of the high-water mark committed (the seeder
        may overshoot by that much), not once per directory: on a tree of small folders the
        check cost as many Redis commands as the walk itself."""
        if self._unchecked < self._check_every:
            return False
        if self.state.counters().items_waiting >= self.tuning.intake_high_water:
            return True
        self._unchecked = 0
        return False

    def _claim(self) -> list[DirLease]:
        if self._chains:
            return self.frontier.commit_many([], self.owner, self.tuning.dir_lease_s, self.tuning.dirs_per_claim)[1]
        lease = self.frontier.claim(self.owner, self.tuning.dir_lease_s)
        return [lease] if lease is not None else []

    def _release(self, leases: list[DirLease]) -> None:
        """Give back nodes claimed but not listed (a stop, or a large directory met first).
        Each goes to the front in turn, so the last is given back first: they keep their order."""
        for lease in reversed(leases):
            try:
                self.frontier.release(lease)
            except TransientError as exc:  # its lease runs out instead
                self.log.warning("dir_release_failed", path=lease.node.path, error=str(exc))

    def walk_nodes(self, held: list[DirLease]) -> list[DirLease]:
        """List the held nodes. Those of one page are handed on together, in one step with the
        claim of the next nodes where the frontier chains; returns those. A node of several
        pages is walked on its own, page by page, after giving back the nodes not yet listed
        (their leases would run out while it is listed). A slow source (a network mount) may
        take long over the held ones: past half a lease, what is listed is handed on and the
        rest renewed."""
        pending = list(held)
        done: list[tuple[DirLease, ListingPage]] = []
        entries = 0
        renewed_at = time.monotonic()
        while pending:
            lease = pending.pop(0)
            if self.stop.is_set():
                self._hand_on(done, claim=0)
                self._release([lease, *pending])
                return []
            rel = lease.node.path
            pages = self._pages(rel, lease.node.cursor, not self._target_fresh and self._target_has_files(rel))
            first = next(pages)
            if not first.last:
                self._hand_on(done, claim=0)
                self._release(pending)
                self._walk_pages(lease, first, pages)
                return []
            done.append((lease, first))
            entries += len(first.subdirs) + len(first.files) + len(first.failures)
            if pending and entries >= self.tuning.page_entries:
                self._hand_on(done, claim=0)  # one script stays within a page's size
                done, entries = [], 0
            if pending and time.monotonic() - renewed_at > self.tuning.dir_lease_s / 2:
                self._hand_on(done, claim=0)
                done, entries = [], 0
                pending = [p for p in pending if self._renew(p)]
                renewed_at = time.monotonic()
        more = self._chains and not self.stop.is_set() and not self._over_high_water()
        return self._hand_on(done, claim=self.tuning.dirs_per_claim if more else 0)

    def _renew(self, lease: DirLease) -> bool:
        if self.frontier.renew(lease, self.tuning.dir_lease_s):
            return True
        self.log.warning("dir_lease_lost", path=lease.node.path)
        return False

    def _hand_on(self, done: list[tuple[DirLease, ListingPage]], claim: int) -> list[DirLease]:
        """Commit the last pages of listed nodes; claim up to ``claim`` more in the same step."""
        if not done and not claim:
            return []
        if self._chains:
            flags, claimed = self.frontier.commit_many(done, self.owner, self.tuning.dir_lease_s, claim)
        else:
            flags, claimed = [self.frontier.commit(lease, page) for lease, page in done], []
        for (lease, page), committed in zip(done, flags):
            if committed:
                self.pages += 1
                self._unchecked += len(page.files)
            else:
                self.log.warning("dir_lease_lost", path=lease.node.path)
        return claimed

    def _walk_pages(self, lease: DirLease, first: ListingPage, rest: Iterator[ListingPage]) -> None:
        """Commit a node's pages one by one under its lease, renewing it between pages."""
        for page in itertools.chain((first,), rest):
            if self.stop.is_set() and not page.last:
                self.frontier.release(lease)
                return
            if not self.frontier.commit(lease, page):
                self.log.warning("dir_lease_lost", path=lease.node.path)
                return
            self.pages += 1
            self._unchecked += len(page.files)
            if page.last:
                return
            if not self.frontier.renew(lease, self.tuning.dir_lease_s):
                self.log.warning("dir_lease_lost", path=lease.node.path)
                return

    def _target_has_files(self, rel: str) -> bool:
        if not isinstance(self.target, Lister):
            return True
        try:
            return next(iter(self.target.list_files(rel)), None) is not None
        except Exception as exc:  # a failed look only costs per-file checks later
            self.log.warning("target_list_failed", path=rel, error=str(exc))
            return True

    def _pages(self, rel: str, cursor: str, verify: bool) -> Iterator[ListingPage]:
        """Pages of at most ``page_entries`` entries in name order, after the ``cursor`` name."""
        full = os.path.join(self.spec.source, rel) if rel else self.spec.source
        subdirs: list[str] = []
        files: list[WorkItem] = []
        failures: list[Failure] = []
        last_name = ""
        holds_content = False
        # Entries are looked at relative to the directory's descriptor: the kernel resolves one
        # name per lstat, not the whole path again (what costs on a deep tree).
        try:
            dir_fd: int | None = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            dir_fd = None  # listing it will say why
        prefix = rel + "/" if rel else ""
        lstat, is_reg, is_dir = os.lstat, stat_mod.S_ISREG, stat_mod.S_ISDIR
        page_entries, listed = self.tuning.page_entries, 0
        try:
            for chunk in self._names_after(full, decode_cursor(cursor)):
                for name in chunk:
                    last_name = name
                    # The common case inline (an ASCII name, a file or a folder); the rest, errors
                    # included, goes through _classify, which looks again and says why.
                    try:
                        st = lstat(name, dir_fd=dir_fd) if dir_fd is not None and name.isascii() else None
                    except OSError:
                        st = None
                    if st is not None and is_reg(st.st_mode):
                        files.append(WorkItem(prefix + name, st.st_size, st.st_mtime_ns, st.st_mode & 0o7777, verify))
                    elif st is not None and is_dir(st.st_mode):
                        subdirs.append(prefix + name)
                    else:
                        self._classify(rel, full, dir_fd, name, verify, subdirs, files, failures)
                    listed += 1
                    if listed >= page_entries:
                        holds_content = holds_content or bool(subdirs or files)
                        yield ListingPage(tuple(subdirs), tuple(files), tuple(failures),
                                          cursor=encode_cursor(name), last=False)
                        subdirs, files, failures, listed = [], [], [], 0
        except _Unlistable as exc:
            yield ListingPage((), (), (Failure(rel or ".", exc.reason, "dir"),))
            return
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        holds_content = holds_content or bool(subdirs or files)
        if not cursor and not holds_content and rel and self.target.has_directories:
            self.target.make_dir(rel)  # a folder with no files or folders exists at the target too
        yield ListingPage(tuple(subdirs), tuple(files), tuple(failures),
                          cursor=encode_cursor(last_name) if last_name else cursor, last=True)

    def _names_after(self, full: str, after: str | None) -> Iterator[list[str]]:
        """The directory's names greater than ``after``, sorted, in chunks of at most
        ``sort_names_max`` (one pass over the directory per chunk: memory stays bounded)."""
        cap = self.tuning.sort_names_max
        while True:
            names: list[str] = []
            try:
                with os.scandir(full) as it:
                    for entry in it:
                        if after is None or entry.name > after:
                            names.append(entry.name)
                            if len(names) >= 2 * cap:
                                names = heapq.nsmallest(cap, names)
            except FileNotFoundError:
                raise _Unlistable("directory vanished before it was listed") from None
            except NotADirectoryError:
                raise _Unlistable("no longer a directory") from None
            except OSError as exc:
                raise _Unlistable(f"cannot list directory: {exc.strerror or exc}") from None
            names.sort()
            more = len(names) > cap
            yield names[:cap] if more else names
            if not more:
                return
            after = names[cap - 1]

    def _classify(self, rel: str, full: str, dir_fd: int | None, name: str, verify: bool,
                  subdirs: list[str], files: list[WorkItem], failures: list[Failure]) -> None:
        path = _join(rel, name)
        if not _valid_name(name):
            failures.append(Failure(path.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"),
                                    "name is not valid UTF-8; no target can hold it", "file"))
            return
        try:
            st = os.lstat(name, dir_fd=dir_fd) if dir_fd is not None else os.lstat(os.path.join(full, name))
        except FileNotFoundError:
            failures.append(Failure(path, "vanished while its directory was listed", "file"))
            return
        except OSError as exc:
            failures.append(Failure(path, f"cannot stat: {exc.strerror or exc}", "file"))
            return
        mode = st.st_mode
        if stat_mod.S_ISLNK(mode):
            failures.append(Failure(path, "symbolic link; not followed", "symlink"))
        elif stat_mod.S_ISDIR(mode):
            subdirs.append(path)
        elif stat_mod.S_ISREG(mode):
            files.append(WorkItem(path, st.st_size, st.st_mtime_ns, stat_mod.S_IMODE(mode), verify))
        else:
            reason = next((why for test, why in _SPECIAL if test(mode)), "not a regular file")
            failures.append(Failure(path, reason, "special"))
