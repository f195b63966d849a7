"""A stream authenticates with the Client's own credentials (``Client(auth=...)``), as its calls do."""

from __future__ import annotations

import asyncio

from aiohttp import web

import interlock
from interlock.auth import Bearer

from .conftest import FAST, Recorder, until


async def test_the_stream_carries_the_clients_credentials(db: str) -> None:
    seen: list[str | None] = []
    finished = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer t0ken-for-streams":
            return web.Response(status=401)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in (1, 2):
            await response.write(f'id: {i}\nevent: thing.changed\ndata: {{"n": {i}}}\n\n'.encode())
        await finished.wait()  # kept open until the test is done
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    inbox = interlock.Inbox(store=db)
    client = interlock.Client(f"http://127.0.0.1:{port}", auth=Bearer("t0ken-for-streams"))
    inbox.subscribe("crm", interlock.EventStream.sse(client, "/events", policy=FAST))
    recorder = Recorder()
    inbox.add_handler("crm", "*", recorder)
    inbox.start_workers(concurrency=1)
    try:
        await until(lambda: len(recorder.seen) == 2)
        assert seen[0] == "Bearer t0ken-for-streams"
        assert [i for i, _, _ in recorder.seen] == ["1", "2"]
    finally:
        finished.set()
        await inbox.aclose()
        await client.aclose()
        await runner.cleanup()
