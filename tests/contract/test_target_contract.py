"""The Target contract (copier.protocols.Target + Lister), run against every target:
local (a tmp folder), Azure Blob (Azurite) and Azure Files (the project's emulator)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from copier.errors import NameNotAllowed, SourceChanged
from copier.payload import SMALL_LIMIT, BytesPayload, FilePayload
from copier.protocols import Lister, Target
from targets import open_target

REPO = Path(__file__).resolve().parents[2]
MTIME = 1_700_000_000_123_456_789
AWKWARD = ["with space.txt", "hash#tag", "per%cent%20", "ünïcødé/naïve.txt", "-leading-dash",
           "a+b&c=d;e,f", "日本語/ファイル.txt", "~tilde'quote"]


@dataclass
class Case:
    """One target under test and how to look at what it stored, bypassing the target."""

    target: Target
    read_back: Callable[[str], bytes]  # content stored under a path
    stored_md5: Callable[[str], bytes | None]  # MD5 the service keeps with the object, if any
    raw_names: Callable[[str], list[str]]  # every name directly in a folder, temp names included
    good_names: list[str] = field(default_factory=list)
    bad_names: list[str] = field(default_factory=list)
    plant: Callable[[str, bytes], None] | None = None  # store raw bytes under a path, bypassing the target


# -- local ------------------------------------------------------------------------------------
def local_case(root: Path) -> Case:
    target = open_target(str(root))
    target.check()

    def raw_names(folder: str) -> list[str]:
        path = root / folder
        return sorted(os.listdir(path)) if path.is_dir() else []

    def plant(path: str, data: bytes) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)

    return Case(target, lambda p: (root / p).read_bytes(), lambda p: None, raw_names,
                good_names=AWKWARD + ["question?mark", "back\\slash", "trailing."],
                bad_names=["x" * 300, "dir/" + "y" * 256 + "/f", "a/../b", "a//b", "nul\x00byte"], plant=plant)


# -- blob ---------------------------------------------------------------------------------------
def blob_case(azurite, container: str) -> Case:
    from azure.storage.blob import BlobServiceClient

    prefix = "pre fix"
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    target = open_target(f"{azurite.blob_endpoint}/{container}/{prefix}", env)
    target.check()
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)

    def blob(path: str):
        return client.get_blob_client(f"{prefix}/{path}")

    def raw_names(folder: str) -> list[str]:
        start = f"{prefix}/{folder}/" if folder else f"{prefix}/"
        return sorted(b.name[len(start):] for b in client.walk_blobs(name_starts_with=start, delimiter="/"))

    return Case(target, lambda p: blob(p).download_blob().readall(),
                lambda p: bytes(blob(p).get_blob_properties().content_settings.content_md5 or b""),
                raw_names,
                good_names=AWKWARD + ["question?mark", "colon:pipe|star*", "trailing space "],
                bad_names=["a/./b", "a/../b", "x" * 1100, "ctl\x01char", "back\\slash", "dot/end.", "a//b"])


# -- files --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def files_emulator():
    if not (REPO / "tests" / "files_servers.py").exists():
        pytest.skip("the Azure Files emulator (tests/files_servers.py) is not there yet")
    from tests.files_servers import start_files_emulator

    server = start_files_emulator()
    yield server
    server.stop()


def files_case(emulator, share: str) -> Case:
    from azure.storage.fileshare import ShareServiceClient

    base = "base dir"
    env = {"AZURE_STORAGE_CONNECTION_STRING": emulator.connection_string}
    target = open_target(f"files+{emulator.endpoint}/{share}/{base}", env)
    target.check()
    client = ShareServiceClient.from_connection_string(emulator.connection_string).get_share_client(share)

    def file(path: str):
        return client.get_file_client(f"{base}/{path}")

    def raw_names(folder: str) -> list[str]:
        directory = client.get_directory_client(f"{base}/{folder}" if folder else base)
        return sorted(item["name"] for item in directory.list_directories_and_files())

    return Case(target, lambda p: file(p).download_file().readall(),
                lambda p: bytes(file(p).get_file_properties().content_settings.content_md5 or b""),
                raw_names,
                good_names=AWKWARD,
                bad_names=["q?mark", "a:b", 'quote"', "pipe|", "lt<", "star*", "back\\slash", "trailing.",
                           "dir./f", "trailing ", "x" * 256, "/".join(["d" * 200] * 11), "ctl\x1fchar",
                           "a/../b"],
                plant=lambda p, data: file(p).upload_file(data))


@pytest.fixture(params=["local", "blob", "blob-blocks", "files"])
def case(request, tmp_path, unique) -> Iterator[Case]:
    if request.param == "local":
        made = local_case(tmp_path / "target")
    elif request.param.startswith("blob"):
        made = blob_case(request.getfixturevalue("azurite"), unique)
        if request.param == "blob-blocks":  # every large file in blocks, not one streamed Put Blob
            made.target.single_put_max = 0
            made.target.block_size = 2 * 1024 * 1024
    else:
        made = files_case(request.getfixturevalue("files_emulator"), unique)
    yield made
    made.target.close()


# -- payloads -----------------------------------------------------------------------------------
class FailingPayload:
    """A large payload whose source changes after ``good_chunks`` chunks were read."""

    def __init__(self, size: int, good_chunks: int) -> None:
        self.size, self.mtime_ns, self.mode, self.data = size, MTIME, 0o644, None
        self.good_chunks = good_chunks

    def chunks(self, chunk_size: int, digest: bool = True) -> Iterator[bytes]:
        for _ in range(self.good_chunks):
            yield b"x" * chunk_size
        raise SourceChanged("modified while copying (mtime changed)")

    def md5(self) -> bytes:
        raise RuntimeError("never exhausted")

    def md5_ahead(self) -> bytes:
        for _ in self.chunks(1024 * 1024):
            pass
        return self.md5()


class ChangedAtTheEnd(FilePayload):
    """A real FilePayload on a file that is appended to while it is read: it raises
    SourceChanged only after its last chunk, the hardest moment for a target."""

    def chunks(self, chunk_size: int, digest: bool = True) -> Iterator[bytes]:
        for index, chunk in enumerate(super().chunks(chunk_size, digest)):
            if index == 0:
                with open(self.path, "ab") as f:
                    f.write(b"more")
            yield chunk


def big_file(tmp_path: Path, size: int = 9 * 1024 * 1024) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    os.utime(path, ns=(MTIME, MTIME))
    return path, data


def file_payload(path: Path, cls=FilePayload) -> FilePayload:
    st = path.stat()
    return cls(str(path), st.st_size, st.st_mtime_ns, st.st_mode)


def assert_mtime(case: Case, got: int | None, want: int) -> None:
    assert got is not None
    assert abs(got - want) <= case.target.mtime_tolerance_ns


# -- the contract ---------------------------------------------------------------------------------
def test_put_then_stat_round_trips_size_mtime_and_content(case: Case) -> None:
    case.target.put("dir/file.txt", BytesPayload(b"hello world", MTIME, 0o640))
    stat = case.target.stat("dir/file.txt")
    assert stat is not None and stat.size == 11 and stat.name == "file.txt"
    assert_mtime(case, stat.mtime_ns, MTIME)
    assert case.read_back("dir/file.txt") == b"hello world"


def test_put_replaces_an_existing_object(case: Case) -> None:
    case.target.put("f", BytesPayload(b"first version, longer", MTIME))
    case.target.put("f", BytesPayload(b"second", MTIME + 1_000_000_000))
    assert case.read_back("f") == b"second"
    stat = case.target.stat("f")
    assert stat is not None and stat.size == 6
    assert_mtime(case, stat.mtime_ns, MTIME + 1_000_000_000)
    assert case.raw_names("") == ["f"]


def test_source_changed_mid_put_leaves_nothing_under_the_name(case: Case) -> None:
    with pytest.raises(SourceChanged):
        case.target.put("d/torn.bin", FailingPayload(SMALL_LIMIT * 3, good_chunks=1))
    assert case.target.stat("d/torn.bin") is None
    assert case.raw_names("d") == []


def test_source_changed_after_the_last_chunk_keeps_the_old_content(case: Case, tmp_path: Path) -> None:
    case.target.put("d/f.bin", BytesPayload(b"old", MTIME))
    path, _ = big_file(tmp_path)
    with pytest.raises(SourceChanged):
        case.target.put("d/f.bin", file_payload(path, ChangedAtTheEnd))
    assert case.read_back("d/f.bin") == b"old"
    assert case.raw_names("d") == ["f.bin"]


def test_deep_nested_path_gets_its_parents(case: Case) -> None:
    deep = "/".join(f"level{i}" for i in range(12)) + "/leaf.txt"
    case.target.put(deep, BytesPayload(b"deep", MTIME))
    assert case.read_back(deep) == b"deep"
    case.target.put(deep.replace("level11", "sibling"), BytesPayload(b"near", MTIME))
    assert case.read_back(deep.replace("level11", "sibling")) == b"near"


def test_make_dir_is_idempotent(case: Case) -> None:
    case.target.make_dir("a/b/c")
    case.target.make_dir("a/b/c")
    case.target.make_dir("a/b")
    case.target.put("a/b/c/f", BytesPayload(b"1", MTIME))
    assert case.read_back("a/b/c/f") == b"1"


def test_awkward_names_round_trip_unchanged(case: Case) -> None:
    for index, name in enumerate(case.good_names):
        case.target.put(name, BytesPayload(name.encode(), MTIME + index))
    for index, name in enumerate(case.good_names):
        stat = case.target.stat(name)
        assert stat is not None, name
        assert stat.name == name.rpartition("/")[2]
        assert_mtime(case, stat.mtime_ns, MTIME + index)
        assert case.read_back(name) == name.encode()
    top = {n for n in case.good_names if "/" not in n}
    assert {s.name for s in case.target.list_files("")} == top


def test_a_name_the_target_cannot_hold_raises_name_not_allowed(case: Case) -> None:
    for name in case.bad_names:
        with pytest.raises(NameNotAllowed):
            case.target.put(name, BytesPayload(b"x", MTIME))
    assert case.raw_names("") == []


def test_list_files_returns_what_was_put(case: Case) -> None:
    assert isinstance(case.target, Lister)
    sizes = {"one": 1, "two": 22, "three.txt": 333}
    for name, size in sizes.items():
        case.target.put(f"dir/{name}", BytesPayload(b"z" * size, MTIME))
    case.target.put("dir/sub/nested", BytesPayload(b"n", MTIME))
    listed = {s.name: s for s in case.target.list_files("dir")}
    assert {n: s.size for n, s in listed.items()} == sizes
    for stat in listed.values():
        assert_mtime(case, stat.mtime_ns, MTIME)
    assert [s.name for s in case.target.list_files("dir/sub")] == ["nested"]
    assert list(case.target.list_files("missing")) == []


def test_stat_of_a_missing_path_is_none(case: Case) -> None:
    assert case.target.stat("nothing-here") is None
    assert case.target.stat("no/such/dir/file") is None
    case.target.put("folder/file", BytesPayload(b"x", MTIME))
    assert case.target.stat("folder") is None  # a folder is not a file


def test_large_payload_round_trips_with_correct_md5(case: Case, tmp_path: Path) -> None:
    path, data = big_file(tmp_path)
    payload = file_payload(path)
    assert payload.data is None  # really the large-file path
    case.target.put("big/blob.bin", payload)
    assert hashlib.md5(case.read_back("big/blob.bin")).digest() == hashlib.md5(data).digest()
    stored = case.stored_md5("big/blob.bin")
    assert stored in (None, hashlib.md5(data).digest())
    stat = case.target.stat("big/blob.bin")
    assert stat is not None and stat.size == len(data)
    assert_mtime(case, stat.mtime_ns, MTIME)


def test_small_payload_keeps_its_md5(case: Case) -> None:
    case.target.put("small", BytesPayload(b"abc" * 1000, MTIME))
    assert case.stored_md5("small") in (None, hashlib.md5(b"abc" * 1000).digest())


def test_empty_file_round_trips(case: Case, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    os.utime(empty, ns=(MTIME, MTIME))
    case.target.put("e/empty", file_payload(empty))
    stat = case.target.stat("e/empty")
    assert stat is not None and stat.size == 0
    assert_mtime(case, stat.mtime_ns, MTIME)
    assert case.read_back("e/empty") == b""


def test_concurrent_puts_into_one_new_folder_all_land(case: Case) -> None:
    from concurrent.futures import ThreadPoolExecutor

    paths = [f"race/x/y/f{i}" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: case.target.put(p, BytesPayload(p.encode(), MTIME)), paths))
    assert sorted(s.name for s in case.target.list_files("race/x/y")) == sorted(p.rpartition("/")[2] for p in paths)



def test_flush_after_puts_keeps_every_file_and_may_be_repeated(case: Case) -> None:
    for i in range(3):
        case.target.put(f"flushed/f{i}", BytesPayload(b"%d" % i, MTIME))
    case.target.flush()
    case.target.flush()  # nothing new: still fine
    assert [case.read_back(f"flushed/f{i}") for i in range(3)] == [b"0", b"1", b"2"]


def test_is_empty_until_something_is_put(case: Case) -> None:
    assert case.target.is_empty()
    case.target.put("sub dir/first.txt", BytesPayload(b"x", MTIME))
    assert not case.target.is_empty()


def test_sweep_removes_leftover_temp_files_of_that_path_only(case: Case) -> None:
    from copier.protocols import Sweeper
    from targets import names

    if case.plant is None:
        assert not isinstance(case.target, Sweeper)
        pytest.skip("this target commits whole objects in place: nothing is ever left to sweep")
    for name in ("keep.txt", "other.txt"):
        case.target.put(f"d/{name}", BytesPayload(name.encode(), MTIME))
        case.plant(f"d/{names.temp_name(name)}", b"partial")
    assert len(case.raw_names("d")) == 4
    assert case.target.sweep("d/keep.txt") == 1
    assert case.target.sweep("d/keep.txt") == 0
    assert case.target.sweep("d/other.txt") == 1
    assert case.raw_names("d") == ["keep.txt", "other.txt"]
    assert case.read_back("d/keep.txt") == b"keep.txt"


class RewrittenBetweenReads(FilePayload):
    """Same size, same mtime, other bytes after its MD5 was taken: only the content tells."""

    def md5_ahead(self) -> bytes:
        md5 = super().md5_ahead()
        with open(self.path, "r+b") as f:
            f.write(b"\0" * 16)
        os.utime(self.path, ns=(self.mtime_ns, self.mtime_ns))
        return md5


def test_blob_refuses_a_streamed_file_rewritten_between_its_two_reads(azurite, unique, tmp_path: Path) -> None:
    made = blob_case(azurite, unique)
    path, _ = big_file(tmp_path)
    payload = file_payload(path, RewrittenBetweenReads)
    assert payload.size <= made.target.single_put_max  # the streamed path
    with pytest.raises(SourceChanged, match="changed between reads"):
        made.target.put("d/f.bin", payload)
    assert made.target.stat("d/f.bin") is None
