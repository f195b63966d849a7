"""The ``TokenStore`` seam: OAuth2 tokens shared by every process calling one upstream, and the
lock that lets exactly one of them ask the token endpoint for a new one.

Backends: in this process (``token_memory``), Redis (``token_redis``: ``SET NX PX`` and a
compare-and-delete script), SQLite and PostgreSQL (``token_sqlite`` / ``token_postgres``: a
lease row). All are held to one behaviour by ``tests/contract/test_token_contract.py``.

Guarantees a backend must give:

- ``save`` is durable when it returns; ``load`` returns the last token saved under the key,
  refresh token included (a rotated refresh token must survive a restart: it is the only copy).
- ``lock`` is exclusive: while one owner holds the key's lock (for ``ttl`` seconds at most, so a
  crashed holder cannot block the others for ever), ``lock`` by any other owner returns False.
- ``unlock`` releases only the caller's own lock: a holder whose lease ran out and was taken
  over by another never removes the new holder's lock.

Tokens are credentials: stores keep them as the token endpoint issued them, so the store itself
must be access-controlled like a secrets store (a private Redis, a database user of its own).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..core.token import Token

__all__ = ["Token", "TokenStore"]


@runtime_checkable
class TokenStore(Protocol):
    """Tokens by key, and one lock per key. See the module docstring for the contract."""

    async def open(self) -> None:
        """Connect and create the storage if missing; calling it on an open store does nothing."""
        ...

    async def aclose(self) -> None:
        """Release the connections and threads the store opened."""
        ...

    async def load(self, key: str) -> Token | None:
        """The token last saved under ``key`` (None: none, or one that cannot be read)."""
        ...

    async def save(self, key: str, token: Token) -> None:
        """Replace the token under ``key``, durably."""
        ...

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lock on ``key`` for ``owner`` for at most ``ttl`` seconds: True when taken,
        False while it is held (by anyone) and its lease has not run out."""
        ...

    async def unlock(self, key: str, owner: str) -> None:
        """Release the lock on ``key`` if ``owner`` still holds it; otherwise do nothing."""
        ...
