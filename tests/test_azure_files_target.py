"""AzureFilesTarget specifics beyond the contract: directory calls, names, times."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from copier.errors import NameNotAllowed, PermanentError
from copier.payload import BytesPayload
from targets import open_target
from targets.azure_files import AzureFilesTarget, _ns, smb_time
from tests.servers import AZURITE_KEY, free_port

MTIME = 1_700_000_000_123_456_789


@pytest.fixture(scope="module")
def files_emulator():
    files_servers = pytest.importorskip("tests.files_servers")
    server = files_servers.start_files_emulator()
    yield server
    server.stop()


def open_files(emulator, share: str) -> AzureFilesTarget:
    target = open_target(f"files+{emulator.endpoint}/{share}/base",
                         {"AZURE_STORAGE_CONNECTION_STRING": emulator.connection_string})
    assert isinstance(target, AzureFilesTarget)
    target.check()
    return target


def tree(folders: int = 24, files_per_folder: int = 5) -> tuple[list[str], set[str]]:
    """Lopsided: a deep chain, a wide fan-out, and leaves under both."""
    dirs = [f"deep/{'/'.join(f'l{j}' for j in range(i + 1))}" for i in range(folders // 2)]
    dirs += [f"wide/w{i}" for i in range(folders - len(dirs))]
    paths = [f"{d}/f{k}" for d in dirs for k in range(files_per_folder)]
    every = {p.rsplit("/", 1)[0] for p in paths}
    every |= {"/".join(d.split("/")[:n]) for d in every for n in range(1, d.count("/") + 1)}
    return paths, every


@pytest.mark.parametrize("threads", [1, 4])
def test_directory_calls_stay_near_one_per_folder(files_emulator, unique, threads) -> None:
    paths, folders = tree()
    target = open_files(files_emulator, unique)
    before = target.dir_calls
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: target.put(p, BytesPayload(b"x", MTIME)), paths))
    per_folder = (target.dir_calls - before) / len(folders)
    print(f"\nfiles: {len(paths)} files, {len(folders)} folders, {target.dir_calls - before} directory calls "
          f"({per_folder:.2f} per folder, {threads} threads, cold cache)")
    assert per_folder <= 2.0
    for path in paths[::7]:
        assert target.stat(path) is not None

    # A second worker (cold cache) writing into the folders that now exist needs no directory call.
    second = open_files(files_emulator, unique)
    calls = second.dir_calls
    for path in paths:
        second.put(path, BytesPayload(b"again", MTIME))
    assert second.dir_calls == calls
    target.close()
    second.close()


def test_make_dir_uses_the_cache(files_emulator, unique) -> None:
    target = open_files(files_emulator, unique)
    target.make_dir("a/b/c/d")
    first = target.dir_calls
    target.make_dir("a/b/c/d")
    target.make_dir("a/b")
    target.put("a/b/c/d/f", BytesPayload(b"x", MTIME))
    assert target.dir_calls == first
    target.close()


def test_a_file_where_a_folder_is_needed_is_a_permanent_failure(files_emulator, unique) -> None:
    target = open_files(files_emulator, unique)
    target.put("blocker", BytesPayload(b"x", MTIME))
    with pytest.raises(PermanentError):
        target.put("blocker/child", BytesPayload(b"y", MTIME))
    target.close()


@pytest.mark.parametrize("name", ["a:b", "q?", "tail.", "tail ", "x" * 256, "ctl\x07", "a/" * 1100 + "z"])
def test_names_are_refused_before_any_request(name: str) -> None:
    # Nothing listens on this port: a request would fail as TransientError, not NameNotAllowed.
    target = open_target(f"files+http://127.0.0.1:{free_port()}/devstoreaccount1/share",
                         {"AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY})
    with pytest.raises(NameNotAllowed):
        target.put(name, BytesPayload(b"x", MTIME))
    with pytest.raises(NameNotAllowed):
        target.stat(name)


def test_file_times_keep_100_ns() -> None:
    assert smb_time(MTIME) == "2023-11-14T22:13:20.1234567Z"
    assert _ns("2023-11-14T22:13:20.1234567Z") == MTIME - 89
    assert smb_time(0) == "1970-01-01T00:00:00.0000000Z"
    assert _ns(smb_time(-1_500_000_000)) == -1_500_000_000
