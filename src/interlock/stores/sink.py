"""The ``Sink`` seam: somewhere rows are upserted in batches (``BatchWriter`` feeds one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Row", "Sink"]

Row = tuple[Any, ...]
"""One row: values in the sink's ``columns`` order."""


@runtime_checkable
class Sink(Protocol):
    """A table rows are upserted into, by ``key``; the table exists before the sink is used."""

    columns: tuple[str, ...]
    """The columns a row fills, in order."""
    key: tuple[str, ...]
    """The columns (a subset of ``columns``) that identify a row: the table's unique key."""

    async def open(self) -> None:
        """Connect; calling it on an open sink does nothing. ``write_rows`` opens it if needed."""
        ...

    async def aclose(self) -> None:
        """Release the connections the sink opened; a borrowed pool stays open."""
        ...

    async def write_rows(self, rows: Sequence[Row]) -> None:
        """Upsert ``rows`` (tuples in ``columns`` order) in one transaction; idempotent, so a
        batch written twice after a crash leaves the same table."""
        ...
