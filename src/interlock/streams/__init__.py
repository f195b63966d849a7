"""Upstream event streams into the Inbox: server-sent events and WebSockets.

``inbox.subscribe("crm", interlock.EventStream.sse(client, "/events"))`` keeps the stream
open in a supervised task and commits each event into the Inbox's queue (dedupe by event id,
ordering, handlers, retries, DLQ: as a webhook), then saves the resume position in the
checkpoint store. The parsing (``core.sse``) and the supervision decisions
(``core.reconnect``) are pure; this package does the I/O.
"""

from __future__ import annotations

from ..core.reconnect import StreamPolicy
from ._metrics import StreamStats
from ._stream import EventStream, SubscribeMessage
from ._subscription import CHECKPOINT_PREFIX, Subscription

__all__ = ["CHECKPOINT_PREFIX", "EventStream", "StreamPolicy", "StreamStats", "SubscribeMessage", "Subscription"]
