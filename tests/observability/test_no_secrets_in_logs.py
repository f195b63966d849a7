"""A full run (webhooks in, a handler calling an upstream that fails and then recovers, retries,
the DLQ, a sync poll, the interaction log) logged at DEBUG through ``interlock.logging``: not
one line of it shows a secret the run used."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from typing import Any

import pytest

import interlock
import interlock.logging as ilog
from interlock import Backoff, Client, InteractionLog, Redelivery, Retry

from ._hooks import SECRET, _github, asgi_post

TOKEN = "sk_live_T0KEN51"
API_KEY = "QK3Y-9981"
PASSWORD = "pw-H1DDEN"
CARD = "4000056655665556"
COOKIE = "sess-C00KIE7"
SECRETS = (TOKEN, API_KEY, PASSWORD, CARD, COOKIE, SECRET)


async def test_no_log_line_of_a_full_run_shows_a_secret(
    upstream: Any, sqlite_path: str, tmp_path: Any
) -> None:
    out = io.StringIO()
    handler = ilog.configure(level="DEBUG", stream=out, json_paths=["$.card.number"])
    try:
        await _run(upstream, sqlite_path, str(tmp_path))
        logging.getLogger("interlock.test").info(
            "handler saw %s", json.dumps({"card": {"number": CARD}}), extra={"cookie": COOKIE}
        )
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    lines = out.getvalue().splitlines()
    assert len(lines) > 10  # the run did log: retries, dead letters, calls
    records = [json.loads(line) for line in lines]  # every line one JSON object
    assert any(r["logger"] == "interlock.client" and r.get("status") == 503 for r in records)
    assert any(r["logger"] == "interlock.inbox" and "dead-lettered" in r["message"] for r in records)
    leaks = [(s, line) for line in lines for s in SECRETS if s in line]
    assert leaks == []


async def _run(upstream: Any, sqlite_path: str, tmp: str) -> None:
    upstream.script = [503, 503, 503, 503, 500]
    client = Client(
        upstream.url, retry=Retry(attempts=2, backoff=Backoff(base=0.001, cap=0.002), budget=None), breaker=None,
        headers={"Authorization": f"Bearer {TOKEN}", "Cookie": COOKIE},
        interactions=InteractionLog(store=f"{tmp}/log.db", sample=1.0, json_paths=["$.card.number"]),
    )  # fmt: skip
    box = interlock.Inbox(
        store=sqlite_path, redelivery=Redelivery(attempts=2, backoff=Backoff(delays=[0.01], jitter="none"))
    )
    box.source("github", interlock.signatures.GitHub(SECRET))
    handled: list[str] = []

    @box.handler("github", "push")
    async def charge(event: interlock.Event) -> None:
        card = event.json()["card"]
        if event.json()["n"] == 2:
            raise interlock.errors.PermanentFailure("card declined by the bank")
        await client.post("/charges", params={"api_key": API_KEY}, json={"card": card})
        handled.append(event.id)

    try:
        for i in range(3):
            body = json.dumps({"card": {"number": CARD}, "n": i}).encode()
            headers = {**_github(body, f"d-{i}"), "Authorization": f"Bearer {TOKEN}", "Cookie": COOKIE}
            assert await asgi_post(box.asgi(), "/hooks/github", body, headers) == 200
        bad = b'{"card": {"number": "' + CARD.encode() + b'"}}'
        assert (
            await asgi_post(
                box.asgi(), "/hooks/github", bad, {**_github(bad, "d-x"), "X-Hub-Signature-256": "sha256=0"}
            )
            == 401
        )
        box.start_workers(concurrency=2)
        deadline = time.monotonic() + 20
        while len(handled) + await box.dlq.count() < 3:
            assert time.monotonic() < deadline, "the run did not finish"
            await asyncio.sleep(0.02)
        await client.get("/customers/1", params={"token": API_KEY})
        kept = await client.interactions()
        assert kept
        # Basic credentials in the URL, and an upstream that is down.
        async with Client(upstream.url.replace("http://", f"http://user:{PASSWORD}@"), retry=None) as basic:
            assert (await basic.get("/me")).status == 200
        async with Client(f"http://user:{PASSWORD}@127.0.0.1:9/x?api_key={API_KEY}", retry=None) as down:
            with pytest.raises(interlock.errors.ConnectError):
                await down.get("/y")
    finally:
        await box.aclose()
        await client.aclose()
