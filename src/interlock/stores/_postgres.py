"""Open an asyncpg pool, reused by every PostgreSQL-backed store (inbox queue, sync checkpoints)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from ..errors import ConfigError

__all__ = ["create_pool", "import_asyncpg", "quote_ident", "split_schema"]


def import_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the PostgreSQL store needs asyncpg: pip install 'interlock[postgres]'"
        ) from exc
    return asyncpg


def quote_ident(name: str) -> str:
    if not name or "\x00" in name:
        raise ConfigError("postgres", "identifier", f"invalid SQL identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def split_schema(dsn: str) -> tuple[str, str | None]:
    """Take Interlock's own ``?schema=`` parameter out of a DSN (asyncpg would send it on)."""
    parsed = urlparse(dsn)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = [(k, v) for k, v in query if k != "schema"]
    return urlunparse(parsed._replace(query=urlencode(rest))), schema


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> Any:
    """An asyncpg pool; the caller owns it and closes it with ``await pool.close()``."""
    asyncpg = import_asyncpg()
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, **kwargs)
