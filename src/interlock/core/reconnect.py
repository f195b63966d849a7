"""A long-lived stream's supervision decisions: when to reconnect, when it has stalled, when an
outage is long enough to reconcile by polling. Pure: fed with events and clock readings.

- **Reconnect.** After a drop the driver waits ``delay()``: never sooner than the upstream's
  ``retry:`` hint (WHATWG HTML 9.2.6: the reconnection time; capped at ``max_retry_hint`` so a
  hostile hint cannot park the stream for days), and above it exponential backoff with full
  jitter over the consecutive failed attempts ("Exponential Backoff And Jitter", AWS
  Architecture Blog, 2015). A connection that delivered something resets the count.
- **Stall.** A connection with no byte (event or keep-alive comment, or pong) for
  ``stall_timeout`` seconds is stalled: a half-open TCP connection or a wedged proxy sends
  nothing and never closes. The driver closes it and reconnects.
- **Outage.** Once the stream has been down (not connected, or connected but stalled) for
  ``reconcile_after`` seconds, ``should_reconcile`` says so, once per outage: the driver
  triggers the matching poll, so that missed events are not missed data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .._validate import check_seconds
from .backoff import Backoff

__all__ = ["StreamPolicy", "StreamSupervisor"]


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """How a stream is supervised. Durations in seconds."""

    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, multiplier=2.0, cap=30.0))
    """Waits between consecutive failed attempts, jittered; above the ``retry:`` hint."""
    stall_timeout: float = 45.0
    """No byte for this long (keep-alives count) and the connection is closed and reopened.
    Upstreams send keep-alives every 15-30 s; 45 s tolerates one lost."""
    reconcile_after: float | None = 60.0
    """Down this long and the matching Sync polls once (None: never)."""
    max_retry_hint: float = 300.0
    """The longest ``retry:`` hint honoured; a longer one counts as this."""
    connect_timeout: float = 10.0
    """Seconds to wait for the connection and the answer's headers."""

    def __post_init__(self) -> None:
        check_seconds("StreamPolicy", "stall_timeout", self.stall_timeout, positive=True)
        check_seconds("StreamPolicy", "reconcile_after", self.reconcile_after, positive=True, optional=True)
        check_seconds("StreamPolicy", "max_retry_hint", self.max_retry_hint)
        check_seconds("StreamPolicy", "connect_timeout", self.connect_timeout, positive=True)


class StreamSupervisor:
    """The state of one supervised stream. The driver reports what happens (``connected``,
    ``activity``, ``dropped``, ``retry_hint``) and asks what to do (``delay``,
    ``stall_deadline``, ``should_reconcile``)."""

    __slots__ = (
        "_down_since",
        "_reconciled",
        "connected_at",
        "delivered",
        "failures",
        "hint",
        "last_activity",
        "policy",
        "reconnects",
        "rng",
    )

    def __init__(self, policy: StreamPolicy, now: float, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng
        self.failures = 0
        """Consecutive attempts that failed or delivered nothing."""
        self.reconnects = 0
        """Connections opened after the first one."""
        self.hint: float | None = None
        """The upstream's latest ``retry:`` hint, in seconds (capped)."""
        self.connected_at: float | None = None
        self.last_activity: float | None = None
        self.delivered = False
        """The current connection delivered an event or a keep-alive."""
        self._down_since: float | None = now
        self._reconciled = False  # the stream is down until its first connection

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self.connected_at is not None

    def opened(self, now: float, *, first: bool) -> None:
        """The connection is open and its answer accepted (its stall clock starts; it has not
        delivered anything yet)."""
        if not first:
            self.reconnects += 1
        self.connected_at = now
        self.last_activity = now
        self.delivered = False

    def activity(self, now: float) -> None:
        """Bytes arrived (an event, a comment, a pong): the stream is alive and current."""
        self.last_activity = now
        if not self.delivered:
            self.delivered = True
            self.failures = 0
        self._down_since = None
        self._reconciled = False

    def retry_hint(self, milliseconds: int) -> None:
        """The upstream sent ``retry: milliseconds``."""
        self.hint = min(milliseconds / 1000.0, self.policy.max_retry_hint)

    def dropped(self, now: float) -> None:
        """The connection closed, failed or was closed as stalled."""
        if self.connected_at is None or not self.delivered:
            self.failures += 1  # refused, or open but silent: back off further
        self.connected_at = None
        if self._down_since is None:
            self._down_since = self.last_activity if self.last_activity is not None else now

    def delay(self) -> float:
        """Seconds to wait before the next attempt."""
        # After a healthy connection: the first step of the backoff (jittered, so that the
        # consumers of a restarted upstream do not all come back at the same instant).
        return max(self.hint or 0.0, self.policy.backoff.delay(max(1, self.failures), self.rng))

    def stall_deadline(self) -> float | None:
        """When the open connection counts as stalled if nothing arrives (None: not connected)."""
        if self.connected_at is None or self.last_activity is None:
            return None
        return self.last_activity + self.policy.stall_timeout

    def stalled(self, now: float) -> bool:
        """Whether the open connection has been silent past ``stall_timeout``."""
        deadline = self.stall_deadline()
        return deadline is not None and now >= deadline

    def down_for(self, now: float) -> float:
        """Seconds the stream has been down (0 while it delivers). A stalled connection is down
        since its last byte."""
        if self._down_since is None:
            if self.stalled(now) and self.last_activity is not None:
                return now - self.last_activity
            return 0.0
        return max(0.0, now - self._down_since)

    def should_reconcile(self, now: float) -> bool:
        """True once per outage, when it has lasted ``reconcile_after`` seconds; the driver then
        triggers the matching poll."""
        after = self.policy.reconcile_after
        if after is None or self._reconciled or self.down_for(now) < after:
            return False
        self._reconciled = True
        return True

    def lag(self, now: float) -> float:
        """Seconds since the stream was last known current (its last byte); grows while it is
        down or stalled. 0 before the first connection."""
        if self.last_activity is None:
            return self.down_for(now)
        return max(0.0, now - self.last_activity)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "down"
        return f"StreamSupervisor({state}, failures={self.failures}, reconnects={self.reconnects}, hint={self.hint})"
