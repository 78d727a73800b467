"""LocalTarget specifics beyond the contract: modes, temp files, names the disk refuses."""

from __future__ import annotations

import os

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


def test_puts_are_made_durable_by_one_sync_per_flush_not_one_per_file(tmp_path, monkeypatch) -> None:
    import targets.local as local

    syncs: list[str] = []
    monkeypatch.setattr(local, "_syncfs", lambda path: syncs.append(path))
    monkeypatch.setattr(local.os, "fsync", lambda fd: pytest.fail("a put must not fsync each file"))
    target = LocalTarget(str(tmp_path))
    target.flush()
    assert syncs == []  # nothing written yet: nothing to sync
    for i in range(5):
        target.put(f"d/f{i}", BytesPayload(b"x", 1_000_000_000))
    target.flush()
    target.flush()
    assert syncs == [str(tmp_path)]
    target.put("d/later", BytesPayload(b"y", 1_000_000_000))
    target.flush()
    assert syncs == [str(tmp_path)] * 2


def test_concurrent_flushes_share_one_sync(tmp_path, monkeypatch) -> None:
    import threading

    import targets.local as local

    entered, release = threading.Event(), threading.Event()
    syncs: list[str] = []

    def slow_sync(path: str) -> None:
        syncs.append(path)
        entered.set()
        assert release.wait(10)

    monkeypatch.setattr(local, "_syncfs", slow_sync)
    target = LocalTarget(str(tmp_path))
    target.put("f", BytesPayload(b"x", 1_000_000_000))
    first = threading.Thread(target=target.flush)
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=target.flush)  # its put is covered by the sync under way
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert not first.is_alive() and not second.is_alive()
    assert syncs == [str(tmp_path)]


def test_a_failed_sync_is_transient_and_is_tried_again(tmp_path, monkeypatch) -> None:
    import errno

    import targets.local as local
    from copier.errors import TransientError

    calls: list[int] = []

    def failing_once(path: str) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(local, "_syncfs", failing_once)
    target = LocalTarget(str(tmp_path))
    target.put("f", BytesPayload(b"x", 1_000_000_000))
    with pytest.raises(TransientError, match="I/O error"):
        target.flush()
    target.flush()
    assert len(calls) == 2


def test_syncfs_runs_on_this_file_system(tmp_path) -> None:
    from targets.local import _syncfs

    _syncfs(str(tmp_path))  # the real call: raises if libc's syncfs refused the folder
    with pytest.raises(OSError):
        _syncfs(str(tmp_path / "missing"))
