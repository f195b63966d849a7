"""What the broker queues add to the Queue contract: the companion's crash safety (a put that
died between its companion row and its publish is published later, never lost), the broker
objects they declare, and recovery after the connection to the broker is cut (through a
loopback TCP proxy this test starts, cuts and restores; the machine's brokers are not touched)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from interlock.stores import Message, Queue
from interlock.stores.queue_sqlite import SQLiteQueue

from .conftest import delete_broker_objects

VIS = 30.0


def msg(i: int) -> Message:
    return Message("src", f"m{i}", "t", f"body {i}".encode(), {"x": str(i)}, received_at=time.time())


class TcpProxy:
    """A loopback TCP proxy to ``target`` that the test can cut (every connection closed, new
    ones refused) and restore (listening again on the same port)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def aclose(self) -> None:
        if self._server is not None:
            await self.cut()


@pytest.fixture(params=["rabbitmq", "nats"])
async def broker(request: pytest.FixtureRequest, sqlite_path: str) -> AsyncIterator[Callable[..., Queue]]:
    """Makes broker queues on one fresh queue/stream name and one SQLite companion."""
    name = f"brokers_{request.getfixturevalue('run_id')}_{uuid.uuid4().hex[:8]}"
    companion = f"sqlite:///{sqlite_path}"
    made: list[Queue] = []
    if request.param == "rabbitmq":
        from interlock.stores.queue_rabbitmq import RabbitMQQueue

        base = request.getfixturevalue("rabbitmq_url")

        def factory(url: str = base, **kwargs: Any) -> Queue:
            q = RabbitMQQueue(url, name=name, **{"companion": companion, "poll_interval": 0.05, **kwargs})
            made.append(q)
            return q
    else:
        from interlock.stores.queue_nats import NATSQueue

        base = request.getfixturevalue("nats_url")

        def factory(url: str = base, **kwargs: Any) -> Queue:
            q = NATSQueue(url, name=name, **{"companion": companion, "poll_interval": 0.05, **kwargs})
            made.append(q)
            return q

    factory.kind = request.param  # type: ignore[attr-defined]
    factory.base = base  # type: ignore[attr-defined]
    factory.name = name  # type: ignore[attr-defined]
    factory.companion = companion  # type: ignore[attr-defined]
    factory.made = made  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        for q in made:
            await q.aclose()
        if made:
            await delete_broker_objects(made[0], base)


async def companion_only_put(factory: Any, message: Message) -> None:
    """What a process that died after its companion insert and before its publish leaves."""
    table = factory.name.replace(".", "_").replace("-", "_")
    async with SQLiteQueue(factory.companion, table=table) as companion:
        assert await companion.put(message) is True


async def lease_all(queue: Queue, want: int, deadline: float = 30.0) -> list[Any]:
    """Lease until ``want`` leases are held, waiting on the queue between tries (bounded)."""
    leases: list[Any] = []
    end = time.monotonic() + deadline
    while len(leases) < want and time.monotonic() < end:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError, RuntimeError):
            leases += await queue.lease(want - len(leases), VIS)  # may fail while reconnecting
        if len(leases) < want:
            await queue.wait(0.2)
    return leases


async def test_a_put_that_died_before_its_publish_is_published_on_open(broker: Any) -> None:
    first = broker()
    await first.open()  # declares the queue/stream, so a later publish has somewhere to go
    await first.aclose()
    await companion_only_put(broker, msg(1))
    queue = broker()
    await queue.open()
    (lease,) = await lease_all(queue, 1, deadline=5.0)  # well before the periodic reconcile (>= 20 s)
    assert (lease.message.id, lease.message.body, lease.attempt) == ("m1", b"body 1", 1)
    assert await queue.ack(lease) is True


async def test_a_retried_put_of_a_message_never_published_publishes_it(broker: Any) -> None:
    queue = broker()
    await queue.open()
    await companion_only_put(broker, msg(1))  # another process died before its publish
    assert await queue.put(msg(1)) is False  # a duplicate for the sender ...
    (lease,) = await lease_all(queue, 1, deadline=5.0)  # ... published now, not by the periodic reconcile
    assert lease.message.id == "m1"
    assert await queue.ack(lease) is True
    assert await queue.put(msg(1)) is False
    assert await queue.lease(5, VIS) == []  # settled and published: no second copy


async def test_a_copy_of_a_settled_message_is_dropped_not_handled_again(broker: Any) -> None:
    queue = broker()
    await queue.open()
    await queue.put(msg(1))
    (lease,) = await queue.lease(1, VIS)
    assert await queue.ack(lease) is True
    await queue._broker_publish(msg(1))  # type: ignore[attr-defined]  # e.g. a nack copy of a crash
    assert await queue.lease(5, VIS) == []
    assert (await queue.stats()).pending == 0


async def test_consumers_come_back_after_the_connection_is_cut(broker: Any) -> None:
    port = int(broker.base.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(port)
    await proxy.start()
    if broker.kind == "rabbitmq":
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/?reconnect_interval=0.2"
    else:
        url = f"nats://127.0.0.1:{proxy.port}"
    queue = broker(url)
    try:
        await queue.open()
        assert await queue.put(msg(1)) is True
        (held,) = await queue.lease(1, VIS)

        await proxy.cut()
        with pytest.raises(Exception):  # whichever the client raises: never a silent success
            await asyncio.wait_for(queue.put(msg(2)), 10.0)
        await proxy.restore()

        # The put that failed is either in the broker already or published again: a retry by
        # the sender finds it known and makes sure it is published.
        end = time.monotonic() + 30.0
        while True:
            try:
                await queue.put(msg(2))
                break
            except Exception:
                if time.monotonic() > end:
                    raise
                await queue.wait(0.2)
        if broker.kind == "rabbitmq":
            # A delivery tag dies with its channel: RabbitMQ requeued m1 when the connection
            # dropped, and the lost lease is given up at once, not at its expiry.
            leases = await lease_all(queue, 2, deadline=15.0)  # the lost lease had VIS = 30 s left
            assert sorted((lease.message.id, lease.attempt) for lease in leases) == [("m1", 2), ("m2", 1)]
            assert await queue.ack(held) is False
        else:
            # JetStream acks by subject, so a lease survives a reconnect of the client.
            leases = await lease_all(queue, 1, deadline=15.0)
            assert [(lease.message.id, lease.attempt) for lease in leases] == [("m2", 1)]
            assert await queue.ack(held) is True
        for lease in leases:
            assert await queue.ack(lease) is True
        assert await queue.lease(5, VIS) == []
        stats = await queue.stats()
        assert (stats.pending, stats.dead) == (0, 0)
    finally:
        await queue.aclose()
        await proxy.aclose()


async def test_a_broker_queue_from_the_factory_keeps_its_companion_where_the_url_says(
    broker: Any, tmp_path: Any
) -> None:
    from interlock.stores import open_queue

    companion = f"sqlite:///{tmp_path}/elsewhere.db"
    sep = "&" if "?" in broker.base else "?"
    queue = open_queue(f"{broker.base}{sep}companion={companion}", table=broker.name, poll_interval=0.05)
    broker.made.append(queue)
    await queue.open()
    assert await queue.put(msg(1)) is True
    (lease,) = await queue.lease(1, VIS)
    assert await queue.ack(lease) is True
    async with SQLiteQueue(companion, table=broker.name) as rows:  # the row is in that file
        assert await rows.put(msg(1)) is False


async def test_a_postgres_companion_keeps_dedupe_order_history_and_replay(
    broker: Any, postgres_dsn: str, postgres_schema: str
) -> None:
    from interlock.stores import DeadLetterFilter

    queue = broker(companion=f"{postgres_dsn}?schema={postgres_schema}")
    await queue.open()
    key = [Message("s", f"k{i}", "t", b"x", received_at=time.time(), ordering_key="A") for i in (1, 2)]
    assert [await queue.put(m) for m in (*key, key[0])] == [True, True, False]
    (first,) = await queue.lease(5, VIS)  # k2 waits for k1
    assert first.message.id == "k1"
    assert await queue.nack(first, delay=0, error="boom") is True
    (again,) = await queue.lease(5, VIS)
    assert (again.message.id, again.attempt, [f.error for f in again.failures]) == ("k1", 2, ["boom"])
    assert await queue.dead_letter(again, error="gave up") is True
    assert await queue.count_dead() == 1
    (k2,) = await queue.lease(5, VIS)  # dead-lettering unblocked the key
    assert await queue.ack(k2) is True
    assert await queue.replay(DeadLetterFilter(ids=["k1"])) == 1
    (replayed,) = await queue.lease(5, VIS)
    assert (replayed.message.id, replayed.attempt, len(replayed.failures)) == ("k1", 1, 2)
    assert await queue.ack(replayed) is True
    stats = await queue.stats()
    assert (stats.pending, stats.dead) == (0, 0)


async def test_rabbitmq_prefetch_mode_leases_what_the_other_process_put_and_only_puts_never_hoard(
    broker: Any,
) -> None:
    if broker.kind != "rabbitmq":
        # JetStream has no prefetch mode: its pull requests fetch what a lease asks for.
        queue = broker()
        await queue.open()
        await queue.put(msg(1))
        assert [lease.message.id for lease in await lease_all(queue, 1)] == ["m1"]
        return
    ingress = broker(f"{broker.base}?prefetch=8")  # a process that only puts: it never subscribes
    worker = broker(f"{broker.base}?prefetch=8")
    await ingress.open()
    await worker.open()
    for i in range(20):
        assert await ingress.put(msg(i)) is True
    seen: list[str] = []
    end = time.monotonic() + 30.0
    while len(seen) < 20 and time.monotonic() < end:
        leases = await worker.lease(20, VIS)
        assert len(leases) <= 8  # never more held than the prefetch
        for lease in leases:
            seen.append(lease.message.id)
            assert await worker.ack(lease) is True
        if not leases:
            await worker.wait(0.1)
    assert sorted(seen) == sorted(f"m{i}" for i in range(20))  # each once, none hoarded by the ingress
    assert (await worker.stats()).pending == 0


# nats-py leaks the stream writer of a reconnect attempt the cut proxy refuses ("empty response
# from server when expecting INFO message"): the library's, not a resource of Interlock's.
NATS_RECONNECT_LEAK = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <function StreamWriter.__del__:pytest.PytestUnraisableExceptionWarning"
)


@NATS_RECONNECT_LEAK
async def test_the_ingress_answers_503_while_the_broker_is_cut_and_loses_nothing(broker: Any) -> None:
    """A webhook arriving while the connection to the broker is down is answered 503 with
    Retry-After (never a 200 for an event that is not stored); the sender's retry after the
    connection is back is stored and handled once."""
    import hashlib
    import hmac
    from urllib.parse import urlsplit

    import httpx

    import interlock
    from interlock.testing import TcpProxy

    secret = "whsec-test"
    body = b'{"action": "opened"}'

    def headers(delivery: str) -> dict[str, str]:
        return {
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": "push",
            "Content-Type": "application/json",
        }

    parsed = urlsplit(broker.base)
    with TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 0) as proxy:
        url = proxy.url(broker.base) + ("?reconnect_interval=0.2" if broker.kind == "rabbitmq" else "")
        box = interlock.Inbox(store=broker(url), put_timeout=2.0)
        box.source("github", interlock.signatures.GitHub(secret))
        transport = httpx.ASGITransport(app=box.asgi())
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as http:
                assert (
                    await http.post("/hooks/github", content=body, headers=headers("d-1"))
                ).status_code == 200
                proxy.cut()
                cut = await http.post("/hooks/github", content=body, headers=headers("d-2"))
                assert cut.status_code == 503, cut.text
                assert int(cut.headers["retry-after"]) > 0
                proxy.restore()
                end = time.monotonic() + 30.0
                while True:  # the sender retries, as Retry-After says
                    again = await http.post("/hooks/github", content=body, headers=headers("d-2"))
                    if again.status_code == 200 or time.monotonic() > end:
                        break
                    await asyncio.sleep(0.2)
                assert again.status_code == 200, again.text
            reader = broker()
            await reader.open()
            seen: list[str] = []
            end = time.monotonic() + 30.0
            while sorted(set(seen)) != ["d-1", "d-2"] and time.monotonic() < end:
                for lease in await reader.lease(10, VIS):
                    seen.append(lease.message.id)
                    assert await reader.ack(lease) is True
                await reader.wait(0.1)
            assert sorted(seen) == ["d-1", "d-2"]  # both stored, each handed out once
        finally:
            await box.aclose()


async def test_rabbitmq_recovers_when_the_client_closed_its_channel(
    rabbitmq_url: str, sqlite_path: str, run_id: str
) -> None:
    """aiormq closes a channel whose RPC timed out, and a robust connection reopens channels only
    when the connection comes back: the queue opens a new channel itself."""
    from interlock.stores.queue_rabbitmq import RabbitMQQueue

    queue = RabbitMQQueue(
        rabbitmq_url,
        name=f"brokers_{run_id}_{uuid.uuid4().hex[:8]}",
        companion=f"sqlite:///{sqlite_path}",
        poll_interval=0.05,
    )
    await queue.open()
    try:
        assert await queue.put(msg(1)) is True
        (held,) = await lease_all(queue, 1)
        await queue._channel.close()  # type: ignore[attr-defined]  # what an RPC timeout does
        assert await queue.put(msg(2)) is True  # publishes on a new channel
        leases = await lease_all(queue, 2, deadline=15.0)  # m1 again (its channel died) and m2
        assert sorted((lease.message.id, lease.attempt) for lease in leases) == [("m1", 2), ("m2", 1)]
        assert await queue.ack(held) is False
        for lease in leases:
            assert await queue.ack(lease) is True
        assert (await queue.stats()).pending == 0
    finally:
        await queue.aclose()
        await delete_broker_objects(queue, rabbitmq_url)
