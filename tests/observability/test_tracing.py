"""Spans of the Inbox and Sync, read from the SDK's in-memory exporter: names, kinds, parents,
links and attribute sets as the OpenTelemetry semantic conventions give them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode

import interlock
from interlock import _otel

from ._hooks import PARENT, SECRET, TRACE, _github, asgi_post, until


async def test_webhook_server_create_and_process_spans_share_the_senders_trace(
    spans: Any, sqlite_path: str
) -> None:
    box = interlock.Inbox(store=sqlite_path)
    box.source("github", interlock.signatures.GitHub(SECRET))
    seen: list[interlock.Event] = []
    box.add_handler("github", "push", seen.append)
    body = json.dumps({"ref": "main"}).encode()
    headers = {
        **_github(body, "d-1"),
        "traceparent": f"00-{TRACE}-{PARENT}-01",
        "User-Agent": "GitHub-Hookshot/1",
    }
    try:
        assert await asgi_post(box.asgi(), "/hooks/github", body, headers) == 200
        box.start_workers(concurrency=1)
        await until(lambda: seen and spans.named("process"))
    finally:
        await box.aclose()
    server, create, process = spans.one("POST"), spans.one("create"), spans.one("process")
    assert server.name == "POST /hooks/{source}" and server.kind is SpanKind.SERVER
    assert f"{server.context.trace_id:032x}" == TRACE and f"{server.parent.span_id:016x}" == PARENT
    assert dict(server.attributes) == {
        "http.request.method": "POST", "http.route": "/hooks/{source}", "url.path": "/hooks/github",
        "url.scheme": "http", "server.address": "127.0.0.1", "server.port": 8000, "client.address": "10.0.0.9",
        "user_agent.original": "GitHub-Hookshot/1", "http.response.status_code": 200,
    }  # fmt: skip
    assert create.kind is SpanKind.PRODUCER and create.parent.span_id == server.context.span_id
    messaging = {
        "messaging.system": "interlock",
        "messaging.destination.name": "github",
        "messaging.message.id": "d-1",
        "interlock.event.type": "push",
    }
    assert dict(create.attributes) == {
        **messaging,
        "messaging.operation.type": "create",
        "messaging.operation.name": "create",
        "interlock.duplicate": False,
    }
    assert process.name == "process github" and process.kind is SpanKind.CONSUMER
    assert process.context.trace_id == server.context.trace_id  # one trace through the queue
    assert process.parent.span_id == create.context.span_id
    assert [link.context.span_id for link in process.links] == [create.context.span_id]
    assert dict(process.attributes) == {
        **messaging,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "interlock.attempt": 1,
    }
    # The context is stored with the event; the sender's own headers are untouched.
    assert seen[0].headers[_otel.TRACEPARENT].split("-")[1] == TRACE
    assert seen[0].headers["traceparent"] == f"00-{TRACE}-{PARENT}-01"


async def test_a_refused_webhook_is_a_4xx_span_without_error_and_a_failing_handler_is_an_error(
    spans: Any, sqlite_path: str
) -> None:
    box = interlock.Inbox(store=sqlite_path, redelivery=interlock.Redelivery(attempts=1))
    box.source("github", interlock.signatures.GitHub(SECRET))

    def broken(event: interlock.Event) -> None:
        raise RuntimeError("no database")

    box.add_handler("github", "push", broken)
    body = b'{"ref":"main"}'
    try:
        assert (
            await asgi_post(
                box.asgi(),
                "/hooks/github",
                body,
                {**_github(body, "d-2"), "X-Hub-Signature-256": "sha256=00"},
            )
            == 401
        )
        refused = spans.one("POST")
        assert refused.attributes["http.response.status_code"] == 401
        assert refused.status.status_code is StatusCode.UNSET and "error.type" not in refused.attributes
        assert spans.named("create") == []  # nothing stored
        assert await asgi_post(box.asgi(), "/hooks/github", body, _github(body, "d-2")) == 200
        box.start_workers(concurrency=1)
        await until(lambda: spans.named("process"))
    finally:
        await box.aclose()
    process = spans.one("process")
    assert process.status.status_code is StatusCode.ERROR
    assert [e.name for e in process.events] == ["exception"]
    assert process.events[0].attributes["exception.type"] == "RuntimeError"


async def test_the_trace_survives_a_restart_between_receipt_and_processing(
    spans: Any, sqlite_path: str
) -> None:
    first = interlock.Inbox(store=sqlite_path)
    first.source("github", interlock.signatures.GitHub(SECRET))
    body = b'{"ref":"main"}'
    try:
        assert await asgi_post(first.asgi(), "/hooks/github", body, _github(body, "d-3")) == 200
    finally:
        await first.aclose()
    server = spans.one("POST")
    second = interlock.Inbox(store=sqlite_path)  # another process, later: only the store is shared
    second.source("github", interlock.signatures.GitHub(SECRET))
    second.add_handler("github", "push", lambda e: None)
    try:
        second.start_workers(concurrency=1)
        await until(lambda: spans.named("process"))
    finally:
        await second.aclose()
    assert spans.one("process").context.trace_id == server.context.trace_id


def test_without_a_tracer_provider_nothing_is_traced_nor_imported() -> None:
    import subprocess
    import sys

    code = (
        "import sys, interlock, interlock.logging\n"
        "from interlock import _otel\n"
        "print('opentelemetry' in sys.modules, _otel.tracer())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "None"]  # the API's proxy provider: no SDK, no spans


async def test_tracing_switched_off_leaves_events_untouched(sqlite_path: str) -> None:
    assert _otel.tracer() is None
    box = interlock.Inbox(store=sqlite_path)
    box.internal_source("jobs")
    seen: list[interlock.Event] = []
    box.add_handler("jobs", "*", seen.append)
    try:
        await box.submit("jobs", "run", {"a": 1}, id="j1")
        box.start_workers(concurrency=1)
        await until(lambda: seen)
    finally:
        await box.aclose()
    assert _otel.TRACEPARENT not in seen[0].headers


async def test_sync_poll_page_and_write_spans(spans: Any, sqlite_path: str) -> None:
    from interlock.testbed import Testbed, TestbedConfig

    async with Testbed(TestbedConfig(records=12, kinds=("customers", "mirror"))) as tb:
        async with interlock.Client(tb.url) as client:
            written: list[Any] = []

            async def keep(record: interlock.SyncRecord) -> None:
                written.append(record.id)

            source = interlock.SyncSource(client, "/customers", page_size=5)
            async with interlock.Sync(
                "crm", source=source, destination=keep, store=f"sqlite:///{sqlite_path}"
            ) as sync:
                report = await sync.run_once()
    assert report.applied == 12
    poll = spans.one("sync.poll")
    pages = spans.named("sync.page")
    writes = spans.named("sync.write")
    assert poll.name == "sync.poll crm"
    assert {k: poll.attributes[k] for k in ("interlock.sync.job", "interlock.sync.read", "interlock.sync.applied")} == {
        "interlock.sync.job": "crm", "interlock.sync.read": 12, "interlock.sync.applied": 12,
    }  # fmt: skip
    assert len(pages) == 3 and sorted(p.attributes["interlock.sync.items"] for p in pages) == [2, 5, 5]
    assert all(p.parent.span_id == poll.context.span_id for p in pages)
    assert len(writes) == 12
    page_ids = {p.context.span_id for p in pages}
    assert all(
        w.parent.span_id in page_ids and w.attributes["interlock.sync.outcome"] == "applied" for w in writes
    )
    assert {w.context.trace_id for w in [poll, *pages, *writes]} == {poll.context.trace_id}


def test_a_log_line_written_inside_a_span_carries_its_ids(spans: Any) -> None:
    import io
    import logging

    from opentelemetry import trace

    import interlock.logging as ilog

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(ilog.JSONFormatter())
    logger = logging.getLogger("interlock.spantest")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with trace.get_tracer("t").start_as_current_span("work") as span:
            logger.info("inside")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    ctx = span.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert "trace_id" not in outside


async def test_one_trace_across_processes_through_real_uvicorn(spans: Any, sqlite_path: str) -> None:
    """The webhook is received by another process (real uvicorn, its own SDK); this one
    processes it later from the shared store, and continues the same trace."""
    import os
    import subprocess
    import sys

    import aiohttp

    child = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), "_receiver.py"), sqlite_path],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        port = json.loads(await asyncio.to_thread(child.stdout.readline))["port"]
        body = b'{"ref":"main"}'
        headers = {**_github(body, "d-x"), "traceparent": f"00-{TRACE}-{PARENT}-01"}
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # until uvicorn listens
                try:
                    async with session.post(
                        f"http://127.0.0.1:{port}/hooks/github", data=body, headers=headers
                    ) as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        received = [json.loads(await asyncio.to_thread(child.stdout.readline)) for _ in range(2)]
    finally:
        child.terminate()
        child.wait(10)
        child.stdout.close()
    create = next(s for s in received if s["name"] == "create github")
    assert {s["trace_id"] for s in received} == {TRACE}
    box = interlock.Inbox(store=sqlite_path)
    box.source("github", interlock.signatures.GitHub(SECRET))
    box.add_handler("github", "push", lambda e: None)
    try:
        box.start_workers(concurrency=1)
        await until(lambda: spans.named("process"))
    finally:
        await box.aclose()
    process = spans.one("process")
    assert f"{process.context.trace_id:032x}" == TRACE
    assert f"{process.parent.span_id:016x}" == create["span_id"]


async def test_a_sender_cannot_choose_the_stored_trace_context(sqlite_path: str) -> None:
    box = interlock.Inbox(store=sqlite_path)
    box.source("github", interlock.signatures.GitHub(SECRET))
    seen: list[interlock.Event] = []
    box.add_handler("github", "push", seen.append)
    body = b'{"ref":"main"}'
    forged = {**_github(body, "d-f"), _otel.TRACEPARENT: f"00-{TRACE}-{PARENT}-01"}
    try:
        assert await asgi_post(box.asgi(), "/hooks/github", body, forged) == 200
        box.start_workers(concurrency=1)
        await until(lambda: seen)
    finally:
        await box.aclose()
    assert _otel.TRACEPARENT not in seen[0].headers  # tracing off: nothing stored, nothing kept


async def test_a_202_job_continues_the_trace_of_the_request_that_submitted_it(
    spans: Any, sqlite_path: str
) -> None:
    from opentelemetry import trace

    from interlock.server.jobs import Job, Jobs

    ran: list[str] = []
    async with Jobs(store=sqlite_path) as jobs:

        @jobs.task("export")
        async def export(job: Job) -> dict[str, Any]:
            ran.append(job.id)
            return {"rows": 3}

        with trace.get_tracer("app").start_as_current_span("POST /exports") as request_span:
            status = await jobs.submit("export", {"since": "2026-01-01"})
        worker = jobs.worker(concurrency=1).start()
        try:
            await until(lambda: ran and spans.named("process jobs"))
        finally:
            await worker.aclose()
    create, process = spans.one("create jobs"), spans.one("process jobs")
    assert create.parent.span_id == request_span.get_span_context().span_id
    assert process.parent.span_id == create.context.span_id
    assert process.context.trace_id == request_span.get_span_context().trace_id
    assert (
        create.attributes["messaging.message.id"] == status.id == process.attributes["messaging.message.id"]
    )
    assert create.attributes["interlock.event.type"] == "export"
