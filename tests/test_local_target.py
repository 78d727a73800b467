"""LocalTarget specifics beyond the contract: modes, temp files, names the disk refuses."""

from __future__ import annotations

import os
import threading

import pytest

from copier.errors import NameNotAllowed, PermanentError
from copier.payload import BytesPayload
from targets.local import LocalTarget
from targets.names import is_temp_name, temp_name


def test_put_sets_mode_and_ns_mtime(tmp_path) -> None:
    target = LocalTarget(str(tmp_path))
    target.check()
    assert target.mtime_tolerance_ns == 0  # tmpfs / ext4 keep nanoseconds
    target.put("x/setuid", BytesPayload(b"1", 1_234_567_891, 0o104750))
    st = os.stat(tmp_path / "x" / "setuid")
    assert st.st_mode & 0o7777 == 0o4750 and st.st_mtime_ns == 1_234_567_891


def test_temp_names_are_hidden_short_and_recognised() -> None:
    name = temp_name("n" * 255)
    assert name.startswith(".") and len(name) < 80 and is_temp_name(name)
    assert not is_temp_name(".bashrc") and not is_temp_name("x.copier-0123456789ab.tmp")


def test_list_files_skips_temp_files_and_folders(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / temp_name("f")).write_bytes(b"partial")
    (tmp_path / "f").write_bytes(b"ok")
    assert [s.name for s in LocalTarget(str(tmp_path)).list_files("")] == ["f"]


def test_names_the_disk_refuses(tmp_path) -> None:
    target = LocalTarget(str(tmp_path))
    with pytest.raises(NameNotAllowed):
        target.put("é" * 200, BytesPayload(b"", 1))  # 400 bytes in UTF-8
    with pytest.raises(NameNotAllowed):
        target.stat("../outside")
    assert os.listdir(tmp_path) == []


def test_a_file_in_the_way_of_a_folder_is_permanent(tmp_path) -> None:
    target = LocalTarget(str(tmp_path))
    target.put("a", BytesPayload(b"1", 1))
    with pytest.raises(PermanentError):
        target.put("a/b", BytesPayload(b"2", 1))
    with pytest.raises(PermanentError):
        target.make_dir("a/c")


_MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
tmpfs /dev/shm tmpfs rw 0 0
nas:/export /mnt/nas nfs4 rw,vers=4.2 0 0
//filer/share /mnt/my\\040share cifs rw 0 0
sshfs#me@host: /mnt/nas/remote fuse.sshfs rw 0 0
/dev/vdb /mnt/nas/local ext4 rw 0 0
"""


@pytest.mark.parametrize("path, network", [
    ("/home/me/data", False),
    ("/dev/shm/x", False),
    ("/mnt/nas", True),
    ("/mnt/nas/deep/er", True),
    ("/mnt/nasty", False),             # a prefix of the name is not the mount point
    ("/mnt/my share/x", True),         # \040 in the mount table is a space
    ("/mnt/nas/remote/y", True),
    ("/mnt/nas/local/z", False),       # the longest mount point holding the path decides
])
def test_network_file_systems_are_told_by_the_longest_mount_point(tmp_path, path, network) -> None:
    from targets.local import on_network_fs

    mounts = tmp_path / "mounts"
    mounts.write_text(_MOUNTS)
    assert on_network_fs(path, str(mounts)) is network


def test_an_unreadable_mount_table_means_local(tmp_path) -> None:
    from targets.local import on_network_fs

    assert on_network_fs("/mnt/nas", str(tmp_path / "missing")) is False


def test_suggested_concurrency_is_small_between_local_disks(tmp_path, monkeypatch) -> None:
    import targets.local as local

    target = LocalTarget(str(tmp_path / "t"))
    monkeypatch.setattr(local, "on_network_fs", lambda path: path == "/mnt/nas")
    assert target.suggested_concurrency(str(tmp_path)) == local.LOCAL_CONCURRENCY
    assert target.suggested_concurrency("/mnt/nas") == local.NETWORK_CONCURRENCY
    assert local.LOCAL_CONCURRENCY < local.NETWORK_CONCURRENCY


def test_copies_in_flight_come_from_the_flag_then_the_environment_then_the_target(tmp_path, monkeypatch) -> None:
    from copier import cli

    target = LocalTarget(str(tmp_path / "t"))
    monkeypatch.setattr(target, "suggested_concurrency", lambda source: 3)
    monkeypatch.delenv("COPIER_WORKER_CONCURRENCY", raising=False)
    assert cli._tuning(target, str(tmp_path), None).worker_concurrency == 3
    assert cli._tuning(target, str(tmp_path), 7).worker_concurrency == 7
    monkeypatch.setenv("COPIER_WORKER_CONCURRENCY", "5")
    assert cli._tuning(target, str(tmp_path), None).worker_concurrency == 5
    assert cli._tuning(target, str(tmp_path), 7).worker_concurrency == 7
    assert cli._tuning(object(), str(tmp_path), None).worker_concurrency == 5


def test_the_embedded_state_polls_sooner_unless_the_environment_says_otherwise(tmp_path, monkeypatch) -> None:
    from copier import cli
    from copier.config import EMBEDDED_IDLE_POLL_S, Tuning

    target = LocalTarget(str(tmp_path / "t"))
    monkeypatch.delenv("COPIER_IDLE_POLL_S", raising=False)
    assert EMBEDDED_IDLE_POLL_S < Tuning().idle_poll_s
    assert cli._tuning(target, str(tmp_path), None, embedded=True).idle_poll_s == EMBEDDED_IDLE_POLL_S
    assert cli._tuning(target, str(tmp_path), None).idle_poll_s == Tuning().idle_poll_s  # Redis, Azure queues
    monkeypatch.setenv("COPIER_IDLE_POLL_S", "0.3")
    assert cli._tuning(target, str(tmp_path), None, embedded=True).idle_poll_s == 0.3


def _counting_syncs(monkeypatch, tmp_path):
    """A target whose syncfs calls are recorded (and may be slowed or failed by the test)."""
    import targets.local as local

    target = LocalTarget(str(tmp_path))
    target.check()
    target._on_network = False  # whatever file system the test folder is on
    syncs: list[int] = []
    monkeypatch.setattr(local, "_syncfs_fd", lambda fd: syncs.append(fd))
    return target, syncs, local


def test_puts_are_made_durable_by_one_sync_per_flush_not_one_per_file(tmp_path, monkeypatch) -> None:
    target, syncs, local = _counting_syncs(monkeypatch, tmp_path)
    monkeypatch.setattr(local.os, "fsync", lambda fd: pytest.fail("a put must not fsync each file"))
    target.flush()
    assert syncs == []  # nothing written yet: nothing to sync
    for i in range(5):
        target.put(f"d/f{i}", BytesPayload(b"x", 1_000_000_000))
    target.flush()
    target.flush()
    assert len(syncs) == 1
    target.put("d/later", BytesPayload(b"y", 1_000_000_000))
    target.flush()
    assert len(syncs) == 2
    target.make_dir("empty/folder")  # a folder made is synced too
    target.flush()
    assert len(syncs) == 3


class _SpyLock:
    """A lock that tells when a second caller has come to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.second_waiting = threading.Event()
        self._arrivals = 0

    def __enter__(self):
        self._arrivals += 1
        if self._arrivals == 2:
            self.second_waiting.set()
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


def _slow_first_sync(monkeypatch, local, target):
    entered, release = threading.Event(), threading.Event()
    syncs: list[int] = []

    def slow_sync(fd: int) -> None:
        syncs.append(fd)
        entered.set()
        assert release.wait(10)

    monkeypatch.setattr(local, "_syncfs_fd", slow_sync)
    target._sync_lock = lock = _SpyLock()
    return entered, release, syncs, lock


def _flush_twice(target, entered, release, lock, between=lambda: None) -> None:
    first = threading.Thread(target=target.flush)
    first.start()
    assert entered.wait(10)
    between()
    second = threading.Thread(target=target.flush)
    second.start()
    assert lock.second_waiting.wait(10)  # the second flush waits on the sync under way
    release.set()
    first.join(10)
    second.join(10)
    assert not first.is_alive() and not second.is_alive()


def test_a_flush_whose_puts_a_sync_under_way_covers_waits_for_it_and_syncs_nothing_more(tmp_path, monkeypatch) -> None:
    target, _, local = _counting_syncs(monkeypatch, tmp_path)
    target.put("f", BytesPayload(b"x", 1_000_000_000))
    entered, release, syncs, lock = _slow_first_sync(monkeypatch, local, target)
    _flush_twice(target, entered, release, lock)
    assert len(syncs) == 1


def test_a_put_that_returns_during_a_sync_is_synced_by_the_next_flush(tmp_path, monkeypatch) -> None:
    target, _, local = _counting_syncs(monkeypatch, tmp_path)
    target.put("f", BytesPayload(b"x", 1_000_000_000))
    entered, release, syncs, lock = _slow_first_sync(monkeypatch, local, target)
    _flush_twice(target, entered, release, lock,
                 between=lambda: target.put("g", BytesPayload(b"y", 1_000_000_000)))
    assert len(syncs) == 2


def test_a_failed_sync_removes_what_it_covered_and_fails_every_later_flush(tmp_path, monkeypatch) -> None:
    import errno

    from copier.errors import BackendUnavailable

    target, syncs, local = _counting_syncs(monkeypatch, tmp_path)
    target.put("kept", BytesPayload(b"synced before", 1_000_000_000))
    target.flush()

    def failing(fd: int) -> None:
        syncs.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local, "_syncfs_fd", failing)
    target.put("a/lost", BytesPayload(b"1", 1_000_000_000))
    target.put("b/lost", BytesPayload(b"2", 1_000_000_000))
    with pytest.raises(BackendUnavailable, match="Input/output error.*2 files"):
        target.flush()
    assert not (tmp_path / "a" / "lost").exists() and not (tmp_path / "b" / "lost").exists()
    assert (tmp_path / "kept").read_bytes() == b"synced before"
    target.put("c/after", BytesPayload(b"3", 1_000_000_000))
    with pytest.raises(BackendUnavailable):  # no batch of this target is acknowledged any more
        target.flush()
    assert len(syncs) == 2


def test_a_file_an_earlier_attempt_may_have_written_is_synced_before_it_counts(tmp_path, monkeypatch) -> None:
    target, syncs, _ = _counting_syncs(monkeypatch, tmp_path)
    (tmp_path / "f").write_bytes(b"written by a process killed before its flush")
    target.sweep("f")  # what a redelivered batch does before it looks at the target
    target.flush()
    assert len(syncs) == 1


def test_syncfs_runs_on_this_file_system(tmp_path) -> None:
    from targets.local import _syncfs_fd

    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _syncfs_fd(fd)  # the real call: raises if libc's syncfs refused it
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        _syncfs_fd(fd)  # closed


def test_a_forked_child_draws_its_own_temp_name_tag() -> None:
    from targets import names

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only write and leave
        os.write(w, names.temp_name("x").encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 200).decode()
    os.close(r)
    os.waitpid(pid, 0)
    mine = names.temp_name("x")
    assert names.is_temp_name(child) and names.is_temp_name(mine)
    tag = len(names.temp_prefix("x"))
    assert child[tag:tag + 6] != mine[tag:tag + 6]  # the process tag; a shared one made equal names
