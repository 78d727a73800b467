from __future__ import annotations

import uuid

import pytest

from tests import servers


@pytest.fixture(scope="session")
def redis_server():
    server = servers.start_redis()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """A clean database on the session's redis-server for each test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def azurite():
    server = servers.start_azurite()
    yield server
    server.stop()


@pytest.fixture
def unique() -> str:
    """A short unique name for containers, queues and jobs of one test."""
    return "t" + uuid.uuid4().hex[:10]
