"""``MemoryTokenStore``: tokens and locks in this process only (the default: one process, one
token request). Bounded: at most ``max_keys`` tokens, the least recently saved dropped first."""

from __future__ import annotations

from collections import OrderedDict

from .._clock import SYSTEM_CLOCK, Clock
from ..core.token import Token

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore:
    """``TokenStore`` in a dict; locks expire by ``clock``."""

    def __init__(self, *, max_keys: int = 1024, clock: Clock | None = None) -> None:
        if not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError("max_keys must be an integer >= 1")
        self.max_keys = max_keys
        self._clock = clock or SYSTEM_CLOCK
        self._tokens: OrderedDict[str, Token] = OrderedDict()
        self._locks: dict[str, tuple[str, float]] = {}

    async def open(self) -> None:
        """Nothing to open."""

    async def aclose(self) -> None:
        """Nothing to close."""

    async def load(self, key: str) -> Token | None:
        """The token saved under ``key``."""
        return self._tokens.get(key)

    async def save(self, key: str, token: Token) -> None:
        """Keep ``token`` under ``key`` (dropping the oldest key past ``max_keys``)."""
        self._tokens[key] = token
        self._tokens.move_to_end(key)
        while len(self._tokens) > self.max_keys:
            self._tokens.popitem(last=False)

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lock unless someone holds an unexpired one."""
        now = self._clock.monotonic()
        held = self._locks.get(key)
        if held is not None and held[1] > now:
            return False
        self._locks[key] = (owner, now + ttl)
        if len(self._locks) > self.max_keys:  # bounded: forget expired leases
            self._locks = {k: v for k, v in self._locks.items() if v[1] > now}
        return True

    async def unlock(self, key: str, owner: str) -> None:
        """Drop the lock if ``owner`` holds it."""
        held = self._locks.get(key)
        if held is not None and held[0] == owner:
            del self._locks[key]

    def __repr__(self) -> str:
        return f"<MemoryTokenStore keys={len(self._tokens)} locks={len(self._locks)}>"
