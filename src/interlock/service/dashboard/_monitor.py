"""What the dashboard shows, read from the running integration every few seconds.

``Monitor`` holds the narrow inputs the page needs (the upstreams' Clients, the Inbox, the
Syncs, the alert thresholds), reads their counters on every ``tick()`` into a ``Series`` per
upstream and a ``GaugeSeries`` per inbox, feeds the failure groups, and builds the JSON the
overview page renders and refreshes (``overview()``). Failed calls and deliveries reach the
failure groups through ``FailureFeed``, a ``logging.Handler`` on Interlock's own loggers: the
Client and the Inbox already log every failure once, with its fields, so the dashboard costs
the success path nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..._metrics import upstream_stats, work_stats
from ...core.alerts import Badge, BadgeState, Thresholds, evaluate
from ...core.failure_groups import FailureGroups, Issue, IssueKey, Transition
from ._history import CallReading, GaugeSeries, Series

if TYPE_CHECKING:
    from ...client import Client
    from ...inbox import Inbox
    from ...sync import Sync

__all__ = ["FailureFeed", "Monitor", "RecentFailure"]

WINDOW = 60.0
"""Seconds of traffic the overview's current figures cover (p95, error rate, pace)."""
RECENT_FAILURES = 50
"""Failures kept per upstream or source for its detail page."""
NOT_ERRORS = ("2", "3", "4")
"""Outcome labels starting so are answers (2xx, 3xx, 4xx); the rest (5xx, timedout,
circuitopen...) are errors of the upstream or the way to it."""


@dataclass(frozen=True, slots=True)
class RecentFailure:
    """One failed call or delivery, as its log record told it (already redacted)."""

    at: float
    what: str
    """``GET /customers/{id}`` for a call, the event type for a delivery."""
    error: str
    message: str
    reference: str
    """The tracking id of a call, the event id of a delivery."""


@dataclass(slots=True)
class Monitor:
    """The dashboard's model of one integration layer."""

    clients: Mapping[str, Client]
    inbox: Inbox | None = None
    syncs: Mapping[str, Sync] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    events: Any = None
    """The events handled lately (the service's ``EventLog``: ``list(source=, limit=)`` and
    ``get(id, source)``), shown on a source's page; None: not kept."""
    interval: float = 5.0
    window: float = WINDOW
    """Seconds of traffic the current figures cover."""
    groups: FailureGroups = field(default_factory=FailureGroups)
    on_transition: Callable[[Transition, Issue], None] | None = None
    """Told when an issue opens, reopens or resolves itself (a notifier posts it)."""
    on_alert: Callable[[str, dict[str, Any]], None] | None = None
    """Told ``(upstream or source, badge)`` when a badge turns to firing."""
    clock: Callable[[], float] = time.time
    series: dict[str, Series] = field(default_factory=dict)
    inbox_series: GaugeSeries = field(init=False)
    failures: dict[str, deque[RecentFailure]] = field(default_factory=dict)
    _successes: dict[tuple[str, str], int] = field(default_factory=dict)
    _firing: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.inbox_series = GaugeSeries(self.interval)
        for name in self.clients:
            self.series[name] = Series(self.interval)

    # -- reading -----------------------------------------------------------------------------------
    async def tick(self) -> None:
        """Take one reading of everything (the inbox's queue gauges are a store query)."""
        now = self.clock()
        for name in self.clients:
            self.series[name].record(self._read_upstream(name, now))
        if self.inbox is not None:
            stats = await self.inbox.refresh_stats()
            processing = self.inbox.metrics.processing_percentiles()
            self.inbox_series.record(
                now,
                {
                    "queue_depth": stats.pending,
                    "in_flight": stats.in_flight,
                    "dlq_size": stats.dead,
                    "processing_p95": processing["p95"],
                },
            )
        self._watch_badges()

    def _watch_badges(self) -> None:
        """Tell ``on_alert`` of each badge that turned to firing since the last tick."""
        rows = [self.upstream_row(name) for name in self.clients]
        firing = set()
        for row in rows:
            for badge in row["badges"]:
                if badge["state"] == BadgeState.FIRING.value:
                    key = (row["name"], badge["rule"])
                    firing.add(key)
                    if key not in self._firing and self.on_alert is not None:
                        self.on_alert(row["name"], badge)
        self._firing = firing

    def _read_upstream(self, name: str, now: float) -> CallReading:
        stats = upstream_stats(name)
        calls = errors = retries = 0
        buckets: list[int] = []
        for route, rs in list(stats.routes.items()):
            retries += rs.retries
            buckets = (
                [a + b for a, b in zip(buckets, rs.buckets, strict=True)] if buckets else list(rs.buckets)
            )
            for (method, outcome), n in list(rs.outcomes.items()):
                calls += n
                if outcome[:1] in NOT_ERRORS:
                    self._count_successes(("upstream", name, f"{method} {route}"), n)
                else:
                    errors += n
        lookups = hits = 0
        for counts in list(work_stats(name).cache.values()):
            total = sum(counts.values())
            lookups += total
            hits += total - counts["miss"]
        return CallReading(now, calls, errors, retries, tuple(buckets), lookups, hits)

    def _count_successes(self, scope: tuple[str, str, str], total: int) -> None:
        """Feed the successes since the last reading to the failure groups (they resolve an
        issue after a run of them)."""
        key = (scope[1], scope[2])
        new = total - self._successes.get(key, 0)
        self._successes[key] = total
        for _ in range(min(new, self.groups.resolve_after)):
            for issue in self.groups.success(scope):
                self._tell(Transition.RESOLVED, issue)

    def record_failure(self, key: IssueKey, failure: RecentFailure) -> None:
        """One failed call or delivery (from ``FailureFeed``): grouped, and kept for its page."""
        transition = self.groups.failure(
            key, at=failure.at, detail=failure.message, reference=failure.reference
        )
        name = key.scope[1]
        if name in self.clients or key.scope[0] == "source":
            recent = self.failures.get(name)
            if recent is None:
                recent = self.failures[name] = deque(maxlen=RECENT_FAILURES)
            recent.appendleft(failure)
        if transition is not None:
            issue = self.groups.get(key.id)
            if issue is not None:
                self._tell(transition, issue)

    def _tell(self, transition: Transition, issue: Issue) -> None:
        if self.on_transition is not None:
            self.on_transition(transition, issue)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``interval`` until ``stop`` is set (a failed reading is logged and the
        next one tried)."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:  # a store blip must not stop the page
                logging.getLogger("interlock.service").warning("dashboard reading failed: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    # -- what the page shows -----------------------------------------------------------------------
    def upstream_row(self, name: str) -> dict[str, Any]:
        """One upstream's current figures and badges."""
        client = self.clients[name]
        window = self.series[name].window(self.window)
        stats = client.stats()
        row: dict[str, Any] = {
            "name": name,
            "breaker": stats.get("breaker") or "none",
            "in_flight": stats.get("in_flight"),
            "calls": window.calls if window else 0,
            "pace": window.pace if window else 0.0,
            "p50": window.p50 if window else None,
            "p95": window.p95 if window else None,
            "p99": window.p99 if window else None,
            "error_rate": window.error_rate if window else None,
            "retry_share": window.retry_share if window else None,
            "hit_rate": window.hit_rate if window else None,
        }
        row.update(self._quota(client, row["pace"]))
        t = self.thresholds
        samples = window.calls if window else 0
        badges = [
            evaluate(t.upstream_p95, row["p95"]),
            evaluate(t.error_rate, row["error_rate"], samples=samples),
            evaluate(t.cache_hit_rate, row["hit_rate"], samples=window.cache_lookups if window else 0),
            evaluate(t.ratelimit_headroom, row["headroom"]),
        ]
        row["badges"] = [_badge_json(b) for b in badges]
        row["state"] = _worst(badges)
        return row

    @staticmethod
    def _quota(client: Client, pace: float) -> dict[str, Any]:
        """The quota as last announced: remaining, headroom (remaining / the announced limit,
        as the ``interlock_ratelimit_remaining_ratio`` gauge) and when it runs out at the
        current pace."""
        work = work_stats(client.name)
        remaining, limit = work.ratelimit_remaining, work.ratelimit_quota
        if client.rate_limit is None or remaining is None:
            return {"remaining": None, "headroom": None, "exhausted_in": None}
        headroom = min(1.0, remaining / limit) if limit else None
        exhausted_in = remaining / pace if pace > 0 else None
        return {"remaining": remaining, "headroom": headroom, "exhausted_in": exhausted_in}

    def upstream_chart(self, name: str) -> list[dict[str, Any]]:
        """The last hour of one upstream, a point per tick: p50/p95/p99 and error rate."""
        return [
            {"at": at, "p50": w.p50, "p95": w.p95, "p99": w.p99, "error_rate": w.error_rate, "calls": w.calls}
            for at, w in self.series[name].points()
        ]

    def inbox_chart(self) -> list[dict[str, Any]]:
        """The last hour of the inbox: queue depth, DLQ size and processing p95 per tick."""
        return [{"at": at, **values} for at, values in self.inbox_series.points()]

    async def source_rows(self) -> list[dict[str, Any]]:
        """One row per declared webhook source, with its own queue depth, oldest event and DLQ
        size (the queue counted per source)."""
        inbox = self.inbox
        if inbox is None:
            return []
        m = inbox.metrics
        processing = m.processing_percentiles()
        now = self.clock()
        rows = []
        await inbox.open()
        for name in sorted(inbox.sources):
            label = m.label(name)
            stats = await inbox.queue.stats(name)
            dlq = stats.dead
            rejected = {reason: n for (source, reason), n in m.rejected.items() if source == label}
            oldest = None if stats.oldest_pending_at is None else max(0.0, now - stats.oldest_pending_at)
            badge = evaluate(self.thresholds.processing_p95, processing["p95"])
            rows.append(
                {
                    "name": name,
                    "received": m.received[label],
                    "duplicates": m.duplicates[label],
                    "rejected": rejected,
                    "processed": m.processed[label],
                    "retries": m.retries[label],
                    "dead_lettered": m.dead_lettered[label],
                    "dlq_size": dlq,
                    "queue_depth": stats.pending,
                    "oldest_age": oldest,
                    "processing_p95": processing["p95"],
                    "badges": [_badge_json(badge)],
                    "state": _worst([badge]),
                }
            )
        return rows

    async def sync_rows(self) -> list[dict[str, Any]]:
        """One row per sync: last run, checkpoint, lag, applied and failed."""
        rows = []
        for name, sync in sorted(self.syncs.items()):
            status = await sync.status()
            report = sync.last_report
            checkpoint = status.get("checkpoint") or {}
            rows.append(
                {
                    "name": name,
                    "polls": sync.polls,
                    "last_run": None
                    if report is None
                    else {
                        "applied": report.applied,
                        "dead": report.dead,
                        "read": report.read,
                        "elapsed": report.elapsed,
                    },
                    "checkpoint": checkpoint,
                    "lag": _lag(checkpoint, self.clock()),
                    "ledger": status.get("ledger", {}),
                    "dead_letters": status.get("dead_letters", 0),
                }
            )
        return rows

    def stream_rows(self) -> list[dict[str, Any]]:
        """One row per upstream event stream the inbox subscribes to: connected, lag,
        reconnects, events, duplicates, errors, reconciliations, position, last error."""
        if self.inbox is None:
            return []
        rows = []
        for name, subscription in sorted(self.inbox.subscriptions.items()):
            status = subscription.status()
            rows.append({
                "name": name,
                **{k: status[k] for k in (
                    "kind", "connected", "position", "reconnects", "events", "duplicates", "errors",
                    "reconciliations", "lag_seconds", "last_error",
                )},
                "state": "ok" if status["connected"] else "firing",
            })
        return rows

    async def overview(self) -> dict[str, Any]:
        """Everything the overview page shows, as JSON (the page's live refresh reads it)."""
        upstreams = [self.upstream_row(name) for name in self.clients]
        return {
            "at": self.clock(),
            "upstreams": upstreams,
            "sources": await self.source_rows(),
            "syncs": await self.sync_rows(),
            "streams": self.stream_rows(),
            "charts": {name: self.upstream_chart(name) for name in self.clients},
            "inbox_chart": self.inbox_chart(),
            "issues": len([i for i in self.groups.listing() if i.state.value in ("open", "acknowledged")]),
        }


def _lag(checkpoint: Mapping[str, Any], now: float) -> float | None:
    """Seconds between now and the newest change the sync has applied (its checkpoint's
    ``updated_at``, RFC 3339)."""
    stamp = checkpoint.get("updated_at") if checkpoint else None
    if not isinstance(stamp, str):
        return None
    try:
        return max(0.0, now - datetime.fromisoformat(stamp).timestamp())
    except ValueError:
        return None


SHORT_NAMES = {
    "upstream_p95": "p95",
    "error_rate": "errors",
    "cache_hit_rate": "cache",
    "ratelimit_headroom": "quota",
    "processing_p95": "processing",
}
"""How a badge names its rule in a table cell (the full wording is its tooltip)."""


def _badge_json(badge: Badge) -> dict[str, Any]:
    value = badge.value
    return {
        "rule": badge.rule,
        "label": SHORT_NAMES.get(badge.rule, badge.rule),
        "state": badge.state.value,
        "value": None if value is None or math.isnan(value) else value,
        "detail": badge.detail,
    }


def _worst(badges: list[Badge]) -> str:
    order = (BadgeState.FIRING, BadgeState.WARNING, BadgeState.OK, BadgeState.NO_DATA)
    states = {b.state for b in badges}
    return next((s.value for s in order if s in states), BadgeState.NO_DATA.value)


class FailureFeed(logging.Handler):
    """Hands the failures Interlock logs to a ``Monitor``: a failed call (``interlock.client``,
    with its ``upstream``, ``method``, ``route``, ``error`` and ``tracking_id`` fields) or a
    failed delivery (``interlock.inbox``, with ``source``, ``event_type``, ``event_id``,
    ``error``)."""

    def __init__(self, monitor: Monitor) -> None:
        super().__init__(logging.WARNING)
        self.monitor = monitor

    def emit(self, record: logging.LogRecord) -> None:
        """Group one record, if it is a failure with the fields above."""
        fields = getattr(record, "interlock", None)
        if not isinstance(fields, dict) or not fields.get("error"):
            return
        try:
            message = record.getMessage()
            if "upstream" in fields and "route" in fields:
                what = f"{fields.get('method', '')} {fields['route']}".strip()
                key = IssueKey(("upstream", str(fields["upstream"]), what), str(fields["error"]))
                reference = str(fields.get("tracking_id") or "")
            elif "source" in fields:
                what = str(fields.get("event_type") or "event")
                key = IssueKey(("source", str(fields["source"]), what), str(fields["error"]))
                reference = str(fields.get("event_id") or "")
            else:
                return
            failure = RecentFailure(record.created, what, key.error, message[:500], reference)
            self.monitor.record_failure(key, failure)
        except Exception:  # a logging handler must never raise into the code that logged
            self.handleError(record)
