"""What only the SQLite backends promise: several processes share one file safely."""

from __future__ import annotations

import multiprocessing

from copier.backends.sqlite_frontier import SqliteFrontier
from copier.backends.sqlite_state import SqliteStateStore
from copier.models import BatchOutcome, ListingPage, Order, WorkItem


def _deal_and_complete(db_path: str, job: str) -> list[str]:
    state = SqliteStateStore(db_path, job)
    taken = []
    while (batch := state.take_batch(0, 5, 10**9, 1, 0.0)) is not None:
        taken.extend(it.path for it in batch.items)
        state.mark_sent(batch.id)
        state.complete_batch(BatchOutcome(batch.id, 0, batch.cost, files_done=len(batch.items)))
    state.close()
    return taken


def test_processes_sharing_one_file_deal_every_item_once(tmp_path, unique):
    db = str(tmp_path / "state.db")
    frontier = SqliteFrontier(db, unique, Order.DFS)
    frontier.seed_root()
    lease = frontier.claim("s1", 30)
    items = tuple(WorkItem(f"f{i:04}", i, 1, 0o644) for i in range(600))
    assert frontier.commit(lease, ListingPage((), items, (), 600, True))
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_deal_and_complete, [(db, unique)] * 4)
    taken = [p for r in results for p in r]
    assert sorted(taken) == [it.path for it in items]
    counters = SqliteStateStore(db, unique).counters()
    assert (counters.files_done, counters.items_waiting) == (600, 0)
    assert counters.batches_completed == counters.batches_dealt == 120
    frontier.close()
