"""The events this process's workers handled, most recent last, for the admin API's
``/admin/api/v1/events``: each with its raw body, headers and every attempt's outcome.

Bounded: the ``capacity`` most recent events (default 1000; the oldest forgotten first), each
with its ``MAX_BODY`` first bytes. Process-local: the ``Queue`` seam has no listing of pending
or acknowledged events, so this is what the process saw, not what the store holds (dead
letters are the DLQ routes', from the store).
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .._redact import redact_headers
from .._text import describe
from ..inbox import Event

__all__ = ["MAX_BODY", "EventLog", "Seen"]

MAX_BODY = 64 * 1024
"""Bytes of each event's body kept (the rest is cut, and ``body_truncated`` says so)."""
STATUSES = ("processing", "succeeded", "failed", "paused")


@dataclass
class Seen:
    """One event as this process's workers saw it."""

    source: str
    id: str
    type: str
    received_at: float
    body: bytes
    body_truncated: bool
    headers: dict[str, str]
    status: str = "processing"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    updated_at: float = field(default_factory=time.time)

    def summary(self) -> dict[str, Any]:
        """The event without its body and headers."""
        last = self.attempts[-1] if self.attempts else None
        return {
            "source": self.source,
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "received_at": self.received_at,
            "updated_at": self.updated_at,
            "attempts": len(self.attempts),
            "last_error": last.get("error") if last else None,
        }

    def detail(self) -> dict[str, Any]:
        """The event with its raw body, headers (credentials redacted) and every attempt."""
        out = self.summary()
        try:
            out["body"], out["body_encoding"] = self.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            out["body"], out["body_encoding"] = base64.b64encode(self.body).decode("ascii"), "base64"
        out["body_truncated"] = self.body_truncated
        out["headers"] = self.headers
        out["attempt_history"] = list(self.attempts)
        return out


class EventLog:
    """The ``capacity`` most recent events handled here (see the module docstring)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], Seen] = OrderedDict()

    def _entry(self, event: Event) -> Seen:
        key = (event.source, event.id)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = Seen(
                event.source, event.id, event.type, event.received_at, event.body[:MAX_BODY],
                len(event.body) > MAX_BODY, redact_headers(dict(event.headers)),
            )
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(key)
        return seen

    def started(self, event: Event, *, paused: bool = False) -> None:
        """A worker started (or, paused, is holding) a delivery of ``event``."""
        seen = self._entry(event)
        seen.status = "paused" if paused else "processing"
        seen.updated_at = time.time()
        if not paused:
            seen.attempts.append({"attempt": event.attempt, "started_at": seen.updated_at, "error": None})

    def finished(self, event: Event, error: BaseException | None) -> None:
        """The delivery's handler returned (``error`` None) or raised ``error``."""
        seen = self._entry(event)
        seen.updated_at = time.time()
        seen.status = "succeeded" if error is None else "failed"
        if seen.attempts:
            seen.attempts[-1]["finished_at"] = seen.updated_at
            seen.attempts[-1]["error"] = None if error is None else describe(error)

    def list(
        self, *, source: str | None = None, type: str | None = None, status: str | None = None,
        since: float | None = None, limit: int = 100,
    ) -> list[Seen]:
        """Matching events, most recently updated first, at most ``limit``."""
        out: list[Seen] = []
        for seen in reversed(self._seen.values()):
            if source is not None and seen.source != source:
                continue
            if type is not None and seen.type != type:
                continue
            if status is not None and seen.status != status:
                continue
            if since is not None and seen.received_at < since:
                continue
            out.append(seen)
            if len(out) >= limit:
                break
        return out

    def get(self, event_id: str, source: str | None = None) -> Seen | None:
        """The event with this id (of ``source``, if given), if remembered."""
        for seen in reversed(self._seen.values()):
            if seen.id == event_id and (source is None or seen.source == source):
                return seen
        return None
