"""Helpers for inbox tests: call the ASGI app in-process, sign GitHub-style requests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import interlock
from interlock.inbox import InboxApp

SECRET = "test-secret"


async def until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until ``predicate()`` is true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def github_headers(body: bytes, delivery: str, event: str = "push", secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, reads: int) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.reads = reads

    def json(self) -> Any:
        import json

        return json.loads(self.body)


async def call(
    app: InboxApp,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    chunks: list[bytes] | None = None,
    content_length: bool = True,
) -> Reply:
    """One HTTP request straight into the ASGI callable; counts how many body reads it made."""
    hdrs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    parts = chunks if chunks is not None else [body]
    if content_length:
        hdrs.append((b"content-length", str(sum(map(len, parts))).encode()))
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": hdrs}
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads <= len(parts):
            return {"type": "http.request", "body": parts[reads - 1], "more_body": reads < len(parts)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return Reply(
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
        reads,
    )


@pytest.fixture
def caller() -> Callable[..., Any]:
    return call


@pytest.fixture
async def inbox(sqlite_path: str) -> AsyncIterator[interlock.Inbox]:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}")
    box.source("github", interlock.signatures.GitHub(SECRET), max_body=1024)
    try:
        yield box
    finally:
        await box.aclose()
