"""Per-upstream configuration objects of the Client that are not policies with a core of their
own (those live in ``interlock.core``: ``Retry``, ``CircuitBreaker``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


def _positive_or_none(owner: str, name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(owner, name, f"must be > 0 seconds or None, got {value!r}")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Time limits, in seconds.

    - ``connect``: to open a connection;
    - ``read``: for one attempt's complete answer, counted from the moment the attempt starts
      (a new connection's setup included);
    - ``attempt``: an explicit per-attempt cap, when tighter than ``read``;
    - ``total``: the whole call, every attempt and every backoff together: the deadline after
      which no retry starts.

    ``read`` bounds the whole answer rather than each socket read: API answers arrive in one or
    two reads, and a per-read timer costs two event-loop timer operations per call.
    """

    connect: float | None = 3.0
    read: float | None = 10.0
    attempt: float | None = None
    total: float | None = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "attempt", "total"):
            _positive_or_none("Timeout", name, getattr(self, name))

    @property
    def per_attempt(self) -> float | None:
        """The longest one attempt may take, before the call's deadline is applied."""
        caps = [c for c in (self.attempt, self.read) if c is not None]
        return min(caps) if caps else None


@dataclass(frozen=True, slots=True)
class Concurrency:
    """Bounds on requests in flight to one upstream. ``writes`` bounds unsafe methods (POST, PUT,
    PATCH, DELETE) on their own: seed 002 found 5 parallel writes the safe default."""

    limit: int | None = 100
    writes: int | None = 5

    def __post_init__(self) -> None:
        for name in ("limit", "writes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError("Concurrency", name, f"must be an integer >= 1 or None, got {value!r}")

    @classmethod
    def coerce(cls, value: int | Concurrency | None) -> Concurrency | None:
        if value is None or isinstance(value, Concurrency):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(limit=value, writes=min(value, 5))
        raise ConfigError("Client", "concurrency", f"must be an int, a Concurrency or None, got {value!r}")
