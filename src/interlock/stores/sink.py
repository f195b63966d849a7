"""The ``Sink`` seam: somewhere rows are upserted in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

Row = tuple[Any, ...]


@runtime_checkable
class Sink(Protocol):
    columns: tuple[str, ...]
    key: tuple[str, ...]

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    async def write_rows(self, rows: Sequence[Row]) -> None:
        """Upsert ``rows`` (tuples in ``columns`` order) in one transaction; idempotent, so a
        batch written twice after a crash leaves the same table."""
        ...
