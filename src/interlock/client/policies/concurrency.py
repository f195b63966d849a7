"""Bounds requests in flight to one upstream, with a tighter bound for writes."""

from __future__ import annotations

import asyncio

from ..._metrics import CLIENT_IN_FLIGHT
from ..._models import Request, Response
from .._config import Concurrency
from .._pipeline import Handler


class ConcurrencyLimiter:
    def __init__(self, config: Concurrency, upstream: str) -> None:
        self.config = config
        self._all = asyncio.Semaphore(config.limit) if config.limit else None
        self._writes = asyncio.Semaphore(config.writes) if config.writes else None
        self._gauge = CLIENT_IN_FLIGHT.labels(upstream)
        self.in_flight = 0

    async def handle(self, request: Request, call_next: Handler) -> Response:
        writes = None if request.is_safe else self._writes
        if writes is not None:
            await writes.acquire()
        try:
            if self._all is not None:
                await self._all.acquire()
            try:
                self.in_flight += 1
                self._gauge.inc()
                try:
                    return await call_next(request)
                finally:
                    self.in_flight -= 1
                    self._gauge.dec()
            finally:
                if self._all is not None:
                    self._all.release()
        finally:
            if writes is not None:
                writes.release()

    def __repr__(self) -> str:
        return f"<ConcurrencyLimiter in_flight={self.in_flight} {self.config}>"
