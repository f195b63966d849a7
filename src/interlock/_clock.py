"""Time, behind a seam, so sans-I/O decisions can be driven by a fake clock in tests."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What everything that waits or measures time reads, passed as ``clock=``.

    ``SystemClock`` in production, ``interlock.testing.FakeClock`` in tests.
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; for durations and deadlines."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch; for HTTP dates and reset timestamps."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (zero or less: yield to the event loop once and return)."""
        ...


class SystemClock:
    """The process's real clocks: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    # The C functions themselves, not wrappers: the clock is read several times per call.
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``, negative durations read as zero."""
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
