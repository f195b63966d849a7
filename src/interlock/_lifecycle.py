"""``Resource``: ``async with`` for the objects that have ``open()`` and ``aclose()``."""

from __future__ import annotations

from typing import Self

__all__ = ["Resource"]


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
