"""Batch windows: when to turn pending single reads into one list call. Pure.

A window opens with its first member and closes ``window`` seconds later or as soon as it holds
``max_size`` distinct ids, whichever comes first (the DataLoader rule, with a time window instead
of a tick so callers a few milliseconds apart still share a call). Members asking for an id
already pending share its slot: a batch never asks for the same id twice.

The driver (``client/policies/batch.py``) feeds ``add`` and calls ``due`` when the timer it set
for ``Opened.close_at`` fires; both return the ids to send, at most ``max_size`` per batch.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Batcher", "Flush", "Opened", "Pending"]

M = TypeVar("M")


@dataclass(slots=True)
class Pending(Generic[M]):
    """One open window of one group: ids in first-asked order, the members waiting on each."""

    group: Hashable
    opened_at: float
    close_at: float
    members: dict[str, list[M]] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """The distinct ids asked for so far, in first-asked order."""
        return list(self.members)


@dataclass(frozen=True, slots=True)
class Opened:
    """A new window opened: the driver must call ``due(group, ...)`` at ``close_at``."""

    close_at: float


@dataclass(frozen=True, slots=True)
class Flush(Generic[M]):
    """Send one list call for ``ids``; ``members[id]`` are the callers waiting for each."""

    group: Hashable
    ids: Sequence[str]
    members: dict[str, list[M]]


class Batcher(Generic[M]):
    """Open batch windows, one per group (a route and its fixed parameters).

    At most ``max_size`` distinct ids per window; a window lasts ``window`` seconds (0: every
    ``add`` flushes at once). ``ValueError`` for a size below 1 or a negative window.
    """

    def __init__(self, max_size: int, window: float) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if window < 0:
            raise ValueError(f"window must be >= 0 seconds, got {window}")
        self.max_size = max_size
        self.window = window
        self._open: dict[Hashable, Pending[M]] = {}

    def add(self, group: Hashable, item_id: str, member: M, now: float) -> Opened | Flush[M] | None:
        """Queue ``member`` for ``item_id``; what the driver must do now.

        ``Opened`` when this starts a window (set a timer for ``close_at``), ``Flush`` when it fills
        one (send now), else None (just wait).
        """
        pending = self._open.get(group)
        opened = pending is None
        if pending is None:
            pending = self._open[group] = Pending(group, now, now + self.window)
        waiting = pending.members.get(item_id)
        if waiting is not None:
            waiting.append(member)
        else:
            pending.members[item_id] = [member]
        if len(pending.members) >= self.max_size or self.window == 0:
            del self._open[group]
            return Flush(group, pending.ids, pending.members)
        return Opened(pending.close_at) if opened else None

    def due(self, group: Hashable, now: float) -> Flush[M] | None:
        """The timer for ``group`` fired: the window to send, if it is still open and due.

        A window that filled up was already flushed; a timer left from it finds nothing, or a newer
        window whose own timer is still to come.
        """
        pending = self._open.get(group)
        if pending is None or now < pending.close_at:
            return None
        del self._open[group]
        return Flush(group, pending.ids, pending.members)

    def flush_all(self) -> list[Flush[M]]:
        """Close every window now (shutdown)."""
        out = [Flush(p.group, p.ids, p.members) for p in self._open.values()]
        self._open.clear()
        return out

    @property
    def open_windows(self) -> int:
        """How many windows are open now (waiting for their timer or for more ids)."""
        return len(self._open)

    def __repr__(self) -> str:
        return f"<Batcher max_size={self.max_size} window={self.window * 1000:g}ms open={len(self._open)}>"
