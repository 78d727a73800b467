"""The seeder on the embedded backends: paging in name order, resume after a kill, entries
that are not regular files, empty directories."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from copier.backends.sqlite_frontier import SqliteFrontier
from copier.backends.sqlite_state import SqliteStateStore
from copier.config import Tuning
from copier.models import JobSpec, Order
from controller.seeder import Seeder


class RecordingTarget:
    """A target with directories that records make_dir calls and writes nothing."""

    url = "memory://"
    has_directories = True
    mtime_tolerance_ns = 0

    def __init__(self) -> None:
        self.made: list[str] = []
        self.flushed_with: list[int] = []  # how many folders were made at each flush

    def is_empty(self) -> bool:
        return True

    def make_dir(self, path: str) -> None:
        self.made.append(path)

    def flush(self) -> None:
        self.flushed_with.append(len(self.made))


def _setup(tmp_path: Path, source: Path, **tuning):
    db = str(tmp_path / "state.sqlite")
    state, frontier = SqliteStateStore(db, "j"), SqliteFrontier(db, "j", Order.DFS)
    spec = state.register(JobSpec("j", str(source), "memory://", Order.DFS))
    frontier.seed_root()
    target = RecordingTarget()
    seeder = Seeder(spec, frontier, state, target, Tuning(idle_poll_s=0.01, **tuning), "s1")
    return state, frontier, seeder, target


def _all_items(state) -> list[str]:
    paths = []
    while (batch := state.take_batch(0, 1000, 10**15, 1, 0.0)) is not None:
        paths += [it.path for it in batch.items]
    return paths


def _touch(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(name.encode())


def test_resumed_listing_neither_repeats_nor_skips_when_the_directory_changed(tmp_path):
    src = tmp_path / "src"
    _touch(src, [f"f{i:03d}" for i in range(35)])
    state, frontier, seeder, _ = _setup(tmp_path, src, page_entries=10)

    lease = frontier.claim("dead seeder", 0.2)
    first = next(seeder._pages(lease.node.path, lease.node.cursor, False))
    assert frontier.commit(lease, first) and not first.last
    # The seeder dies; the directory changes before another seeder resumes it.
    (src / "f020").unlink()
    _touch(src, ["a-new-first", "f025b", "zz-new-last"])
    deadline = time.monotonic() + 10
    while not frontier.requeue_expired():
        assert time.monotonic() < deadline, "the dead seeder's lease never expired"
        time.sleep(0.02)
    seeder.run()

    listed = _all_items(state)
    assert len(listed) == len(set(listed)), "a file item was handed on twice"
    expected = {f"f{i:03d}" for i in range(35)} - {"f020"} | {"f025b", "zz-new-last"}
    assert set(listed) == expected  # "a-new-first" sorts before the committed page: missed like any live change
    assert state.counters().files_total == len(listed)


def test_a_directory_larger_than_the_sort_buffer_is_listed_once_in_order(tmp_path):
    src = tmp_path / "src"
    names = [f"n{i:04d}" for i in range(250)]
    _touch(src, reversed(names))
    state, frontier, seeder, _ = _setup(tmp_path, src, page_entries=30, sort_names_max=100)
    seeder.run()
    assert _all_items(state) == names


def test_small_folders_go_together_and_a_large_one_among_them_is_paged_alone(tmp_path):
    src = tmp_path / "src"
    expected = []
    for d in range(8):  # the root's listing is one page
        count = 45 if d == 5 else 3  # d05 needs several pages
        names = [f"f{i:02d}" for i in range(count)]
        _touch(src / f"d{d:02d}", names)
        expected += [f"d{d:02d}/{n}" for n in names]
    state, frontier, seeder, _ = _setup(tmp_path, src, page_entries=10, dirs_per_claim=4)
    calls, released = [], []
    real_commit, real_release = frontier.commit_many, frontier.release
    frontier.commit_many = lambda commits, *a: calls.append(len(commits)) or real_commit(commits, *a)
    frontier.release = lambda lease: released.append(lease.node.path) or real_release(lease)
    seeder.run()
    listed = _all_items(state)
    assert sorted(listed) == sorted(expected) and len(listed) == len(expected)
    c = state.counters()
    assert (c.dirs_total, c.dirs_done, c.files_total) == (9, 9, len(expected))
    assert max(calls) == 4  # four small folders handed on in one call
    # Claimed four at a time (d04-d07): d04 is handed on, d06 and d07 given back before d05 is
    # paged, the last first, so that they wait in their order.
    assert released == ["d07", "d06"]
    assert frontier.exhausted() is True


def test_held_folders_are_handed_on_in_parts_of_about_a_page(tmp_path):
    src = tmp_path / "src"
    for d in range(8):
        _touch(src / f"d{d}", ["a", "b", "c"])
    state, frontier, seeder, _ = _setup(tmp_path, src, page_entries=10, dirs_per_claim=8)
    calls = []
    real_commit = frontier.commit_many
    frontier.commit_many = lambda commits, *a: calls.append(len(commits)) or real_commit(commits, *a)
    seeder.run()
    # the root, then d0-d3 (12 entries: past a page) and d4-d7 of the eight claimed together
    assert [n for n in calls if n] == [1, 4, 4]
    assert sorted(_all_items(state)) == sorted(f"d{d}/{n}" for d in range(8) for n in "abc")


def test_a_seeder_slow_over_its_held_folders_renews_them(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for d in range(3):
        _touch(src / f"d{d}", ["f"])
    state, frontier, seeder, _ = _setup(tmp_path, src, dirs_per_claim=3, dir_lease_s=1)
    root = frontier.claim("s1", 30)
    _, held = frontier.commit_many([(root, next(seeder._pages("", "", False)))], "s1", 1, 3)
    clock = iter(range(0, 1000, 10))  # every look at the clock: ten seconds later
    monkeypatch.setattr("controller.seeder.time.monotonic", lambda: float(next(clock)))
    renewed = []
    real_renew = frontier.renew
    frontier.renew = lambda lease, s: renewed.append(lease.node.path) or real_renew(lease, s)
    assert seeder.walk_nodes(held) == []
    assert renewed[:2] == ["d1", "d2"]  # after the first folder: the two not yet listed
    assert sorted(_all_items(state)) == ["d0/f", "d1/f", "d2/f"]


def test_a_stopped_seeder_gives_back_the_nodes_it_has_not_listed(tmp_path):
    src = tmp_path / "src"
    for d in range(6):
        _touch(src / f"d{d}", ["f"])
    state, frontier, seeder, _ = _setup(tmp_path, src, dirs_per_claim=4)
    root = frontier.claim("s1", 30)
    flags, held = frontier.commit_many([(root, next(seeder._pages("", "", False)))], "s1", 30, 4)
    assert flags == [True] and len(held) == 4
    seeder.stop.set()
    assert seeder.walk_nodes(held) == []
    # Given back at once, not left to their leases, in their order: all six wait to be claimed.
    again = [frontier.claim("s2", 30) for _ in range(7)]
    assert [lease.node.path for lease in again[:6]] == [f"d{d}" for d in range(6)] and again[6] is None


def test_entries_that_are_not_regular_files_become_failures_with_reasons(tmp_path):
    src = tmp_path / "src"
    _touch(src, ["plain"])
    os.symlink("plain", src / "link")
    os.symlink(".", src / "loop")
    os.mkfifo(src / "pipe")
    locked = src / "locked"
    locked.mkdir()
    (locked / "secret").write_bytes(b"x")
    locked.chmod(0)
    try:
        state, frontier, seeder, _ = _setup(tmp_path, src)
        seeder.run()
    finally:
        locked.chmod(0o755)
    reasons = {f.path: f.reason for f in state.failures()}
    assert "symbolic link" in reasons["link"] and "symbolic link" in reasons["loop"]
    assert "FIFO" in reasons["pipe"]
    if os.geteuid() != 0:  # root reads anything
        assert "permission denied" in reasons["locked"].lower()
    assert _all_items(state)[0] == "plain"
    c = state.counters()
    assert frontier.exhausted() and c.dirs_done == c.dirs_total


def test_empty_directories_are_made_at_the_target(tmp_path):
    src = tmp_path / "src"
    (src / "empty" / "nested empty").mkdir(parents=True)
    _touch(src / "full", ["f"])
    _, _, seeder, target = _setup(tmp_path, src)
    seeder.run()
    assert target.made == ["empty/nested empty"]


@pytest.mark.parametrize("name", [b"latin1-\xe9.txt"])
def test_a_name_that_is_not_utf8_is_a_failure_not_a_crash(tmp_path, name):
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(os.fsencode(src), name), "wb") as f:
        f.write(b"x")
    state, _, seeder, _ = _setup(tmp_path, src)
    seeder.run()
    assert _all_items(state) == []
    [failure] = state.failures()
    assert "UTF-8" in failure.reason


def test_names_beyond_ascii_are_listed_like_any_other(tmp_path):
    src = tmp_path / "src"
    _touch(src / "ünïcode dir", ["café.txt", "plain.txt", "日本.bin"])
    state, _, seeder, _ = _setup(tmp_path, src)
    seeder.run()
    assert sorted(_all_items(state)) == sorted(f"ünïcode dir/{n}" for n in ["café.txt", "plain.txt", "日本.bin"])
    assert state.counters().dirs_total == 2 and state.failures() == []


def test_the_empty_folders_a_walk_made_are_flushed_when_it_ends(tmp_path):
    source = tmp_path / "src"
    (source / "a" / "empty").mkdir(parents=True)
    (source / "b").mkdir()
    (source / "b" / "file").write_bytes(b"x")
    _, _, seeder, target = _setup(tmp_path, source)
    seeder.run()
    assert sorted(target.made) == ["a/empty"]
    assert target.flushed_with == [1]
