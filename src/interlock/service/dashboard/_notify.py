"""Issues and firing alerts posted to a webhook URL (Slack-compatible JSON: ``{"text": ...}``).

Posted through the outbound ``Client`` with the background profile (retries, breaker, a long
deadline), from a bounded queue: at most ``MAX_PENDING`` notifications wait; past it the oldest
is dropped and counted, so a dead webhook never grows memory. The URL may hold a secret (Slack's
do): it is never logged; ``repr`` shows its origin only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from ...client import Client
from ...core.failure_groups import Issue, Transition
from ...errors import CallError

__all__ = ["Notifier"]

MAX_PENDING = 100
log = logging.getLogger("interlock.service")


class Notifier:
    """Posts what the dashboard's ``Monitor`` tells it (``issue`` and ``alert``) to ``url``."""

    def __init__(self, url: str, *, client: Client | None = None, dashboard_url: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the alerts webhook must be an http(s) URL")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._client = client or Client(self._origin, name="alerts-webhook", profile="background")
        self._own_client = client is None
        self._pending: deque[dict[str, Any]] = deque(maxlen=MAX_PENDING)
        self._wake = asyncio.Event()
        self.dashboard_url = dashboard_url.rstrip("/")
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return f"Notifier({self._origin}/***, pending={len(self._pending)}, sent={self.sent})"

    def issue(self, transition: Transition, issue: Issue) -> None:
        """Queue a post about an issue that opened, reopened or resolved itself."""
        link = f" {self.dashboard_url}/issues" if self.dashboard_url else ""
        verb = {"opened": "New issue", "reopened": "Issue back", "resolved": "Resolved"}[transition.value]
        text = f"{verb}: {issue.key.title} ({issue.count}x, last {issue.last_reference or 'n/a'}){link}"
        self._queue(
            {"text": text, "interlock": {"kind": "issue", "transition": transition.value, "id": issue.id}}
        )

    def alert(self, name: str, badge: dict[str, Any]) -> None:
        """Queue a post about a badge that turned to firing."""
        text = f"Firing: {name}: {badge['detail']}"
        self._queue({"text": text, "interlock": {"kind": "alert", "name": name, "rule": badge["rule"]}})

    def _queue(self, payload: dict[str, Any]) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(payload)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Post queued notifications until ``stop`` is set, then close the client it made."""
        try:
            while not stop.is_set():
                while self._pending and not stop.is_set():
                    payload = self._pending.popleft()
                    try:
                        await self._client.post(self._path, json=payload)
                        self.sent += 1
                    except CallError as exc:
                        self.failed += 1
                        log.warning("alerts webhook %s/...: %s", self._origin, exc.__class__.__name__)
                self._wake.clear()
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
        finally:
            if self._own_client:
                await self._client.aclose()
