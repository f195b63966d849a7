"""``Jobs``: long work answered ``202 Accepted`` and finished in the background (RFC 9110
section 15.3.3: "the request has been accepted for processing, but the processing has not been
completed").

::

    jobs = interlock.Jobs(store="sqlite:///jobs.db", callback_secret="whsec_...")

    @jobs.task("export")
    async def export(job: Job) -> dict:
        await job.progress(0.5, "half the rows written")
        return {"url": "https://files.example.com/e/1.csv"}

    @app.post("/exports")
    async def start(request: Request):
        return await jobs.accepted("export", await request.json(),
                                   callback_url=request.headers.get("callback-url"))

    app.mount("/jobs", jobs.app)        # GET /jobs/{id}: the status resource

and in a worker process (or the API's lifespan) ``await jobs.worker().run()``.

``accepted`` answers ``202`` with ``Location: /jobs/{id}`` and the status; ``GET /jobs/{id}``
shows ``queued`` / ``running`` / ``succeeded`` / ``failed`` with progress, result or error
(``Retry-After`` while not finished). Jobs travel on a leased ``Queue`` (the Inbox's): retries
on the ``redelivery`` schedule, heartbeats, the dead-letter queue; a worker killed mid-job lets
its lease expire and another worker runs the job again. On a terminal state a job given a
``callback_url`` is POSTed there, signed per Standard Webhooks with ``callback_secret``, through
the outbound ``Client`` (``callback_client``), retried on ``callback_redelivery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .. import _otel
from .._clock import SYSTEM_CLOCK, Clock
from .._ids import current_correlation_id
from .._lifecycle import opens_once
from .._validate import check_count
from ..client import Client
from ..core.backoff import Backoff
from ..core.redelivery import Redelivery
from ..errors import ConfigError
from ..inbox import Pruner, Retention, WorkerPool, WorkerSettings
from ..stores import Message, Queue, open_queue
from ._asgi import Receive, Scope, Send, problem, send_problem
from ._callback import CallbackClients, callback_url_problem, decode_secret
from ._jobstore import JobStatus, JobStore, PostgresJobStore, SQLiteJobStore
from ._jobworker import CALLBACK_SOURCE, JOB_SOURCE, Job, JobRunner, TaskFn

__all__ = [
    "Job",
    "JobRejected",
    "JobStatus",
    "JobStatusApp",
    "JobStore",
    "JobWorker",
    "Jobs",
    "PostgresJobStore",
    "SQLiteJobStore",
]

log = logging.getLogger("interlock.server.jobs")

HIDDEN_ERROR = "the job failed"
"""What the status resource and callbacks show for an error when ``show_errors=False``."""

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TASK = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class JobRejected(ValueError):
    """A submission the API must refuse with a 400: ``detail`` says why (a bad callback URL,
    parameters too large). ``Jobs.accepted`` turns it into the problem-details answer."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _stores(url: str) -> tuple[JobStore, Queue, Queue]:
    if url.startswith(("postgres://", "postgresql://")):
        store: JobStore = PostgresJobStore(url)
    else:
        store = SQLiteJobStore(url)
    queue = open_queue(url, table="interlock_job_queue", owner="Jobs", field="store")
    callbacks = open_queue(url, table="interlock_job_callbacks", owner="Jobs", field="store")
    return store, queue, callbacks


class Jobs:
    """202 jobs; see the module docstring.

    ``store``: a URL (``sqlite:///jobs.db``, a path, or ``postgresql://...``) for the status
    table and both queues, or a ``JobStore`` (then ``queue`` and ``callback_queue`` are required).
    ``redelivery``: runs per job and the backoff between them (3 runs by default); a task that
    raises ``interlock.errors.PermanentFailure`` fails at once. ``callback_secret``: the
    ``whsec_`` secret callbacks are signed with (None: unsigned). ``callback_hosts``: the hosts a
    caller may name in ``callback_url`` (None: any host; set it on a public API).
    ``location``: the status URL template (``/jobs/{id}``, where ``app`` is mounted).
    ``max_params`` / ``max_result``: bytes of JSON a job's parameters and result may take.
    ``retention``: how long finished jobs stay readable (``done``: 7 days; their status rows and
    queue messages) and dead letters stay replayable (``dead``: 30 days); workers prune every
    ``retention.every`` seconds, and ``prune()`` does it once. ``show_errors=False`` keeps
    the failure's text (exception type, message and where it was raised) out of the status
    resource and the callbacks, for APIs whose callers must not see internals: they read
    ``"the job failed"``, while ``status()`` and the dead-letter queue keep the text.
    """

    def __init__(
        self,
        store: str | JobStore = "sqlite:///interlock.db",
        *,
        queue: Queue | None = None,
        callback_queue: Queue | None = None,
        redelivery: Redelivery | None = None,
        callback_secret: str | bytes | None = None,
        callback_redelivery: Redelivery | None = None,
        callback_hosts: Sequence[str] | None = None,
        callback_client: Callable[[str], Client] | None = None,
        location: str = "/jobs/{id}",
        max_params: int = 64 * 1024,
        max_result: int = 1024 * 1024,
        retention: Retention | None = None,
        show_errors: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(store, str):
            self.store, default_queue, default_callbacks = _stores(store)
            queue = queue or default_queue
            callback_queue = callback_queue or default_callbacks
        elif isinstance(store, JobStore):
            self.store = store
        else:
            raise ConfigError("Jobs", "store", f"must be a URL or a JobStore, got {type(store).__name__}")
        if queue is None or callback_queue is None:
            raise ConfigError("Jobs", "queue", "give queue= and callback_queue= with a JobStore object")
        if "{id}" not in location:
            raise ConfigError("Jobs", "location", f"must contain {{id}}, got {location!r}")
        if callback_secret is not None:
            decode_secret(callback_secret)  # a bad secret fails here, not at the first callback
        check_count("Jobs", "max_params", max_params)
        check_count("Jobs", "max_result", max_result)
        self.queue = queue
        self.callback_queue = callback_queue
        self.redelivery = redelivery or Redelivery(
            attempts=3, backoff=Backoff(base=1.0, multiplier=4.0, cap=60.0)
        )
        self.callback_redelivery = callback_redelivery or Redelivery(
            attempts=8, backoff=Backoff(base=5.0, multiplier=3.0, cap=3600.0)
        )
        """The callback retry schedule: 8 tries, 5 s, 15 s, 45 s ... up to an hour apart."""
        self.callback_hosts = None if callback_hosts is None else tuple(callback_hosts)
        self.location = location
        self.max_params = max_params
        self.max_result = max_result
        self.clock = clock
        self.retention = retention or Retention()
        self.show_errors = show_errors
        self.tasks: dict[str, TaskFn] = {}
        self._callback_secret = callback_secret
        self._clients = CallbackClients(callback_client)
        self._opened = False
        self.app = JobStatusApp(self)
        """The status resource (ASGI): mount it where ``location`` points (``/jobs``)."""

    # -- declaring -------------------------------------------------------------------------------

    def task(self, name: str) -> Callable[[TaskFn], TaskFn]:
        """Register ``async def fn(job: Job) -> result`` as the task ``name``."""
        if not isinstance(name, str) or not _TASK.fullmatch(name):
            raise ConfigError("Jobs", "task", f"a task name is 1-100 of A-Z a-z 0-9 _ . : -, got {name!r}")
        if name in self.tasks:
            raise ConfigError("Jobs", "task", f"{name!r} is registered twice")

        def register(fn: TaskFn) -> TaskFn:
            if not asyncio.iscoroutinefunction(fn):
                raise ConfigError("Jobs", "task", f"{name!r} must be an async function (async def)")
            self.tasks[name] = fn
            return fn

        return register

    # -- lifecycle -------------------------------------------------------------------------------

    @opens_once
    async def open(self) -> None:
        """Open the store and both queues (once; later calls return at once)."""
        await self.store.open()
        await self.queue.open()
        await self.callback_queue.open()
        self._opened = True

    async def aclose(self) -> None:
        """Close the callback clients, the queues and the store."""
        await self._clients.aclose()
        if self._opened:
            self._opened = False
            await self.callback_queue.aclose()
            await self.queue.aclose()
            await self.store.aclose()

    async def __aenter__(self) -> Jobs:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- submitting ------------------------------------------------------------------------------

    async def submit(self, task: str, params: Any = None, *, callback_url: str | None = None) -> JobStatus:
        """Queue a run of ``task`` with JSON ``params``; the new job's status (``queued``).
        ``JobRejected`` for a bad ``callback_url`` or parameters over ``max_params``; an
        unknown task is a ``ConfigError`` (a mistake in the API's code, not the caller's)."""
        if task not in self.tasks:
            raise ConfigError("Jobs", "task", f"no task named {task!r}; registered: {sorted(self.tasks)}")
        if callback_url is not None:
            why = callback_url_problem(callback_url, self.callback_hosts)
            if why is not None:
                raise JobRejected(why)
        body = json.dumps({"params": params}).encode()
        if len(body) > self.max_params:
            raise JobRejected(
                f"the job's parameters take {len(body)} bytes of JSON, more than {self.max_params}"
            )
        await self.open()
        now = self.clock.time()
        # The id is the status resource's only key: drawn from the OS's CSPRNG, not guessable.
        status = JobStatus(
            id=secrets.token_hex(12),
            task=task,
            state="queued",
            created_at=now,
            updated_at=now,
            callback_url=callback_url,
        )
        await self.store.create(status)
        headers = {}
        cid = current_correlation_id()
        if cid is not None:
            headers["correlation-id"] = cid  # the request's id follows the work it caused
        tracer = _otel.tracer()
        if tracer is None:
            await self.queue.put(
                Message(source=JOB_SOURCE, id=status.id, type=task, body=body, headers=headers, received_at=now)
            )
            return status
        # Traced: the job is stored with its create span's context, so the worker's process
        # span continues the trace of the request that submitted it.
        with _otel.producer_span(tracer, JOB_SOURCE, status.id, task):
            stamped = _otel.stamp(headers)
            await self.queue.put(
                Message(source=JOB_SOURCE, id=status.id, type=task, body=body, headers=stamped, received_at=now)
            )
        return status

    def location_of(self, job_id: str) -> str:
        """The status URL of a job (``location`` with its id)."""
        return self.location.replace("{id}", job_id)

    async def accepted(self, task: str, params: Any = None, *, callback_url: str | None = None) -> Any:
        """Submit, then the ``202 Accepted`` answer (a Starlette ``Response``, as FastAPI and
        Starlette endpoints return): ``Location`` names the status resource, the body is the
        status. A rejected submission is a ``400`` problem-details answer instead."""
        from starlette.responses import Response

        try:
            status = await self.submit(task, params, callback_url=callback_url)
        except JobRejected as exc:
            _, headers, body = problem(400, "job-rejected", "Job rejected", exc.detail)
            return Response(body, status_code=400, headers={k.decode(): v.decode() for k, v in headers})
        body = json.dumps(status.to_json()).encode()
        return Response(
            body,
            status_code=202,
            media_type="application/json",
            headers={"location": self.location_of(status.id), "retry-after": "1"},
        )

    async def status(self, job_id: str) -> JobStatus | None:
        """The job's status, or None for an unknown (or pruned) id."""
        if not _ID.fullmatch(job_id):
            return None
        await self.open()
        return await self.store.get(job_id)

    async def wait(self, job_id: str, timeout: float, *, poll: float = 0.05) -> JobStatus:
        """Poll until the job is finished; its status. ``TimeoutError`` after ``timeout`` s
        (tests and scripts; an API answers 202 instead of waiting)."""
        async with asyncio.timeout(timeout):
            while True:
                status = await self.status(job_id)
                if status is None:
                    raise KeyError(f"no job {job_id!r}")
                if status.done:
                    return status
                await asyncio.sleep(poll)

    async def prune(self) -> int:
        """Forget what ``retention`` no longer keeps: finished jobs' statuses and queue messages
        older than ``retention.done``, dead letters older than ``retention.dead``; how many rows."""
        await self.open()
        pruned = 0
        for queue in (self.queue, self.callback_queue):
            pruned += await Pruner(queue, self.retention, clock=self.clock).prune()
        if self.retention.done is not None:
            pruned += await self.store.prune(self.clock.time() - self.retention.done)
        return pruned

    # -- running ---------------------------------------------------------------------------------

    def worker(self, *, concurrency: int = 4, visibility: float = 30.0, grace: float = 10.0) -> JobWorker:
        """A worker for this process: ``await worker.run()`` until cancelled, or ``start()``
        and ``aclose()``. ``visibility``: seconds a lease lasts without a heartbeat (a job whose
        worker died is run again after at most that); ``grace``: seconds running jobs get to
        finish on ``aclose()``."""
        runner = JobRunner(
            self.tasks,
            self.store,
            self.callback_queue,
            redelivery=self.redelivery,
            callback_redelivery=self.callback_redelivery,
            callback_secret=self._callback_secret,
            clients=self._clients,
            max_result=self.max_result,
            show_errors=self.show_errors,
            clock=self.clock,
        )
        settings = WorkerSettings(
            concurrency=concurrency, visibility=visibility, grace=grace, slow_after=3600.0
        )
        jobs_pool = WorkerPool(
            self.queue,
            lambda source, type_: [runner.run_job] if source == JOB_SOURCE else [],
            redelivery=runner.pool_redelivery,
            settings=settings,
            ready=self.open,
        )
        callbacks_pool = WorkerPool(
            self.callback_queue,
            lambda source, type_: [runner.deliver] if source == CALLBACK_SOURCE else [],
            redelivery=runner.callback_pool_redelivery,
            settings=WorkerSettings(concurrency=concurrency, visibility=visibility, grace=grace),
            ready=self.open,
        )
        return JobWorker(jobs_pool, callbacks_pool, prune=self.prune, every=self.retention.every)

    def __repr__(self) -> str:
        return f"<Jobs tasks={sorted(self.tasks)} store={self.store!r} queue={self.queue!r}>"


class JobWorker:
    """Two ``WorkerPool``s, one running jobs and one delivering their callbacks, and the
    housekeeping that calls ``prune`` every ``every`` seconds. Built by ``Jobs.worker()``."""

    def __init__(
        self,
        jobs_pool: WorkerPool,
        callbacks_pool: WorkerPool,
        *,
        prune: Callable[[], Awaitable[int]] | None = None,
        every: float = 600.0,
    ) -> None:
        self.jobs_pool = jobs_pool
        self.callbacks_pool = callbacks_pool
        self._prune = prune
        self.every = every
        self._housekeeping: asyncio.Task[None] | None = None

    def start(self) -> JobWorker:
        """Run both pools and the housekeeping in background tasks; ``aclose()`` stops them."""
        self.jobs_pool.start()
        self.callbacks_pool.start()
        self._start_housekeeping()
        return self

    def _start_housekeeping(self) -> None:
        if self._prune is not None and self._housekeeping is None:
            self._housekeeping = asyncio.create_task(self._keep(), name="interlock-jobs-prune")

    async def _keep(self) -> None:
        assert self._prune is not None
        while True:
            try:
                await self._prune()
            except Exception as exc:  # best effort: the next round tries again
                log.warning("pruning finished jobs failed, trying again in %.0f s: %r", self.every, exc)
            await asyncio.sleep(self.every)

    async def run(self) -> None:
        """Run until cancelled (then let running jobs finish within the grace)."""
        self._start_housekeeping()
        try:
            await asyncio.gather(self.jobs_pool.run(), self.callbacks_pool.run())
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop leasing; running jobs get the grace to finish, then are left to their leases."""
        task, self._housekeeping = self._housekeeping, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.jobs_pool.aclose()
        await self.callbacks_pool.aclose()

    def __repr__(self) -> str:
        return f"<JobWorker jobs={self.jobs_pool!r} callbacks={self.callbacks_pool!r}>"


class JobStatusApp:
    """The status resource, plain ASGI: ``GET /jobs/{id}`` (the last path segment is the id)
    answers the status JSON, ``Retry-After: 1`` while it is not finished, ``404`` problem
    details for an unknown id, ``405`` for other methods."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one status request."""
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await send_problem(
                send, 405, "method-not-allowed", "Method Not Allowed", "The job status is read-only: GET it.",
                [(b"allow", b"GET, HEAD")],
            )  # fmt: skip
            return
        job_id = str(scope.get("path", "")).rstrip("/").rsplit("/", 1)[-1]
        status = await self.jobs.status(job_id)
        if status is None:
            await send_problem(
                send, 404, "job-not-found", "No such job", "No job has this id (or it was pruned)."
            )
            return
        shown = status.to_json()
        if not self.jobs.show_errors and shown["error"] is not None:
            shown["error"] = HIDDEN_ERROR
        body = json.dumps(shown).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if not status.done:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def __repr__(self) -> str:
        return f"<JobStatusApp location={self.jobs.location!r}>"
