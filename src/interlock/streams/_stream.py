"""``EventStream``: what to connect to, and how its events become Inbox events. Configuration
only; ``Subscription`` runs it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._jsonpath import JsonPath
from .._validate import check_count, check_seconds
from ..core.reconnect import StreamPolicy
from ..core.sse import MAX_EVENT_BYTES
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["EventStream", "SubscribeMessage"]

SubscribeMessage = Callable[[str | None], Any] | Mapping[str, Any] | str | None
"""A WebSocket's first message: a function of the last committed id (None: nothing committed
yet) returning text or a JSON document; a JSON object sent with ``resume_field`` set to that
id; text sent as is; or None (send nothing)."""

Kind = Literal["sse", "websocket"]


@dataclass(frozen=True, slots=True)
class EventStream:
    """An upstream's event stream, read through ``client`` (its base URL and headers, so its
    credentials). Build it with ``EventStream.sse(...)`` or ``EventStream.websocket(...)`` and
    hand it to ``inbox.subscribe(name, stream)``."""

    kind: Kind
    client: Client = field(repr=False)
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    policy: StreamPolicy = field(default_factory=StreamPolicy)
    ordering_key: JsonPath | None = None
    """Where in an event's JSON data its ordering key is (events sharing it are handled in order)."""
    max_event_bytes: int = MAX_EVENT_BYTES
    # WebSocket only
    subscribe_message: SubscribeMessage = None
    resume_field: str = "after"
    id_field: JsonPath = field(default_factory=lambda: JsonPath.parse("$.id"))
    type_field: JsonPath = field(default_factory=lambda: JsonPath.parse("$.type"))
    heartbeat: float = 15.0
    """WebSocket: seconds between our pings (a pong, or any message, is a sign of life)."""

    def __post_init__(self) -> None:
        owner = f"EventStream.{self.kind}"
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError(owner, "path", f"must be a path such as '/events', got {self.path!r}")
        if not isinstance(self.policy, StreamPolicy):
            raise ConfigError(owner, "policy", f"must be an interlock.StreamPolicy, got {self.policy!r}")
        check_count(owner, "max_event_bytes", self.max_event_bytes)
        check_seconds(owner, "heartbeat", self.heartbeat, positive=True)
        if self.kind == "websocket" and self.heartbeat >= self.policy.stall_timeout:
            raise ConfigError(
                owner,
                "heartbeat",
                f"must be shorter than policy.stall_timeout ({self.policy.stall_timeout} s), got {self.heartbeat!r}: "
                "the pongs are what keeps a quiet connection from counting as stalled",
            )
        msg = self.subscribe_message
        if not (msg is None or callable(msg) or isinstance(msg, str | Mapping)):
            raise ConfigError(owner, "subscribe_message", f"must be a function, a JSON object, text or None, got {msg!r}")

    @classmethod
    def sse(
        cls,
        client: Client,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ordering_key: str | None = None,
        policy: StreamPolicy | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> EventStream:
        """A server-sent events stream at ``GET path`` (WHATWG HTML 9.2): each event becomes an
        Inbox event whose type is the ``event`` field, body the ``data``, dedupe id the ``id``.

        ``ordering_key``: a JSON path into the data (``"$.data.id"``). ``policy``: reconnect,
        stall and reconciliation settings. ``max_event_bytes``: the longest event accepted."""
        return cls(
            "sse", client, path, dict(params or {}), dict(headers or {}), policy or StreamPolicy(),
            _path(ordering_key, "EventStream.sse"), max_event_bytes,
        )

    @classmethod
    def websocket(
        cls,
        client: Client,
        path: str,
        *,
        subscribe_message: SubscribeMessage = None,
        resume_field: str = "after",
        id_field: str = "$.id",
        type_field: str = "$.type",
        ordering_key: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        heartbeat: float = 15.0,
        policy: StreamPolicy | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> EventStream:
        """A WebSocket at ``path`` (``ws://`` or ``wss://`` of the client's base URL): each text
        message is one JSON event, its id at ``id_field``, its type at ``type_field``.

        ``subscribe_message`` is sent first on every connection, carrying the last committed
        id so the upstream resumes after it: a JSON object gets ``resume_field`` set to it
        (``{"type": "subscribe"}`` -> ``{"type": "subscribe", "after": "41"}``), a function
        is called with it, text is sent as is. ``heartbeat``: seconds between pings."""
        owner = "EventStream.websocket"
        return cls(
            "websocket", client, path, dict(params or {}), dict(headers or {}), policy or StreamPolicy(),
            _path(ordering_key, owner), max_event_bytes, subscribe_message, resume_field,
            JsonPath.parse(id_field, owner=owner, field="id_field"),
            JsonPath.parse(type_field, owner=owner, field="type_field"), heartbeat,
        )

    def resume_message(self, last_id: str | None) -> str | None:
        """The first message of a WebSocket connection, resuming after ``last_id``."""
        msg = self.subscribe_message
        if msg is None:
            return None
        if callable(msg):
            msg = msg(last_id)
        elif isinstance(msg, Mapping):
            msg = {**msg, self.resume_field: last_id}
        if isinstance(msg, str):
            return msg
        if isinstance(msg, bytes):
            return msg.decode()
        return json.dumps(msg, separators=(",", ":"))

    def __repr__(self) -> str:
        return f"EventStream.{self.kind}({self.client.name}{self.path})"


def _path(spec: str | None, owner: str) -> JsonPath | None:
    return None if spec is None else JsonPath.parse(spec, owner=owner, field="ordering_key")
