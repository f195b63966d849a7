"""202 jobs over real uvicorn and real SQLite / PostgreSQL: Location, the status resource,
retries and the DLQ, signed callbacks through the outbound Client, and a SIGKILLed worker."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

import interlock
from interlock.core.backoff import Backoff
from interlock.errors import ConfigError, PermanentFailure
from interlock.inbox.signatures import StandardWebhooks
from interlock.server import Job, Jobs, PostgresJobStore
from interlock.stores import PostgresQueue

from .conftest import serve

SECRET = "whsec_" + base64.b64encode(b"a-test-secret-of-32-bytes-length").decode()
FAST = interlock.Redelivery(attempts=3, backoff=Backoff(base=0.01, cap=0.05, jitter="none"))


def api(jobs: Jobs) -> Starlette:
    async def start(request: Request) -> Any:
        body = await request.json()
        return await jobs.accepted(
            body.get("task", "export"), body.get("params"), callback_url=body.get("callback_url")
        )

    return Starlette(routes=[Route("/exports", start, methods=["POST"]), Mount("/jobs", jobs.app)])


@pytest.fixture
async def jobs(sqlite_path: str) -> AsyncIterator[Jobs]:
    async with Jobs(store=sqlite_path, redelivery=FAST, callback_secret=SECRET,
                    callback_redelivery=FAST) as j:  # fmt: skip
        yield j


async def poll(http: httpx.AsyncClient, url: str, until: set[str], seconds: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        while True:
            r = await http.get(url)
            assert r.status_code == 200, r.text
            if r.json()["status"] in until:
                return dict(r.json())
            await asyncio.sleep(0.02)


async def test_202_location_then_running_with_progress_then_the_result(jobs: Jobs) -> None:
    go_on = asyncio.Event()
    seen: list[Any] = []

    @jobs.task("export")
    async def export(job: Job) -> dict[str, Any]:
        seen.append((job.params, job.attempt, interlock.current_correlation_id()))
        await job.progress(0.5, "half the rows")
        await asyncio.wait_for(go_on.wait(), 20.0)
        return {"rows": job.params["rows"], "url": "https://files.example.com/e.csv"}

    worker = jobs.worker(visibility=5.0).start()
    try:
        async with serve(api(jobs)) as base, httpx.AsyncClient(base_url=base) as http:
            r = await http.post(
                "/exports", json={"params": {"rows": 3}}, headers={"x-request-id": "ignored-here"}
            )
            assert r.status_code == 202
            location = r.headers["location"]
            assert location == f"/jobs/{r.json()['id']}"
            assert r.json()["status"] == "queued"
            running = await poll(http, location, {"running"})
            while running["progress"] is None:
                running = (await http.get(location)).json()
            head = await http.get(location)
            assert head.headers["retry-after"] == "1" and head.headers["cache-control"] == "no-store"
            assert (running["progress"], running["message"], running["attempts"]) == (0.5, "half the rows", 1)
            go_on.set()
            done = await poll(http, location, {"succeeded", "failed"})
            final = await http.get(location)
    finally:
        await worker.aclose()
    assert done["status"] == "succeeded", done
    assert done["result"] == {"rows": 3, "url": "https://files.example.com/e.csv"}
    assert done["error"] is None and done["finished_at"] >= done["started_at"] >= done["created_at"]
    assert "retry-after" not in final.headers
    assert "callback_url" not in done
    assert seen[0][:2] == ({"rows": 3}, 1)
    assert seen[0][2]  # the task runs under a correlation id


async def test_the_request_id_follows_the_job_to_the_worker(jobs: Jobs) -> None:
    ids: list[str | None] = []

    @jobs.task("export")
    async def export(job: Job) -> None:
        ids.append(interlock.current_correlation_id())

    with interlock.correlation_id("req-42"):
        status = await jobs.submit("export", {})
    worker = jobs.worker().start()
    try:
        await jobs.wait(status.id, 30.0)
    finally:
        await worker.aclose()
    assert ids == ["req-42"]


async def test_retries_on_the_schedule_then_succeeds(jobs: Jobs) -> None:
    @jobs.task("flaky")
    async def flaky(job: Job) -> str:
        if job.attempt < 3:
            raise RuntimeError(f"upstream hiccup {job.attempt}")
        return "ok"

    status = await jobs.submit("flaky")
    worker = jobs.worker().start()
    try:
        done = await jobs.wait(status.id, 30.0)
    finally:
        await worker.aclose()
    assert (done.state, done.result, done.attempts, done.error) == ("succeeded", "ok", 3, None)


async def test_a_job_failing_every_attempt_fails_and_is_dead_lettered(jobs: Jobs) -> None:
    @jobs.task("broken")
    async def broken(job: Job) -> None:
        raise RuntimeError(f"boom {job.attempt}")

    status = await jobs.submit("broken")
    worker = jobs.worker().start()
    try:
        done = await jobs.wait(status.id, 30.0)
        async with asyncio.timeout(20):
            while await jobs.queue.count_dead() == 0:
                await asyncio.sleep(0.02)
    finally:
        await worker.aclose()
    assert (done.state, done.attempts) == ("failed", 3)
    assert done.error is not None and "boom 3" in done.error
    [dead] = await jobs.queue.dead_letters()
    assert dead.message.id == status.id and dead.attempts == 3


async def test_a_permanent_failure_fails_at_once_and_a_non_json_result_fails(jobs: Jobs) -> None:
    @jobs.task("invalid")
    async def invalid(job: Job) -> None:
        raise PermanentFailure("the export format 'xls' is not supported")

    @jobs.task("odd")
    async def odd(job: Job) -> object:
        return object()

    first = await jobs.submit("invalid")
    second = await jobs.submit("odd")
    worker = jobs.worker().start()
    try:
        a = await jobs.wait(first.id, 30.0)
        b = await jobs.wait(second.id, 30.0)
    finally:
        await worker.aclose()
    assert (a.state, a.attempts) == ("failed", 1) and "xls" in (a.error or "")
    assert (b.state, b.attempts) == ("failed", 1) and "not JSON" in (b.error or "")


async def test_signed_callback_through_the_client_retried_after_a_503(jobs: Jobs) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        # The first two calls fail: the Client retries one itself, the queue schedules the next.
        return Response(status_code=503 if len(received) <= 4 else 204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    @jobs.task("export")
    async def export(job: Job) -> dict[str, int]:
        return {"rows": 9}

    async with serve(receiver) as hook_base:
        async with serve(api(jobs)) as base, httpx.AsyncClient(base_url=base) as http:
            r = await http.post("/exports", json={"callback_url": f"{hook_base}/hook?token=t0ken"})
            assert r.status_code == 202
            job_id = r.json()["id"]
            worker = jobs.worker().start()
            try:
                async with asyncio.timeout(60):
                    while len(received) < 5 or (await jobs.callback_queue.stats()).pending:
                        await asyncio.sleep(0.02)
            finally:
                await worker.aclose()
    assert len(received) == 5
    ids = {h["webhook-id"] for h, _ in received}
    assert len(ids) == 1  # one message id across every retry: the receiver's dedupe key
    headers, body = received[-1]
    event = json.loads(body)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job_id and event["data"]["result"] == {"rows": 9}
    # Verified by the reference implementation and by Interlock's own Inbox verifier.
    assert Webhook(SECRET).verify(body, headers) == event
    StandardWebhooks(SECRET).verify(body, headers, now=float(headers["webhook-timestamp"]))
    wrong = dict(headers, **{"webhook-signature": headers["webhook-signature"][:-4] + "AAA="})
    with pytest.raises(Exception):
        Webhook(SECRET).verify(body, wrong)


async def test_bad_requests_are_4xx_problem_details(jobs: Jobs) -> None:
    @jobs.task("export")
    async def export(job: Job) -> None:
        return None

    async with serve(api(jobs)) as base, httpx.AsyncClient(base_url=base) as http:
        bad_url = await http.post("/exports", json={"callback_url": "file:///etc/passwd"})
        creds = await http.post("/exports", json={"callback_url": "https://u:p@example.com/h"})
        huge = await http.post("/exports", json={"params": "x" * 70_000})
        unknown = await http.get("/jobs/0123456789abcdef01234567")
        malformed = await http.get("/jobs/not a valid id!")
        write = await http.delete("/jobs/0123456789abcdef01234567")
    for r in (bad_url, creds, huge):
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/job-rejected")
    assert "http" in bad_url.json()["detail"] and "credentials" in creds.json()["detail"]
    assert "p@" not in creds.text
    assert (unknown.status_code, malformed.status_code) == (404, 404)
    assert unknown.json()["type"].endswith("/job-not-found")
    assert (write.status_code, write.headers["allow"]) == (405, "GET, HEAD")


async def test_callback_hosts_allow_list(sqlite_path: str) -> None:
    async with Jobs(store=sqlite_path, callback_hosts=["hooks.example.com"]) as jobs:

        @jobs.task("t")
        async def t(job: Job) -> None:
            return None

        await jobs.submit("t", callback_url="https://hooks.example.com/x")
        with pytest.raises(interlock.server.JobRejected, match="not one this API calls back"):
            await jobs.submit("t", callback_url="http://169.254.169.254/latest")


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="location"):
        Jobs(store="x.db", location="/jobs/")
    with pytest.raises(ConfigError, match="callback_secret"):
        Jobs(store="x.db", callback_secret="whsec_%%%")
    jobs = Jobs(store="x.db")
    with pytest.raises(ConfigError, match="async"):
        jobs.task("sync")(lambda job: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="task"):
        jobs.task("bad name")
    assert not Path("x.db").exists()  # nothing is created before open()


@pytest.mark.postgres
async def test_jobs_on_postgresql(postgres_dsn: str, postgres_schema: str) -> None:
    jobs = Jobs(
        store=PostgresJobStore(postgres_dsn, schema=postgres_schema),
        queue=PostgresQueue(postgres_dsn, schema=postgres_schema, table="job_queue"),
        callback_queue=PostgresQueue(postgres_dsn, schema=postgres_schema, table="job_callbacks"),
        redelivery=FAST,
    )

    @jobs.task("sum")
    async def total(job: Job) -> int:
        if job.attempt == 1:
            raise RuntimeError("first try fails")
        await job.progress(1.0)
        return sum(job.params)

    async with jobs:
        status = await jobs.submit("sum", [1, 2, 3])
        worker = jobs.worker().start()
        try:
            done = await jobs.wait(status.id, 30.0)
        finally:
            await worker.aclose()
    assert (done.state, done.result, done.attempts, done.progress) == ("succeeded", 6, 2, 1.0)


WORKER = Path(__file__).with_name("_jobs_worker.py")


def _spawn_worker(db: str, visibility: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JOBS_DB": db, "JOBS_VISIBILITY": visibility}
    return subprocess.Popen([sys.executable, str(WORKER)], env=env)


@pytest.mark.slow
async def test_a_worker_sigkilled_mid_job_leaves_no_job_running(sqlite_path: str, tmp_path: Path) -> None:
    """A real worker process is SIGKILLed while the job runs; a second worker leases the job once
    the lease expires, runs it again (attempt 2) and it reaches ``succeeded``."""
    async with Jobs(store=sqlite_path) as jobs:

        @jobs.task("export")
        async def export(job: Job) -> None:  # registered here only so that submit accepts it
            return None

        status = await jobs.submit("export", {"marker": str(tmp_path / "started")})
        first = _spawn_worker(sqlite_path, "1.0")
        try:
            async with asyncio.timeout(60):
                while (s := await jobs.status(status.id)) is not None and s.state != "running":
                    await asyncio.sleep(0.02)
                while not (tmp_path / "started").exists():
                    await asyncio.sleep(0.02)
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(30) == -signal.SIGKILL
            killed = await jobs.status(status.id)
            assert killed is not None and (killed.state, killed.attempts) == ("running", 1)
            second = _spawn_worker(sqlite_path, "1.0")
            try:
                done = await jobs.wait(status.id, 60.0)
            finally:
                second.terminate()
                second.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(30)
    assert (done.state, done.attempts) == ("succeeded", 2)
    assert done.result == {"attempt": 2, "pid": second.pid}


async def test_finished_jobs_are_pruned_after_the_retention(sqlite_path: str) -> None:
    retention = interlock.inbox.Retention(done=0.05, dead=0.05, every=3600.0)
    async with Jobs(store=sqlite_path, retention=retention) as jobs:

        @jobs.task("t")
        async def t(job: Job) -> int:
            return 1

        finished = await jobs.submit("t")
        worker = jobs.worker().start()
        try:
            await jobs.wait(finished.id, 30.0)
        finally:
            await worker.aclose()
        pending = await jobs.submit("t")  # not finished: never pruned
        await asyncio.sleep(0.2)
        assert await jobs.prune() == 2  # the status row and the acked queue message
        assert await jobs.status(finished.id) is None
        assert (await jobs.status(pending.id)) is not None
        assert (await jobs.queue.stats()).pending == 1


async def test_a_failed_job_replayed_from_the_dead_letter_queue_runs_again(jobs: Jobs) -> None:
    fixed = False

    @jobs.task("export")
    async def export(job: Job) -> str:
        if not fixed:
            raise PermanentFailure("bucket missing")
        return "exported"

    status = await jobs.submit("export")
    worker = jobs.worker().start()
    try:
        failed = await jobs.wait(status.id, 30.0)
        async with asyncio.timeout(20):
            while await jobs.queue.count_dead() == 0:
                await asyncio.sleep(0.02)
        fixed = True  # the operator fixed the cause, then replays
        assert await jobs.queue.replay(interlock.inbox.DeadLetterFilter(ids=[status.id])) == 1
        async with asyncio.timeout(30):
            while (again := await jobs.status(status.id)) is not None and again.state != "succeeded":
                await asyncio.sleep(0.02)
    finally:
        await worker.aclose()
    assert failed.state == "failed"
    assert again is not None and (again.state, again.result, again.error) == ("succeeded", "exported", None)


async def test_show_errors_false_keeps_internals_out_of_the_status_resource(sqlite_path: str) -> None:
    async with Jobs(store=sqlite_path, show_errors=False) as jobs:

        @jobs.task("leaky")
        async def leaky(job: Job) -> None:
            raise PermanentFailure("db password=hunter2 at /srv/app/tasks.py")

        status = await jobs.submit("leaky")
        worker = jobs.worker().start()
        try:
            kept = await jobs.wait(status.id, 30.0)
        finally:
            await worker.aclose()
        async with serve(api(jobs)) as base, httpx.AsyncClient(base_url=base) as http:
            shown = (await http.get(jobs.location_of(status.id))).json()
    assert (shown["status"], shown["error"]) == ("failed", "the job failed")
    assert "hunter2" in (kept.error or "")  # the operator still sees why (status(), the DLQ)
