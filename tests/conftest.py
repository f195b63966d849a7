"""Shared fixtures. Tests that need a server (Redis, PostgreSQL, RabbitMQ, NATS) skip with instructions on a
laptop without one; with INTERLOCK_REQUIRE_SERVICES=1 (set by .ci/run) the skip is a failure."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlparse

import pytest

from interlock.testing import TcpProxy, temporary_schema

RUN_ID = uuid.uuid4().hex[:10]
REDIS_URL = os.environ.get("INTERLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("INTERLOCK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RABBITMQ_URL = os.environ.get("INTERLOCK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("INTERLOCK_TEST_NATS_URL", "nats://127.0.0.1:4222")
REQUIRE_SERVICES = os.environ.get("INTERLOCK_REQUIRE_SERVICES") == "1"

HOW_TO = {
    "Redis": "start one with `redis-server --port 6379` or point INTERLOCK_TEST_REDIS_URL at one",
    "PostgreSQL": "start one (trust auth, database `test`) or point INTERLOCK_TEST_POSTGRES_DSN at one",
    "RabbitMQ": "start one with `rabbitmq-server -detached` (guest/guest) or point INTERLOCK_TEST_RABBITMQ_URL at one",
    "NATS": "start one with JetStream: `nats-server -a 127.0.0.1 -p 4222 -js` or point INTERLOCK_TEST_NATS_URL at one",
}


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), 1.0):
            return True
    except OSError:
        return False


def need_service(name: str, url: str, default_port: int) -> None:
    if _reachable(url, default_port):
        return
    message = f"{name} not reachable at {url}: {HOW_TO[name]}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (INTERLOCK_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def run_id() -> str:
    """Unique per test run, for key prefixes and schema names, so runs never collide."""
    return RUN_ID


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    return f"itest:{RUN_ID}:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def postgres_dsn() -> str:
    need_service("PostgreSQL", POSTGRES_DSN, 5432)
    return POSTGRES_DSN


@pytest.fixture
def postgres_proxy(postgres_dsn: str) -> Iterator[TcpProxy]:
    """A loopback TCP proxy in front of the test PostgreSQL, for one test to freeze or cut (never
    the shared server itself); ``postgres_proxy.url(postgres_dsn)`` connects through it."""
    parsed = urlparse(postgres_dsn)
    with TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432) as proxy:
        yield proxy


@pytest.fixture
def rabbitmq_url() -> str:
    need_service("RabbitMQ", RABBITMQ_URL, 5672)
    return RABBITMQ_URL


@pytest.fixture
def nats_url() -> str:
    need_service("NATS", NATS_URL, 4222)
    return NATS_URL


@pytest.fixture
async def postgres_schema(postgres_dsn: str) -> AsyncIterator[str]:
    """A fresh schema for one test, dropped afterwards."""
    async with temporary_schema(postgres_dsn, f"itest_{RUN_ID}") as schema:
        yield schema


@pytest.fixture
def sqlite_path(tmp_path: object) -> str:
    return os.path.join(str(tmp_path), "interlock.db")


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_store_url(request: pytest.FixtureRequest, sqlite_path: str) -> AsyncIterator[str]:
    """A store URL on each SQL backend in turn: a fresh SQLite file, then a fresh PostgreSQL
    schema (``?schema=``, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{sqlite_path}"
        return
    dsn = request.getfixturevalue("postgres_dsn")  # skips (or fails under CI) without a server
    async with temporary_schema(dsn, f"itest_{RUN_ID}") as schema:
        yield f"{dsn}?schema={schema}"
