"""``Resource``: ``async with`` for the objects that have ``open()`` and ``aclose()``; and
``opens_once``, for an ``open()`` that callers may race into."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, Self, TypeVar

__all__ = ["Resource", "opens_once"]


class _Opens(Protocol):
    _opened: bool


T = TypeVar("T", bound=_Opens)


def opens_once(open_: Callable[[T], Coroutine[Any, Any, None]]) -> Callable[[T], Coroutine[Any, Any, None]]:
    """Wrap an ``open()`` that sets ``self._opened = True`` when done, so that callers racing
    into it (parallel requests that each open what they use) run it once: the first runs it,
    the others wait for it, and once it has finished every call returns at once."""

    @functools.wraps(open_)
    async def open_once(self: T) -> None:
        if self._opened:
            return
        state: dict[str, Any] = vars(self)
        lock = state.setdefault("_open_lock", asyncio.Lock())
        async with lock:
            if not self._opened:
                await open_(self)

    return open_once


class Resource:
    """``async with obj:`` opens it on entry and closes it on exit, as ``aclose()`` would."""

    async def open(self) -> None:
        """Open what the object needs (each subclass says what)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close what the object opened (each subclass says what)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
