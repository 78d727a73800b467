"""The Frontier contract (copier.protocols.Frontier), run against every state backend."""

from __future__ import annotations

import threading
import time

import pytest

from copier.models import DirLease, DirNode, Failure, ListingPage, Order, WorkItem, encode_cursor
from tests.contract.state_backends import backend, eventually  # noqa: F401  (fixture)

LEASE_S = 30.0
SHORT_LEASE_S = 0.2


def item(path: str, size: int = 10) -> WorkItem:
    return WorkItem(path, size, 1_700_000_000_000_000_000, 0o644)


def page(subdirs=(), files=(), failures=(), cursor="", last=True) -> ListingPage:
    return ListingPage(tuple(subdirs), tuple(files), tuple(failures), cursor, last)


def list_dir(frontier, lease: DirLease, tree: dict[str, list[str]]) -> bool:
    """Commit one page: the node's children in ``tree``, plus one file per directory."""
    path = lease.node.path
    return frontier.commit(lease, page(tree.get(path, []), [item(f"{path}/f" if path else "f")]))


def walk_order(frontier, tree) -> list[str]:
    seen = []
    while (lease := frontier.claim("s1", LEASE_S)) is not None:
        seen.append(lease.node.path)
        assert list_dir(frontier, lease, tree)
    return seen


TREE = {"": ["a", "b"], "a": ["a/x", "a/y"], "a/x": ["a/x/deep"], "b": ["b/z"]}


def test_seed_root_only_once(backend, unique):
    assert backend.frontier(unique).seed_root() is True
    assert backend.frontier(unique).seed_root() is False
    assert backend.state(unique).counters().dirs_total == 1
    lease = backend.frontier(unique).claim("s1", LEASE_S)
    assert lease is not None and lease.node == DirNode("")
    assert backend.frontier(unique).claim("s1", LEASE_S) is None


def test_claim_before_seeding_returns_none(backend, unique):
    assert backend.frontier(unique).claim("s1", LEASE_S) is None


def test_dfs_claims_deepest_first(backend, unique):
    frontier = backend.frontier(unique, Order.DFS)
    frontier.seed_root()
    assert walk_order(frontier, TREE) == ["", "a", "a/x", "a/x/deep", "a/y", "b", "b/z"]


def test_bfs_claims_in_level_order(backend, unique):
    frontier = backend.frontier(unique, Order.BFS)
    frontier.seed_root()
    assert walk_order(frontier, TREE) == ["", "a", "b", "a/x", "a/y", "b/z", "a/x/deep"]


def test_subdirs_may_be_given_as_bare_names(backend, unique):
    frontier = backend.frontier(unique, Order.BFS)
    frontier.seed_root()
    assert walk_order(frontier, {"": ["a"], "a": ["x"]}) == ["", "a", "a/x"]


def test_page_commit_is_atomic_and_counts_once(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    lease = frontier.claim("s1", LEASE_S)
    files = [item("f1", 100), item("f2", 23)]
    failures = [Failure("link", "symlink skipped", "symlink")]
    assert frontier.commit(lease, page(["d1", "d2"], files, failures)) is True
    assert frontier.commit(lease, page(["d1", "d2"], files, failures)) is False
    c = state.counters()
    assert (c.dirs_total, c.dirs_done, c.files_total, c.bytes_total, c.entries_failed, c.items_waiting) == \
        (3, 1, 2, 123, 1, 2)
    assert state.failures() == failures
    batch = state.take_batch(0, 100, 10**9, 1, 0.0)
    assert batch.items == tuple(files)


def test_commit_with_lost_lease_changes_nothing(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    lost = frontier.claim("s1", SHORT_LEASE_S)
    eventually(frontier.requeue_expired)
    before = state.counters()
    assert frontier.commit(lost, page(["d"], [item("f")], [Failure("x", "bad")])) is False
    assert frontier.renew(lost, LEASE_S) is False
    assert state.counters() == before
    assert state.failures() == []
    again = frontier.claim("s2", LEASE_S)
    assert again.node == DirNode("") and again.token != lost.token
    assert frontier.commit(again, page(["d"], [item("f")])) is True
    assert state.counters().files_total == 1


def test_expired_lease_returns_node_with_cursor(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    lease = frontier.claim("s1", SHORT_LEASE_S)
    assert frontier.commit(lease, page([], [item("f1")], cursor=encode_cursor("f2"), last=False))
    assert eventually(frontier.requeue_expired) == 1
    assert frontier.claim("s2", LEASE_S).node == DirNode("", encode_cursor("f2"))
    c = state.counters()
    assert (c.dirs_done, c.files_total) == (0, 1)


def test_expired_node_comes_back_at_its_cursor(backend, unique):
    frontier = backend.frontier(unique, Order.BFS)
    frontier.seed_root()
    lease = frontier.claim("s1", SHORT_LEASE_S)
    assert frontier.commit(lease, page(["d1"], [item("f1")], cursor=encode_cursor("f5"), last=False))
    assert eventually(frontier.requeue_expired) == 1
    again = frontier.claim("s2", LEASE_S)
    assert again.node == DirNode("", encode_cursor("f5"))  # given back to the front, ahead of d1
    assert frontier.commit(again, page([], [item("f2")], cursor=encode_cursor("f6"), last=True))
    assert frontier.claim("s2", LEASE_S).node == DirNode("d1")


def test_multi_page_directory_counts_done_once(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    lease = frontier.claim("s1", LEASE_S)
    assert frontier.commit(lease, page([], [item("f1")], cursor=encode_cursor("f1"), last=False))
    assert state.counters().dirs_done == 0
    assert frontier.exhausted() is False
    assert frontier.commit(lease, page([], [item("f2")], cursor=encode_cursor("f2"), last=True))
    c = state.counters()
    assert (c.dirs_done, c.files_total, c.items_waiting) == (1, 2, 2)
    assert frontier.exhausted() is True


def test_renew_keeps_a_lease_past_its_first_expiry(backend, unique):
    frontier = backend.frontier(unique)
    frontier.seed_root()
    lease = frontier.claim("s1", SHORT_LEASE_S)
    assert frontier.renew(lease, LEASE_S) is True
    assert frontier.requeue_expired() == 0
    assert frontier.commit(lease, page([], []))


def test_release_gives_node_back_unlisted(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    lease = frontier.claim("s1", LEASE_S)
    frontier.release(lease)
    frontier.release(lease)  # no error when already given back
    assert frontier.commit(lease, page([], [item("f")])) is False
    again = frontier.claim("s2", LEASE_S)
    assert again.node == DirNode("")
    assert state.counters().dirs_done == 0


def test_exhausted_only_when_no_nodes_and_no_leases(backend, unique):
    frontier = backend.frontier(unique)
    assert frontier.exhausted() is False  # not seeded yet: the walk has not begun
    frontier.seed_root()
    assert frontier.exhausted() is False
    lease = frontier.claim("s1", LEASE_S)
    assert frontier.exhausted() is False  # nothing waiting, but one node is leased
    assert frontier.commit(lease, page(["d"], []))
    assert frontier.exhausted() is False
    assert frontier.commit(frontier.claim("s1", LEASE_S), page([], []))
    assert frontier.exhausted() is True


def test_names_that_are_not_utf8_survive(backend, unique):
    odd = "caf\udce9/\u00e9t\u00e9\nnew\tline"
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    assert frontier.commit(frontier.claim("s1", LEASE_S), page([odd.split("/")[0]], []))
    lease = frontier.claim("s1", LEASE_S)
    assert lease.node.path == "caf\udce9"
    assert frontier.commit(lease, page([], [item(odd, 7)], [Failure(odd + "x", "unreadable \udcff")]))
    assert state.take_batch(0, 10, 10**9, 1, 0.0).items == (item(odd, 7),)
    assert state.failures() == [Failure(odd + "x", "unreadable \udcff")]


def test_large_page_commits_whole(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    files = [item(f"f{i:05}", i) for i in range(5000)]
    dirs = [f"d{i:05}" for i in range(2500)]
    assert frontier.commit(frontier.claim("s1", LEASE_S), page(dirs, files))
    c = state.counters()
    assert (c.files_total, c.dirs_total, c.bytes_total) == (5000, 2501, sum(range(5000)))
    assert frontier.claim("s1", LEASE_S).node.path == "d00000"


def test_concurrent_seeders_list_every_directory_once(backend, unique):
    tree = {"": [f"d{i}" for i in range(6)]}
    for i in range(6):
        tree[f"d{i}"] = [f"d{i}/e{j}" for j in range(5)]
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    listed: list[str] = []

    def seeder(name: str) -> None:
        while not frontier.exhausted():
            lease = frontier.claim(name, LEASE_S)
            if lease is None:
                continue
            listed.append(lease.node.path)
            assert list_dir(frontier, lease, tree)

    threads = [threading.Thread(target=seeder, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(listed) == sorted(["", *tree[""], *(p for d in tree[""] for p in tree[d])])
    c = state.counters()
    assert (c.dirs_total, c.dirs_done, c.files_total) == (37, 37, 37)


def test_two_jobs_share_a_store_without_seeing_each_other(backend, unique):
    one, two = backend.frontier(unique + "a"), backend.frontier(unique + "b")
    one.seed_root()
    assert two.claim("s1", LEASE_S) is None
    assert two.exhausted() is False and one.exhausted() is False
    assert one.commit(one.claim("s1", LEASE_S), page([], [item("f")]))
    assert backend.state(unique + "b").counters().files_total == 0
    assert two.seed_root() is True


@pytest.mark.parametrize("order", [Order.DFS, Order.BFS])
def test_order_survives_a_new_frontier_instance(backend, unique, order):
    first = backend.frontier(unique, order)
    first.seed_root()
    assert first.commit(first.claim("s1", LEASE_S), page(["a", "b"], []))
    assert backend.frontier(unique, order).claim("s2", LEASE_S).node.path == "a"


# -- commit_and_claim (copier.protocols.ChainingFrontier) ----------------------------------

def chain_order(frontier, tree) -> list[str]:
    """Walk with commit_and_claim: every node's page handed on with the claim of the next."""
    seen = []
    lease = frontier.claim("s1", LEASE_S)
    while lease is not None:
        seen.append(lease.node.path)
        path = lease.node.path
        committed, lease = frontier.commit_and_claim(
            lease, page(tree.get(path, []), [item(f"{path}/f" if path else "f")]), "s1", LEASE_S)
        assert committed
    return seen


def test_both_backends_chain(backend, unique):
    from copier.protocols import ChainingFrontier

    assert isinstance(backend.frontier(unique), ChainingFrontier)


@pytest.mark.parametrize("order", [Order.DFS, Order.BFS])
def test_commit_and_claim_walks_in_the_same_order_and_counts(backend, unique, order):
    plain, chained = backend.frontier(unique + "p", order), backend.frontier(unique + "c", order)
    plain.seed_root()
    chained.seed_root()
    assert chain_order(chained, TREE) == walk_order(plain, TREE)
    assert backend.state(unique + "c").counters() == backend.state(unique + "p").counters()
    assert chained.exhausted() is True


def test_commit_and_claim_hands_on_a_held_lease(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    first = frontier.claim("s1", LEASE_S)
    failures = [Failure("link", "symlink skipped", "symlink")]
    committed, nxt = frontier.commit_and_claim(first, page(["d1", "d2"], [item("f1", 100)], failures), "s2", LEASE_S)
    assert committed is True
    assert nxt.node == DirNode("d1") and nxt.owner == "s2" and nxt.token != first.token
    assert nxt.expires_at > 0
    assert frontier.commit(first, page([], [item("again")])) is False  # the first page counts once
    c = state.counters()
    assert (c.dirs_total, c.dirs_done, c.files_total, c.bytes_total, c.entries_failed) == (3, 1, 1, 100, 1)
    assert state.failures() == failures
    assert frontier.exhausted() is False
    assert frontier.renew(nxt, LEASE_S) is True
    frontier.release(nxt)  # the claimed node is an ordinary lease: it can be given back
    assert frontier.claim("s3", LEASE_S).node == DirNode("d1")


def test_commit_and_claim_with_a_lost_lease_changes_nothing_and_claims_nothing(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    lost = frontier.claim("s1", SHORT_LEASE_S)
    eventually(frontier.requeue_expired)
    before = state.counters()
    got = frontier.commit_and_claim(lost, page(["d"], [item("f")], [Failure("x", "bad")]), "s1", LEASE_S)
    assert got == (False, None)
    assert state.counters() == before
    assert state.failures() == []
    assert state.take_batch(0, 10, 10**9, 1, 0.0) is None
    again = frontier.claim("s2", LEASE_S)  # the waiting node was not claimed by the failed call
    assert again.node == DirNode("") and again.token != lost.token
    assert frontier.claim("s2", LEASE_S) is None


def test_commit_and_claim_when_nothing_waits(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    other = frontier.claim("s1", LEASE_S)
    assert frontier.commit(other, page(["d"], []))
    lease = frontier.claim("s1", LEASE_S)
    assert frontier.commit_and_claim(lease, page([], [item("d/f")]), "s1", LEASE_S) == (True, None)
    assert frontier.exhausted() is True
    c = state.counters()
    assert (c.dirs_total, c.dirs_done, c.files_total) == (2, 2, 1)


def test_commit_and_claim_takes_only_a_last_page(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    lease = frontier.claim("s1", LEASE_S)
    before = state.counters()
    with pytest.raises(ValueError):
        frontier.commit_and_claim(lease, page([], [item("f")], cursor=encode_cursor("f"), last=False), "s1", LEASE_S)
    assert state.counters() == before
    assert frontier.commit(lease, page([], [item("f")]))


def test_commit_and_claim_lease_expires_like_any_other(backend, unique):
    frontier = backend.frontier(unique, Order.BFS)
    frontier.seed_root()
    committed, nxt = frontier.commit_and_claim(frontier.claim("s1", LEASE_S), page(["a", "b"], []), "s1",
                                               SHORT_LEASE_S)
    assert committed and nxt.node == DirNode("a")
    assert eventually(frontier.requeue_expired) == 1
    assert frontier.commit(nxt, page([], [])) is False
    assert frontier.claim("s2", LEASE_S).node == DirNode("a")  # back at the front, ahead of b


# -- commit_many (copier.protocols.ChainingFrontier) ---------------------------------------

def batch_walk(frontier, tree, per_call: int) -> list[str]:
    """Walk with commit_many: the pages of every held node handed on with the next claims."""
    seen: list[str] = []
    _, leases = frontier.commit_many([], "s1", LEASE_S, per_call)
    while leases:
        seen += [lease.node.path for lease in leases]
        commits = [(lease, page(tree.get(lease.node.path, []),
                                [item(f"{lease.node.path}/f" if lease.node.path else "f")])) for lease in leases]
        flags, leases = frontier.commit_many(commits, "s1", LEASE_S, per_call)
        assert flags == [True] * len(commits)
    return seen


@pytest.mark.parametrize("order", [Order.DFS, Order.BFS])
def test_commit_many_one_at_a_time_walks_like_claim_and_commit(backend, unique, order):
    plain, batched = backend.frontier(unique + "p", order), backend.frontier(unique + "b", order)
    plain.seed_root()
    batched.seed_root()
    assert batch_walk(batched, TREE, 1) == walk_order(plain, TREE)
    assert backend.state(unique + "b").counters() == backend.state(unique + "p").counters()


@pytest.mark.parametrize("order", [Order.DFS, Order.BFS])
@pytest.mark.parametrize("per_call", [2, 3, 50])
def test_commit_many_walks_every_node_once_and_counts(backend, unique, order, per_call):
    plain, batched = backend.frontier(unique + "p", order), backend.frontier(unique + "b", order)
    plain.seed_root()
    batched.seed_root()
    seen = batch_walk(batched, TREE, per_call)
    assert sorted(seen) == sorted(walk_order(plain, TREE)) and len(seen) == len(set(seen))
    assert backend.state(unique + "b").counters() == backend.state(unique + "p").counters()
    assert batched.exhausted() is True


@pytest.mark.parametrize("order", [Order.DFS, Order.BFS])
def test_commit_many_claims_what_successive_claims_would_take(backend, unique, order):
    one, other = backend.frontier(unique + "1", order), backend.frontier(unique + "2", order)
    taken = []
    for frontier in (one, other):
        frontier.seed_root()
        _, (root,) = frontier.commit_many([], "s1", LEASE_S, 1)
        assert root.node == DirNode("") and frontier.claim("s1", LEASE_S) is None
        taken.append(root)
    commits = lambda root: [(root, page(["a", "b", "c"], [item("f")]))]  # noqa: E731
    _, claimed = one.commit_many(commits(taken[0]), "s2", LEASE_S, 2)
    flags, none = other.commit_many(commits(taken[1]), "s2", LEASE_S, 0)
    assert flags == [True] and none == []
    assert [lease.node for lease in claimed] == [other.claim("s2", LEASE_S).node, other.claim("s2", LEASE_S).node]
    assert all(lease.owner == "s2" and lease.expires_at > 0 for lease in claimed)
    assert len({lease.token for lease in claimed}) == 2


@pytest.mark.parametrize("order", [Order.DFS, Order.BFS])
def test_commit_many_leaves_the_frontier_as_commits_in_turn_would(backend, unique, order):
    children = {"a": ["a/1", "a/2"], "b": ["b/1"], "c": ["c/1", "c/2", "c/3"]}
    drained = []
    for name, together in (("t", True), ("s", False)):
        frontier = backend.frontier(unique + name, order)
        frontier.seed_root()
        assert frontier.commit(frontier.claim("s1", LEASE_S), page(["a", "b", "c"], []))
        held = [frontier.claim("s1", LEASE_S) for _ in range(3)]
        commits = [(lease, page(children[lease.node.path], [item(lease.node.path + "/f")])) for lease in held]
        if together:
            assert frontier.commit_many(commits, "s1", LEASE_S, 0) == ([True] * 3, [])
        else:
            assert all(frontier.commit(lease, pg) for lease, pg in commits)
        drained.append([lease.node.path for lease in iter(lambda: frontier.claim("s1", LEASE_S), None)])
    expected = (["c/1", "c/2", "c/3", "b/1", "a/1", "a/2"] if order is Order.DFS
                else ["a/1", "a/2", "b/1", "c/1", "c/2", "c/3"])
    assert drained == [expected, expected]


def test_commit_many_with_a_lost_lease_commits_the_others_and_claims_nothing(backend, unique):
    frontier, state = backend.frontier(unique, Order.BFS), backend.state(unique)
    frontier.seed_root()
    assert frontier.commit(frontier.claim("s1", LEASE_S), page(["a", "b", "c"], []))
    a = frontier.claim("s1", LEASE_S)
    lost = frontier.claim("s1", SHORT_LEASE_S)
    assert eventually(frontier.requeue_expired) == 1  # b is back at the front
    before = state.counters()
    flags, leases = frontier.commit_many([(a, page(["a/x"], [item("a/f", 7)])),
                                          (lost, page(["b/y"], [item("b/f", 9)], [Failure("b/l", "bad")]))],
                                         "s1", LEASE_S, 5)
    assert flags == [True, False] and leases == []
    c = state.counters()
    assert (c.files_total - before.files_total, c.bytes_total - before.bytes_total) == (1, 7)
    assert (c.dirs_total - before.dirs_total, c.dirs_done - before.dirs_done, c.entries_failed) == (1, 1, 0)
    assert state.failures() == []
    # Nothing was claimed: b (given back), c and a/x wait in that order.
    assert [frontier.claim("s2", LEASE_S).node.path for _ in range(3)] == ["b", "c", "a/x"]


def test_commit_many_advances_a_node_that_has_more_pages(backend, unique):
    frontier, state = backend.frontier(unique, Order.BFS), backend.state(unique)
    frontier.seed_root()
    assert frontier.commit(frontier.claim("s1", LEASE_S), page(["a", "b"], []))
    a, b = frontier.claim("s1", LEASE_S), frontier.claim("s1", LEASE_S)
    flags, leases = frontier.commit_many([(a, page([], [item("a/1")], cursor=encode_cursor("1"), last=False)),
                                          (b, page([], [item("b/1")]))], "s1", LEASE_S, 0)
    assert flags == [True, True] and leases == []
    assert frontier.renew(a, LEASE_S) is True  # a is still held, b is done
    assert frontier.renew(b, LEASE_S) is False
    frontier.release(a)
    again = frontier.claim("s2", LEASE_S)
    assert again.node == DirNode("a", encode_cursor("1"))
    c = state.counters()
    assert (c.files_total, c.dirs_done) == (2, 2)


def test_commit_many_takes_each_lease_once(backend, unique):
    frontier, state = backend.frontier(unique), backend.state(unique)
    frontier.seed_root()
    lease = frontier.claim("s1", LEASE_S)
    before = state.counters()
    with pytest.raises(ValueError):
        frontier.commit_many([(lease, page([], [item("f")])), (lease, page([], [item("f")]))], "s1", LEASE_S, 1)
    assert state.counters() == before
    assert frontier.commit(lease, page([], [item("f")]))


def test_commit_many_claims_fewer_when_fewer_wait(backend, unique):
    frontier = backend.frontier(unique, Order.DFS)
    frontier.seed_root()
    root = frontier.claim("s1", LEASE_S)
    flags, leases = frontier.commit_many([(root, page(["a", "b"], []))], "s1", LEASE_S, 16)
    assert flags == [True] and [lease.node.path for lease in leases] == ["a", "b"]
    flags, leases = frontier.commit_many([(lease, page([], [])) for lease in leases], "s1", LEASE_S, 16)
    assert flags == [True, True] and leases == []
    assert frontier.exhausted() is True


def test_expired_nodes_come_back_latest_expiry_frontmost(backend, unique):
    frontier = backend.frontier(unique, Order.BFS)
    frontier.seed_root()
    assert frontier.commit(frontier.claim("s1", LEASE_S), page(["a", "b", "c"], []))
    first = frontier.claim("s1", SHORT_LEASE_S)
    time.sleep(0.02)
    second = frontier.claim("s2", SHORT_LEASE_S)
    assert (first.node.path, second.node.path) == ("a", "b")
    time.sleep(SHORT_LEASE_S + 0.1)
    assert frontier.requeue_expired() == 2
    assert [frontier.claim("s3", LEASE_S).node.path for _ in range(3)] == ["b", "a", "c"]
