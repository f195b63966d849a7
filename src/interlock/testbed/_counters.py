"""What the testbed saw: counters tests assert on, and a ring buffer of recent requests.

``Stats`` is the live, mutable tally the app bumps on the hot path (plain attributes, no
locks: everything runs on one event loop). ``Counters`` is an immutable snapshot of it, the
same shape in-process (``Testbed.counters``) and over HTTP (``GET /_testbed/counters``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["Counters", "RecentRequest", "Stats"]

RECENT_SIZE = 1000


@dataclass(frozen=True)
class RecentRequest:
    """One request the testbed saw, as kept in its ring buffer of the last 1000.

    ``status`` is None when the connection was reset and nothing was answered; ``request_id`` and
    ``idempotency_key`` are the request's ``X-Request-ID`` and ``Idempotency-Key`` headers.
    """

    ts: float
    method: str
    path: str
    query: str
    status: int | None  # None: the connection was reset, nothing was answered
    request_id: str | None
    idempotency_key: str | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form served by ``GET /_testbed/requests`` (header names as keys)."""
        return {
            "ts": self.ts,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "x-request-id": self.request_id,
            "idempotency-key": self.idempotency_key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecentRequest:
        """Parse the JSON form."""
        return cls(
            ts=data["ts"],
            method=data["method"],
            path=data["path"],
            query=data["query"],
            status=data["status"],
            request_id=data["x-request-id"],
            idempotency_key=data["idempotency-key"],
        )


@dataclass(frozen=True)
class Counters:
    """A snapshot of what the testbed saw, the same in-process and over HTTP.

    Status codes are string keys (as in the JSON form); ``by_route`` is keyed by route template,
    e.g. ``"GET /customers/{id}"``. ``applied_writes`` maps ``(kind, id)`` to how many times a
    write was really applied to that record (replays and rejected requests excluded): the proof
    of "applied exactly once".
    """

    requests: int = 0
    by_route: dict[str, dict[str, int]] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    errors_injected: int = 0  # error_rates draws plus outage rejections
    outage_rejections: int = 0
    resets: int = 0  # connections dropped without a response (reset_rate)
    lost_responses: int = 0  # writes applied, then the connection dropped (lost_response_rate)
    idempotent_replays: int = 0
    writes_applied: int = 0
    applied_writes: dict[tuple[str, int], int] = field(default_factory=dict)
    max_concurrency: int = 0
    in_flight: int = 0
    not_modified: int = 0
    list_calls: int = 0  # every GET /{kind}: paginated listings and batch reads by ids
    batch_calls: int = 0  # GET /{kind}?ids=... only
    ids_requested: int = 0  # sum of ids asked across batch reads

    def count(self, status: int) -> int:
        """How many responses had this status."""
        return self.status.get(str(status), 0)

    def route(self, label: str) -> dict[str, int]:
        """Statuses seen on one route, e.g. ``route("GET /customers/{id}")``."""
        return self.by_route.get(label, {})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form served by ``GET /_testbed/counters`` (``applied_writes`` keyed ``kind/id``)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["applied_writes"] = {f"{k}/{i}": n for (k, i), n in self.applied_writes.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counters:
        """Parse the JSON form, as ``SpawnedTestbed.counters`` does."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        applied: dict[tuple[str, int], int] = {}
        for key, n in dict(values.get("applied_writes", {})).items():
            kind, _, rid = str(key).rpartition("/")
            applied[(kind, int(rid))] = int(n)
        values["applied_writes"] = applied
        return cls(**values)


class Stats:
    """The live tally. Not thread-safe by design: one event loop owns it."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.recent: deque[tuple[float, str, str, str, int | None, str | None, str | None]] = deque(
            maxlen=RECENT_SIZE
        )
        self.reset()

    def reset(self) -> None:
        """Start every count again from zero (requests still in flight keep counting)."""
        self.requests = 0
        self.by_route: dict[str, dict[int, int]] = {}
        self.status: dict[int, int] = {}
        self.rate_limited = 0
        self.errors_injected = 0
        self.outage_rejections = 0
        self.resets = 0
        self.lost_responses = 0
        self.idempotent_replays = 0
        self.writes_applied = 0
        self.applied_writes: dict[tuple[str, int], int] = {}
        # Requests still running keep counting; the high-water mark restarts from them.
        self.max_concurrency = self.in_flight
        self.not_modified = 0
        self.list_calls = 0
        self.batch_calls = 0
        self.ids_requested = 0
        self.recent.clear()

    def enter(self) -> None:
        """A request arrived: count it and its concurrency."""
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.max_concurrency:
            self.max_concurrency = self.in_flight

    def leave(self) -> None:
        """A request finished (answered or dropped)."""
        self.in_flight -= 1

    def answered(
        self,
        route: str,
        status: int | None,
        method: str,
        path: str,
        query: str,
        request_id: str | None,
        idempotency_key: str | None,
    ) -> None:
        """Record how a request ended (``status`` None: reset without an answer) in the counts and the ring buffer."""
        if status is not None:
            per_route = self.by_route.get(route)
            if per_route is None:
                per_route = self.by_route[route] = {}
            per_route[status] = per_route.get(status, 0) + 1
            self.status[status] = self.status.get(status, 0) + 1
        self.recent.append((time.time(), method, path, query, status, request_id, idempotency_key))

    def applied(self, kind: str, rid: int) -> None:
        """A write was really applied to record ``rid`` of ``kind`` (not a replay, not rejected)."""
        self.writes_applied += 1
        key = (kind, rid)
        self.applied_writes[key] = self.applied_writes.get(key, 0) + 1

    def snapshot(self) -> Counters:
        """An immutable ``Counters`` copy of the tally now."""
        return Counters(
            requests=self.requests,
            by_route={r: {str(s): n for s, n in statuses.items()} for r, statuses in self.by_route.items()},
            status={str(s): n for s, n in self.status.items()},
            rate_limited=self.rate_limited,
            errors_injected=self.errors_injected,
            outage_rejections=self.outage_rejections,
            resets=self.resets,
            lost_responses=self.lost_responses,
            idempotent_replays=self.idempotent_replays,
            writes_applied=self.writes_applied,
            applied_writes=dict(self.applied_writes),
            max_concurrency=self.max_concurrency,
            in_flight=self.in_flight,
            not_modified=self.not_modified,
            list_calls=self.list_calls,
            batch_calls=self.batch_calls,
            ids_requested=self.ids_requested,
        )

    def recent_requests(self, limit: int | None = None) -> list[RecentRequest]:
        """The last ``limit`` requests (all kept when None), oldest first."""
        items = list(self.recent)
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return [RecentRequest(*item) for item in items]
