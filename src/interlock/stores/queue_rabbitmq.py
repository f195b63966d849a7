"""``Queue`` on RabbitMQ (aio-pika): a quorum queue carries the messages, leases are unacked
deliveries, a companion SQL table keeps what the broker does not (see ``_companion``).

What is declared, all durable, under the queue's ``name``:

- ``{name}``: a quorum queue (replicated, survives a broker restart) with a dead-letter exchange
  ``{name}.dlx`` and ``x-delivery-limit``. The exchange is *always* declared, and bound to the
  quorum queue ``{name}.dead``: RabbitMQ 4 drops a message silently once it passes its delivery
  limit when no dead-letter exchange is set. Interlock dead-letters itself long before the
  limit (``dead_letter`` marks the companion's row dead); ``open``, and every reconcile round
  after it, puts whatever the broker dead-lettered on its own back in ``{name}`` when its row is
  still pending (see ``_drain_broker_dead``).
- ``{name}.delay.{ms}``: one queue per retry delay in use, without plugins: its messages have a
  TTL of ``ms`` and dead-letter back to ``{name}`` through the default exchange
  (``x-dead-letter-strategy=at-least-once``, so the move survives a broker crash). Each delay
  queue expires (``x-expires``) once unused, so the set of them stays bounded by the delays in
  use.

Every publish waits for the broker's publisher confirm; ``put`` returns only after it.

How the Protocol's lease maps onto RabbitMQ, and where it differs:

- ``lease`` is ``basic.get`` (manual ack) until ``max_messages`` are held or, with
  ``prefetch`` > 0, takes deliveries from a buffer that ``basic.consume`` fills (from the first
  ``lease`` on: a process that only puts never subscribes; at most ``prefetch`` unacked). A delivery stays
  unacked while leased. The visibility timeout is kept by this process: when it passes, the
  delivery is rejected with requeue (``basic.nack``) and another consumer gets it. If the
  process dies, the broker requeues its unacked deliveries when the connection drops, at once
  rather than at the lease's expiry; such a copy is given back to the broker until the dead
  lease expires (the companion says who holds the message), so it is not handled twice.
- RabbitMQ closes a channel that holds a delivery longer than its ``consumer_timeout`` (30 min
  by default): a visibility above it is not honoured.
- A lease is tied to the channel it came from: after a reconnect the old leases are lost
  (``ack`` returns False) and their messages are redelivered.
- ``ordering_key`` is enforced by the companion: a delivery whose key has an earlier pending
  message is held unacked until the end of the ``lease`` call, then given back. A lease call
  walks past at most ``max_in_flight`` such deliveries, so a long blocked run costs a walk per
  call (a consistent-hash split into partition queues with a single active consumer each
  would not; it is not done yet).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Any

from .._clock import Clock
from ..errors import ConfigError
from . import _queue_rows as model
from ._companion import BrokerQueue, import_client, message_headers, split_options
from .queue import Message

__all__ = ["RabbitMQQueue"]

_RPC_TIMEOUT = 10.0
"""Seconds a ``basic.get`` may take before the lease gives up on the channel (and retries)."""

_ARRIVAL_WAIT = 0.02
"""How long a ``lease`` that finds no buffered delivery waits for one, in seconds."""


def _aio_pika() -> Any:
    return import_client("aio_pika", "RabbitMQQueue", "rabbitmq")


class RabbitMQQueue(BrokerQueue):
    """``Queue`` on RabbitMQ at ``url`` (``amqp://user:pass@host:5672/vhost`` or ``amqps://``).

    ``name`` names the quorum queue and its companions; ``companion`` is the URL of the SQL
    store (``sqlite:///path.db`` or ``postgresql://...``; default: a ``companion=`` parameter of
    ``url``, else ``sqlite:///interlock.db``) that keeps dedupe, error history,
    dead letters and stats, shared by every process on the same queue. ``delivery_limit`` is
    the broker's own limit (a safety net: Interlock dead-letters by its retry policy first);
    it may also be given in the URL (``?delivery_limit=100``), whose value wins.

    ``prefetch`` (also ``?prefetch=N``) chooses how deliveries are taken. 0 (the default):
    one ``basic.get`` per delivery when a ``lease`` asks, so a message is never held by a
    process that is not leasing it (the SQL queues' behaviour, which the contract suite
    checks). N > 0: the queue is consumed with at most N unacked deliveries per process,
    leased or buffered: several times the throughput (no round trip per delivery), but a
    process may buffer up to N messages that other processes cannot lease until it does, so
    keep N near the workers' concurrency.
    """

    owner = "RabbitMQQueue"

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        name: str = "interlock_events",
        companion: str | None = None,
        delivery_limit: int = 1000,
        prefetch: int = 0,
        poll_interval: float = 0.2,
        max_in_flight: int = 1000,
        clock: Clock | None = None,
        table: str | None = None,
    ) -> None:
        url, given = split_options(url, self.owner, {"delivery_limit": int, "prefetch": int})
        delivery_limit = given.get("delivery_limit", delivery_limit)
        prefetch = given.get("prefetch", prefetch)
        if not 0 <= prefetch <= 65535:
            raise ConfigError(self.owner, "prefetch", f"must be 0..65535 (0: no prefetch), got {prefetch!r}")
        if delivery_limit < 1:
            raise ConfigError(self.owner, "delivery_limit", f"must be >= 1, got {delivery_limit!r}")
        super().__init__(url, name=table or name, companion=companion, clock=clock,
                         poll_interval=poll_interval, max_in_flight=max_in_flight)
        self.delivery_limit = delivery_limit
        self._connection: Any = None
        self._channel: Any = None
        self._queue: Any = None
        self._dead: Any = None
        self.prefetch = prefetch
        self._buffer: collections.deque[Any] = collections.deque()
        self._arrived = asyncio.Event()
        self._reconnected = False
        self._consumer_tag: Any = None
        self._reopen_lock = asyncio.Lock()
        self._delay_queues: set[int] = set()

    async def _broker_open(self) -> None:
        aio_pika = _aio_pika()
        self._connection = await aio_pika.connect_robust(self.url)
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self.prefetch)  # 0: unlimited, for basic.get
        dlx = await self._channel.declare_exchange(f"{self.name}.dlx", aio_pika.ExchangeType.FANOUT, durable=True)
        dead = await self._channel.declare_queue(
            f"{self.name}.dead", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(dlx)
        self._dead = dead
        await self._declare_main()
        await self._drain_broker_dead(dead)
        # Not consuming yet: a process that only puts (the ingress) must not take deliveries
        # into a buffer it never leases from. The first ``lease`` subscribes.

    async def _declare_main(self) -> None:
        self._queue = await self._channel.declare_queue(
            self.name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": f"{self.name}.dlx",
                "x-delivery-limit": self.delivery_limit,
            },
        )

    async def _drain_broker_dead(self, dead: Any) -> None:
        """Take back what the broker dead-lettered itself (past ``x-delivery-limit``, e.g. a
        delivery given back many times while its ordering key was blocked): Interlock's own
        dead letters are the companion's, so a copy whose row is still pending goes back to
        the queue (its attempts are the companion's, and the retry policy still applies), and
        any other copy is acked away. Never dropped: the republish is confirmed first."""
        c = self._companion
        while True:
            delivery = await dead.get(no_ack=False, fail=False)
            if delivery is None:
                return
            h = delivery.headers or {}
            source, id_ = str(h.get("interlock-source", "")), str(h.get("interlock-id", ""))
            rows = await c.fetch(f"SELECT {model.COLUMNS} FROM {c.table} WHERE source = ? AND id = ? AND state = 0",
                                 source, id_)
            if rows:
                await self._broker_publish(model.message_of(rows[0]))
            await delivery.ack()

    async def _broker_maintain(self) -> None:
        if self._dead is not None:
            await self._drain_broker_dead(self._dead)

    async def _broker_close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._queue = self._dead = self._consumer_tag = None
        self._buffer.clear()

    def _amqp_message(self, message: Message) -> Any:
        aio_pika = _aio_pika()
        return aio_pika.Message(
            message.body,
            headers=message_headers(message),
            message_id=f"{message.source}/{message.id}",
            content_type="application/octet-stream",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )

    async def _broker_publish(self, message: Message, *, delay: float = 0.0) -> None:
        await self._usable_channel()
        routing = self.name if delay <= 0 else await self._delay_queue(delay)
        # publisher_confirms=True: publish returns once the broker confirmed (or raises).
        await self._channel.default_exchange.publish(self._amqp_message(message), routing_key=routing, mandatory=True)

    async def _delay_queue(self, delay: float) -> str:
        ms = max(1, round(delay * 1000))
        name = f"{self.name}.delay.{ms}"
        if ms not in self._delay_queues:
            await self._channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.name,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                    "x-expires": ms + 600_000,
                },
            )
            self._delay_queues.add(ms)
        return name

    async def _consume(self) -> None:
        """Subscribe (``basic.consume``, manual acks) with deliveries buffered here until a
        ``lease`` takes them; the prefetch bounds the buffer plus the leases held."""
        self._buffer.clear()
        self._consumer_tag = await self._queue.consume(self._on_delivery, no_ack=False)

    async def _on_delivery(self, delivery: Any) -> None:
        self._buffer.append(delivery)
        self._arrived.set()
        self._signal.wake()

    def _on_reconnect(self, *_: Any) -> None:
        # aio-pika's robust channel restores the consumer itself; a delivery buffered before
        # the drop is dead with its channel (the broker requeued it) and is skipped in fetch.
        # If the restore ever comes back with no consumer (the known pitfall), fetch notices
        # the queue's channel is gone and subscribes again.
        self._reconnected = True

    async def _broker_fetch(self, max_messages: int) -> list[tuple[Any, str, str]]:
        if not self.prefetch:
            return await self._get(max_messages)
        await self._usable_channel()
        if self._consumer_tag is None:
            await self._consume()
        elif self._reconnected:
            self._reconnected = False
            try:
                consumers = len(getattr(self._queue, "_consumers", {}) or {})
            except Exception:
                consumers = 0
            if consumers == 0:
                await self._declare_main()
                await self._consume()
        if not self._buffer:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), _ARRIVAL_WAIT)
        out: list[tuple[Any, str, str]] = []
        while self._buffer and len(out) < max_messages:
            delivery = self._buffer.popleft()
            if self._broker_lost(delivery):
                continue  # its channel closed: the broker requeued it, a copy comes again
            h = delivery.headers or {}
            out.append((delivery, str(h.get("interlock-source", "")), str(h.get("interlock-id", ""))))
        return out

    async def _get_one(self) -> Any:
        # Bounded: a basic.get whose answer never comes (seen once on a loaded machine) would
        # stall every lease of this process. aiormq closes the channel of a cancelled RPC; the
        # robust channel reopens and the next call declares the queue on it again.
        try:
            return await asyncio.wait_for(self._queue.get(no_ack=False, fail=False), _RPC_TIMEOUT)
        except TimeoutError as exc:
            raise ConnectionError(f"RabbitMQ did not answer a basic.get on {self.name!r} within {_RPC_TIMEOUT:g} s") from exc

    async def _usable_channel(self) -> None:
        """Open a new channel when this one was closed by the client (aiormq closes the channel
        of an RPC that timed out, and a robust connection reopens channels only when the
        connection itself comes back): without this, every later call would fail with
        ChannelInvalidStateError for the life of the process. The leases taken on the old
        channel are lost (the reaper gives them up; RabbitMQ requeued their deliveries)."""
        if self._channel is not None and not self._channel.is_closed:
            return
        async with self._reopen_lock:
            if self._channel is not None and not self._channel.is_closed:
                return
            self._channel = await self._connection.channel(publisher_confirms=True)
            await self._channel.set_qos(prefetch_count=self.prefetch)
            await self._declare_main()
            self._dead = await self._channel.declare_queue(
                f"{self.name}.dead", durable=True, arguments={"x-queue-type": "quorum"}
            )
            self._consumer_tag = None  # prefetch mode subscribes again on the new channel

    async def _get(self, max_messages: int) -> list[tuple[Any, str, str]]:
        await self._usable_channel()
        out = []
        for _ in range(max_messages):
            try:
                delivery = await self._get_one()
            except _aio_pika().exceptions.ChannelInvalidStateError:
                # After a reconnect the robust channel is back but a queue object declared on
                # the channel before still points at the closed one: declare it again (or open
                # a channel, when the client closed this one).
                await self._usable_channel()
                await self._declare_main()
                delivery = await self._get_one()
            if delivery is None:
                break
            h = delivery.headers or {}
            out.append((delivery, str(h.get("interlock-source", "")), str(h.get("interlock-id", ""))))
        return out

    async def _broker_ack(self, handle: Any) -> None:
        await handle.ack()

    async def _broker_requeue(self, handle: Any) -> None:
        await handle.nack(requeue=True)

    def _broker_lost(self, handle: Any) -> bool:
        # A delivery tag is valid only on its channel; when that channel closed (a cut
        # connection, a broker restart) RabbitMQ requeued the delivery.
        try:
            return bool(handle.channel.is_closed)
        except _aio_pika().exceptions.ChannelInvalidStateError:  # aio-pika: "the channel is gone"
            return True

    async def _broker_retry(self, handle: Any, message: Message, delay: float) -> None:
        # The copy is confirmed in the delay queue before the original is acked: a crash in
        # between leaves two copies (the message handled twice at worst), never none.
        await self._broker_publish(message, delay=delay)
        await handle.ack()
