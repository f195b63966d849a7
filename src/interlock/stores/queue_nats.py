"""``Queue`` on NATS JetStream (nats-py): a work-queue stream carries the messages, leases are
unacked deliveries of one durable pull consumer, a companion SQL table keeps what JetStream does
not (see ``_companion``).

What is created, under the queue's ``name`` (dots become ``_`` in stream names):

- stream ``{name}`` on subject ``{name}.events``, file storage, ``WorkQueue`` retention (a
  message leaves the stream once acked) and a ``duplicate_window``: a publish carries
  ``Nats-Msg-Id: <source>/<id>``, so a ``put`` retried after a lost PubAck is stored once. The
  long dedupe window (until ``prune``) is the companion's.
- durable pull consumer ``{name}_workers``: explicit ack, ``AckWait = ack_wait`` (the lease that
  protects against a consumer that died: its deliveries come back after it), ``MaxDeliver =
  max_deliver`` (unlimited by default: Interlock's retry policy dead-letters first; a message
  that reaches a finite MaxDeliver stays in the stream undelivered, as JetStream does).
- stream ``{name}_dead`` on subject ``{name}.dead``: JetStream has no dead-letter queue, so
  Interlock fills this one itself with every message it dead-letters (body and headers plus
  ``interlock-error``), for tools that read the broker. Listing, replay and purge by filter
  use the companion's dead letters.

How the Protocol's lease maps onto JetStream, and where it differs:

- ``lease`` fetches from the pull consumer; the visibility timeout is kept by this process and,
  when it passes, the delivery is ``nak``-ed for immediate redelivery. ``extend`` also sends
  ``in_progress`` (which resets AckWait). If the process dies, its deliveries come back after
  ``ack_wait``, not after each lease's visibility.
- ``nack(delay=...)`` is ``nak`` with that delay: JetStream redelivers it then.
- ``ordering_key`` is enforced by the companion, as on RabbitMQ (see ``queue_rabbitmq``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from .._clock import Clock
from ..errors import ConfigError
from ._companion import BrokerQueue, import_client, message_headers, split_options
from .queue import Failure, Message

__all__ = ["NATSQueue"]

_PULL_EXPIRES = 0.02
"""How long a pull request that found nothing at once waits for a message, in seconds."""


def _nats() -> Any:
    return import_client("nats", "NATSQueue", "nats")


class NATSQueue(BrokerQueue):
    """``Queue`` on NATS JetStream at ``url`` (``nats://host:4222``).

    ``name`` names the stream, its consumer and the companion table; ``companion`` is the URL
    of the SQL store (``sqlite:///path.db`` or ``postgresql://...``; default: a ``companion=``
    parameter of ``url``, else ``sqlite:///interlock.db``) that keeps dedupe, error history,
    dead letters and stats, shared by every process on the same queue. ``ack_wait`` is the
    consumer's AckWait in seconds; ``max_deliver`` its MaxDeliver (-1: unlimited);
    ``duplicate_window`` the stream's publish dedupe window in seconds. Each of the three may
    also be given in the URL (``nats://host:4222?ack_wait=30``), as a config file does; the
    URL's value wins. AckWait is how long the deliveries of a process that died stay with it
    before JetStream hands them to another consumer.
    """

    owner = "NATSQueue"

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        name: str = "interlock_events",
        companion: str | None = None,
        ack_wait: float = 300.0,
        max_deliver: int = -1,
        duplicate_window: float = 120.0,
        poll_interval: float = 0.2,
        max_in_flight: int = 1000,
        clock: Clock | None = None,
        table: str | None = None,
    ) -> None:
        url, given = split_options(url, self.owner, {"ack_wait": float, "max_deliver": int, "duplicate_window": float})
        ack_wait = given.get("ack_wait", ack_wait)
        max_deliver = given.get("max_deliver", max_deliver)
        duplicate_window = given.get("duplicate_window", duplicate_window)
        if not ack_wait > 0:
            raise ConfigError(self.owner, "ack_wait", f"must be > 0 seconds, got {ack_wait!r}")
        super().__init__(url, name=table or name, companion=companion, clock=clock,
                         poll_interval=poll_interval, max_in_flight=max_in_flight)
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.duplicate_window = duplicate_window
        self.stream = self.name.replace(".", "_")
        self.subject = f"{self.name}.events"
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None
        self._inbox = ""
        self._durable = f"{self.stream}_workers"

    async def _broker_open(self) -> None:
        nats = _nats()
        from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

        self._nc = await nats.connect(self.url, name=f"interlock:{self.name}", max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()
        await self._js.add_stream(
            StreamConfig(
                name=self.stream,
                subjects=[self.subject],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=self.duplicate_window,
            )
        )
        await self._js.add_stream(
            StreamConfig(name=f"{self.stream}_dead", subjects=[f"{self.name}.dead"], storage=StorageType.FILE)
        )
        self._durable = f"{self.stream}_workers"
        await self._js.add_consumer(
            self.stream,
            ConsumerConfig(
                durable_name=self._durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait,
                max_deliver=self.max_deliver,
                max_ack_pending=max(self.max_in_flight * 10, 1000),
            ),
        )
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, pending_msgs_limit=self.max_in_flight * 2)

    async def _broker_close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
        self._nc = self._js = self._sub = None

    async def _broker_publish(self, message: Message, *, delay: float = 0.0) -> None:
        headers = message_headers(message)
        msg_id = f"{message.source}/{message.id}"
        ack = await self._js.publish(self.subject, message.body, headers={**headers, "Nats-Msg-Id": msg_id})
        if ack.duplicate:
            # The same id inside the duplicate window: a put retried after a lost PubAck, or the
            # message put again after ``prune`` or replayed. The companion said it is new, so it
            # must be in the stream: publish a copy under an id of its own (a duplicate copy at
            # worst, dropped or handled once by the companion's lease check).
            await self._js.publish(
                self.subject, message.body, headers={**headers, "Nats-Msg-Id": f"{msg_id}/{os.urandom(8).hex()}"}
            )

    async def _broker_fetch(self, max_messages: int) -> list[tuple[Any, str, str]]:
        # Pull requests of our own, not nats-py's ``fetch``: the latter leaves a lingering pull
        # request on the server when it times out, which captures the next messages for a
        # reader that is gone, so they come back only after AckWait. First a ``no_wait``
        # request (answered at once); when it finds nothing, one that expires after
        # ``_PULL_EXPIRES`` s (a just-published message may not have reached the consumer yet).
        # Either ends with a status message (404, 408) unless the batch is filled, and this
        # reads up to that status, so no request outlives the call.
        out = await self._pull({"batch": max_messages, "no_wait": True}, max_messages)
        if not out:
            out = await self._pull({"batch": max_messages, "expires": int(_PULL_EXPIRES * 1e9)}, max_messages)
        return out

    async def _pull(self, request: dict[str, Any], max_messages: int) -> list[tuple[Any, str, str]]:
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._durable}"
        await self._nc.publish(subject, json.dumps(request).encode(), reply=self._inbox)
        out: list[tuple[Any, str, str]] = []
        while len(out) < max_messages:
            try:
                m = await self._sub.next_msg(timeout=5.0)
            except TimeoutError:
                break
            h = m.headers or {}
            if "Status" in h:
                break  # 404 no messages, 408 request expired, 409 limits: nothing more now
            out.append((m, str(h.get("interlock-source", "")), str(h.get("interlock-id", ""))))
        return out

    async def _broker_ack(self, handle: Any) -> None:
        # A plain ack, not ``ack_sync``'s round trip: the companion's row is settled first, so
        # an ack lost on the way only brings a copy back, which finds its row settled and is
        # dropped (see ``_companion``).
        await handle.ack()

    async def _broker_requeue(self, handle: Any) -> None:
        # A nak is a plain publish; the flush (PING/PONG) returns once the server has read it,
        # so the next fetch can already get the message.
        await handle.nak()
        await self._nc.flush()

    async def _broker_retry(self, handle: Any, message: Message, delay: float) -> None:
        await handle.nak(delay=delay if delay > 0 else None)

    async def _broker_heartbeat(self, handle: Any) -> None:
        await handle.in_progress()

    async def _on_dead(self, message: Message, failures: Sequence[Failure], error: str) -> None:
        headers = {**message_headers(message), "interlock-error": error[:1000]}
        await self._js.publish(f"{self.name}.dead", message.body, headers=headers)
