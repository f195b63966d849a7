"""Upsert statements shared by the SQL sinks."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError


def check_columns(owner: str, columns: Sequence[str], key: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``columns`` and ``key`` as tuples, or a ConfigError: no columns, duplicates, or a key
    that is empty or not a subset of the columns."""
    cols, keys = tuple(columns), tuple(key)
    if not cols:
        raise ConfigError(owner, "columns", "name at least one column")
    if not keys or any(k not in cols for k in keys):
        raise ConfigError(owner, "key", f"must be a non-empty subset of columns {cols}, got {keys}")
    if len(set(cols)) != len(cols):
        raise ConfigError(owner, "columns", "are not unique")
    return cols, keys


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str], quote: str, placeholders: Sequence[str]) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` of the other columns (``DO NOTHING`` when all
    columns are the key), names quoted with ``quote``, values from ``placeholders``."""
    def q(name: str) -> str:
        return f"{quote}{name}{quote}"

    updates = [c for c in columns if c not in key]
    action = (
        "DO UPDATE SET " + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in updates) if updates else "DO NOTHING"
    )
    return (
        f"INSERT INTO {table} ({', '.join(q(c) for c in columns)}) VALUES ({', '.join(placeholders)})"
        f" ON CONFLICT ({', '.join(q(k) for k in key)}) {action}"
    )
