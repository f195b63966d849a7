"""What every PostgreSQL-backed store shares (queue, checkpoints, sink): asyncpg imported only
when used, Interlock's ``?schema=`` taken out of the DSN, a pool owned or borrowed, quoted names."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from ..errors import ConfigError

__all__ = ["PostgresStore", "create_pool", "import_asyncpg", "quote_ident", "split_schema"]


def import_asyncpg() -> Any:
    """The asyncpg module, or an ImportError naming the extra that installs it."""
    try:
        import asyncpg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the PostgreSQL store needs asyncpg: pip install 'interlock[postgres]'"
        ) from exc
    return asyncpg


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier, embedded quotes doubled."""
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


class PostgresStore:
    """Base of the PostgreSQL stores: the DSN and schema they use, and the pool they open.

    ``dsn`` may carry ``?schema=name`` (an explicit ``schema`` wins). A ``pool`` passed in is
    borrowed: the store uses it and never closes it; otherwise the store opens a pool of up
    to ``pool_size`` connections on first use and closes it in ``_close_pool``.
    """

    def __init__(
        self, dsn: str | None, *, schema: str | None, pool: Any, pool_size: int, connect_timeout: float | None = None
    ) -> None:
        self.dsn: str | None = None
        self.connect_timeout = connect_timeout
        """Seconds a new connection may take (asyncpg's own default when ``None``)."""
        dsn_schema: str | None = None
        if dsn:
            self.dsn, dsn_schema = split_schema(dsn)
        self.schema = schema or dsn_schema
        self.pool_size = pool_size
        self._pool = pool
        self._own_pool = pool is None
        self._opening = asyncio.Lock()  # concurrent first uses open one pool, not one each

    def qualify(self, name: str) -> str:
        """``name`` quoted, and qualified by the store's schema when it has one."""
        return f"{quote_ident(self.schema)}.{quote_ident(name)}" if self.schema else quote_ident(name)

    async def _open_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                extra = {} if self.connect_timeout is None else {"timeout": self.connect_timeout}
                self._pool = await create_pool(str(self.dsn), min_size=1, max_size=self.pool_size, **extra)
        return self._pool

    @contextlib.asynccontextmanager
    async def _bounded(self, timeout: float, what: str) -> AsyncIterator[Any]:
        """A pool connection for one operation that must finish within ``timeout`` s, waiting
        for the connection included; ``TimeoutError`` naming ``what`` otherwise.

        asyncpg's own ``command_timeout`` is not enough against a server that stops answering:
        the timed-out connection stays in the pool waiting for its cancel, and the next
        acquire waits behind it without bound. A connection that times out (or whose caller is
        cancelled) mid-statement is closed at once instead, so the pool opens a fresh one.
        """
        pool, conn = self._pool, None
        try:
            async with asyncio.timeout(timeout):
                conn = await pool.acquire()
                yield conn
        except TimeoutError:
            if conn is not None:
                conn.terminate()
            raise TimeoutError(f"PostgreSQL did not answer {what} within {timeout} s") from None
        except asyncio.CancelledError:
            if conn is not None:
                conn.terminate()
            raise
        finally:
            if conn is not None:
                # Releasing resets the connection (a round trip): bounded too; a release that
                # fails has closed the connection already, and the pool replaces it.
                with contextlib.suppress(Exception):
                    await pool.release(conn, timeout=timeout)

    async def _create_tables(self, lock_name: str, ddl: str) -> None:
        """Run ``ddl`` (``CREATE ... IF NOT EXISTS``) in one transaction under an advisory lock,
        so processes starting at the same moment do not race to create the same tables."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock_name)
            await conn.execute(ddl)

    async def _close_pool(self) -> None:
        if self._pool is not None and self._own_pool:
            await self._pool.close()
            self._pool = None
