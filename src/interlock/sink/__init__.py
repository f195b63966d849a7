"""Batched, idempotent writes: ``BatchWriter`` over a ``Sink`` (PostgreSQL, SQLite)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .batch_writer import BatchWriter
from .protocols import Row, Sink
from .sqlite import SQLiteSink

if TYPE_CHECKING:
    from .postgres import PostgresSink

__all__ = ["BatchWriter", "PostgresSink", "Row", "SQLiteSink", "Sink"]


def __getattr__(name: str) -> Any:
    if name == "PostgresSink":
        from .postgres import PostgresSink

        return PostgresSink
    raise AttributeError(name)
