"""The state backends the contract suites run against: Redis (a real server) and SQLite."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from copier.backends.redis_frontier import RedisFrontier
from copier.backends.redis_state import RedisStateStore, connect
from copier.backends.sqlite_frontier import SqliteFrontier
from copier.backends.sqlite_state import SqliteStateStore
from copier.models import Order


@dataclass
class StateBackend:
    name: str
    make_state: Callable
    make_frontier: Callable
    made: list = field(default_factory=list)

    def state(self, job: str):
        store = self.make_state(job)
        self.made.append(store)
        return store

    def frontier(self, job: str, order: Order = Order.DFS):
        frontier = self.make_frontier(job, order)
        self.made.append(frontier)
        return frontier


@pytest.fixture(params=["redis", "sqlite"])
def backend(request, tmp_path):
    if request.param == "redis":
        client = connect(request.getfixturevalue("redis_url"))
        made = StateBackend("redis", lambda job: RedisStateStore(client, job),
                            lambda job, order: RedisFrontier(client, job, order))
        yield made
        client.close()
    else:
        db = tmp_path / "state.db"
        made = StateBackend("sqlite", lambda job: SqliteStateStore(db, job),
                            lambda job, order: SqliteFrontier(db, job, order))
        yield made
        for part in made.made:
            part.close()


def eventually(check: Callable, timeout_s: float = 5.0, interval_s: float = 0.02):
    """Poll ``check`` until it returns something true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
