"""The ``InteractionStore`` seam: the interaction log, the exchanges themselves kept for
troubleshooting with a provider.

Every failed call (and a configured sample of the successful ones) is kept as one
``Interaction``: method, URL, request and response headers, the first bytes of both bodies
(already redacted by the client that records it), tracking id, correlation id, trace id, the
attempts with their statuses and timings. Backends: SQLite (``interactions_sqlite``) and
PostgreSQL (``interactions_postgres``), opened by ``stores.open_interactions(url)``.

Bounded by ``InteractionRetention``: rows older than ``max_age`` seconds and the oldest rows past
``max_rows`` are deleted on a schedule as records are written, so the store never grows past
``max_rows`` rows of at most ``2 x max_body`` bytes of bodies each (plus headers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError

__all__ = [
    "Attempt",
    "Interaction",
    "InteractionFilter",
    "InteractionRetention",
    "InteractionStore",
]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a call: its number, the status it got (None: no answer), the error it
    raised (its type and message), when it started (seconds after the call began) and how long
    it took."""

    attempt: int
    status: int | None
    error: str | None
    started: float
    duration: float

    def to_json(self) -> dict[str, Any]:
        """The attempt as a JSON object."""
        return {
            "attempt": self.attempt, "status": self.status, "error": self.error,
            "started": round(self.started, 6), "duration": round(self.duration, 6),
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        """The attempt of a ``to_json`` object."""
        status = data.get("status")
        return cls(
            int(data["attempt"]), None if status is None else int(status), data.get("error"),
            float(data.get("started", 0.0)), float(data.get("duration", 0.0)),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Interaction:
    """One call as the interaction log keeps it. Bodies hold at most the recording client's
    ``max_body`` bytes (``*_truncated`` says when more was cut); every credential is masked."""

    id: str
    at: float
    """Wall-clock seconds since the epoch when the call began."""
    upstream: str
    method: str
    url: str
    """With credentials and sensitive query values masked."""
    route: str
    status: int | None
    """The last answer's status; None when no answer came (network error, local refusal)."""
    failed: bool
    error: str | None = None
    """What failed (``RetriesExhausted: ...``), None for a success."""
    tracking_id: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    duration: float = 0.0
    """Seconds the whole call took, retries included."""
    attempts: tuple[Attempt, ...] = ()
    request_headers: tuple[tuple[str, str], ...] = ()
    request_body: bytes = field(default=b"", repr=False)
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = field(default=b"", repr=False)
    request_truncated: bool = False
    response_truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        """The interaction as a JSON object (bodies as text, undecodable bytes replaced)."""
        return {
            "id": self.id, "at": self.at, "upstream": self.upstream, "method": self.method,
            "url": self.url, "route": self.route, "status": self.status, "failed": self.failed,
            "error": self.error, "tracking_id": self.tracking_id, "correlation_id": self.correlation_id,
            "trace_id": self.trace_id, "duration": round(self.duration, 6),
            "attempts": [a.to_json() for a in self.attempts],
            "request": {"headers": [list(h) for h in self.request_headers],
                        "body": self.request_body.decode("utf-8", errors="replace"),
                        "truncated": self.request_truncated},
            "response": {"headers": [list(h) for h in self.response_headers],
                         "body": self.response_body.decode("utf-8", errors="replace"),
                         "truncated": self.response_truncated},
        }  # fmt: skip

    def row(self) -> tuple[Any, ...]:
        """The columns a SQL backend stores, in ``COLUMNS`` order."""
        return (
            self.id, self.at, self.upstream, self.method, self.url, self.route, self.status,
            self.failed, self.error, self.tracking_id, self.correlation_id, self.trace_id, self.duration,
            json.dumps([a.to_json() for a in self.attempts]),
            json.dumps(self.request_headers), self.request_body, self.request_truncated,
            json.dumps(self.response_headers), self.response_body, self.response_truncated,
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Interaction:
        """The interaction of a stored row (``row()``'s columns)."""
        return cls(
            id=row[0], at=float(row[1]), upstream=row[2], method=row[3], url=row[4], route=row[5],
            status=None if row[6] is None else int(row[6]), failed=bool(row[7]), error=row[8],
            tracking_id=row[9], correlation_id=row[10], trace_id=row[11], duration=float(row[12]),
            attempts=tuple(Attempt.from_json(a) for a in json.loads(row[13])),
            request_headers=tuple((str(k), str(v)) for k, v in json.loads(row[14])),
            request_body=bytes(row[15] or b""), request_truncated=bool(row[16]),
            response_headers=tuple((str(k), str(v)) for k, v in json.loads(row[17])),
            response_body=bytes(row[18] or b""), response_truncated=bool(row[19]),
        )  # fmt: skip


COLUMNS = (
    "id", "at", "upstream", "method", "url", "route", "status", "failed", "error", "tracking_id",
    "correlation_id", "trace_id", "duration", "attempts", "request_headers", "request_body",
    "request_truncated", "response_headers", "response_body", "response_truncated",
)  # fmt: skip
"""The stored columns, in ``Interaction.row()`` order."""


@dataclass(frozen=True, slots=True)
class InteractionFilter:
    """Which interactions a query returns; empty fields match everything."""

    tracking_id: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    upstream: str | None = None
    route: str | None = None
    ids: Sequence[str] = ()
    failed: bool | None = None
    """True: failures only; False: successes only; None: both."""
    since: float | None = None
    """Began at or after this wall-clock time."""
    until: float | None = None
    """Began before this wall-clock time."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))

    def clauses(self, placeholder: Any) -> tuple[list[str], list[Any]]:
        """SQL conditions and their parameters; ``placeholder(n)`` spells the n-th (1-based)."""
        conds: list[str] = []
        params: list[Any] = []

        def add(sql: str, value: Any) -> None:
            params.append(value)
            conds.append(sql.format(placeholder(len(params))))

        for column in ("tracking_id", "correlation_id", "trace_id", "upstream", "route"):
            value = getattr(self, column)
            if value is not None:
                add(f"{column} = {{}}", value)
        if self.ids:
            marks = []
            for value in self.ids:
                params.append(value)
                marks.append(placeholder(len(params)))
            conds.append(f"id IN ({', '.join(marks)})")
        if self.failed is not None:
            add("failed = {}", self.failed)
        if self.since is not None:
            add("at >= {}", self.since)
        if self.until is not None:
            add("at < {}", self.until)
        return conds, params


@dataclass(frozen=True, slots=True)
class InteractionRetention:
    """How long and how much the interaction log keeps: rows older than ``max_age`` seconds
    (None: no age limit) and, past ``max_rows`` rows, the oldest ones are deleted. Enforced
    every ``every`` writes (and on ``prune()``), so the table may pass ``max_rows`` by at most
    ``every`` rows between two enforcements."""

    max_age: float | None = 7 * 86400.0
    max_rows: int = 100_000
    every: int = 100

    def __post_init__(self) -> None:
        if self.max_age is not None and not self.max_age > 0:
            raise ConfigError(
                "InteractionRetention", "max_age", f"must be > 0 seconds or None, got {self.max_age!r}"
            )
        if self.max_rows < 1:
            raise ConfigError("InteractionRetention", "max_rows", f"must be >= 1, got {self.max_rows!r}")
        if self.every < 1:
            raise ConfigError("InteractionRetention", "every", f"must be >= 1, got {self.every!r}")


MAX_LIMIT = 1000
"""The most interactions one ``find`` returns."""


@runtime_checkable
class InteractionStore(Protocol):
    """A bounded log of API interactions. See the module docstring."""

    retention: InteractionRetention

    async def open(self) -> None:
        """Connect and create the table if missing; calling it on an open store does nothing."""
        ...

    async def aclose(self) -> None:
        """Finish the writes in flight and release the connections."""
        ...

    async def record(self, interaction: Interaction) -> None:
        """Store one interaction (replacing one with the same id); every ``retention.every``
        writes, apply the retention."""
        ...

    async def find(
        self, where: InteractionFilter = InteractionFilter(), *, limit: int = 100
    ) -> list[Interaction]:
        """Interactions matching ``where``, newest first, at most ``limit`` (<= ``MAX_LIMIT``)."""
        ...

    async def count(self, where: InteractionFilter = InteractionFilter()) -> int:
        """How many interactions match ``where``."""
        ...

    async def prune(self, now: float | None = None) -> int:
        """Apply the retention now (``now``: the wall-clock time ages are measured from);
        how many rows were deleted."""
        ...
