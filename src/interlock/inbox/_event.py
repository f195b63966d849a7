"""``Event``: what a handler receives; ``Handler``: what receives it."""

from __future__ import annotations

import json as _json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..stores.queue import Failure, Lease

__all__ = ["Event", "Handler"]


@dataclass(slots=True, eq=False)
class Event:
    """One webhook delivery, as handed to a handler.

    ``id`` is the delivery id (also the correlation id of the handler's outbound calls),
    ``attempt`` is 1 on the first delivery, ``failures`` the errors of earlier attempts.
    """

    id: str
    source: str
    type: str
    body: bytes
    headers: Mapping[str, str]
    received_at: float
    attempt: int = 1
    ordering_key: str | None = None
    failures: tuple[Failure, ...] = ()
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    @classmethod
    def from_lease(cls, lease: Lease) -> Event:
        """The event a worker hands to handlers for one lease of a stored message."""
        m = lease.message
        # The queue keys ordering by source too ("source\x1fkey"); handlers see their own key.
        return cls(
            id=m.id,
            source=m.source,
            type=m.type,
            body=m.body,
            headers=m.headers,
            received_at=m.received_at,
            attempt=lease.attempt,
            ordering_key=m.ordering_key.partition("\x1f")[2] if m.ordering_key else None,
            failures=lease.failures,
        )

    def json(self) -> Any:
        """The body parsed as JSON (once; later calls return the same object)."""
        if not self._parsed:
            self._json = _json.loads(self.body)
            self._parsed = True
        return self._json

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return (
            f"<Event {self.source}/{self.type or '?'} id={self.id!r} attempt={self.attempt} "
            f"{len(self.body)} bytes>"
        )


Handler = Callable[[Event], Awaitable[None] | None]
"""An inbox handler: called with each matching ``Event``; async, or sync (run in a thread).
Returning marks the event processed; raising retries it on the ``Redelivery`` schedule
(``PermanentFailure``: dead-letters it at once)."""
