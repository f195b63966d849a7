"""Running 202 jobs: the handlers the Inbox's ``WorkerPool`` calls for job and callback
messages. Private to ``interlock.server``.

Jobs ride the same leased queue machinery as webhooks (``interlock.inbox.WorkerPool`` on a
``Queue``): a lease per running job, heartbeats every third of the visibility timeout, a nack
with the ``Redelivery`` schedule's delay on failure, the dead-letter queue at the end. A worker
killed mid-job stops heartbeating; its lease expires and another worker leases the job again
(attempt one higher), so no job stays ``running``.

Which of retry / fail is decided by ``core.settle`` with the job's own ``Redelivery``, here,
because the job's status must say it before the queue is told: the pool runs with one attempt
more than the job's schedule so that it always calls this handler, which then turns a final
failure (or a delivery past the last attempt) into ``PermanentFailure``, and the pool
dead-letters it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._clock import Clock
from .._ids import correlation_id
from .._text import describe
from ..core.redelivery import Redelivery
from ..core.settle import Outcome, ToDeadLetters, admit, settle
from ..errors import PermanentFailure
from ..inbox import Event
from ..stores import Message, Queue
from ._callback import CallbackClients, decode_secret, payload, sign
from ._jobstore import JobStore

__all__ = ["CALLBACK_SOURCE", "JOB_SOURCE", "Job", "JobRunner", "TaskFn"]

log = logging.getLogger("interlock.server.jobs")

JOB_SOURCE = "jobs"
"""The queue ``source`` of job messages (their ``type`` is the task name, their id the job id)."""
CALLBACK_SOURCE = "jobs-callback"
"""The queue ``source`` of completion callbacks."""


@dataclass
class Job:
    """What a task function receives: the job's ``id``, ``task`` name, ``params`` (the JSON
    given at submission) and ``attempt`` (1 on the first run; a retry or a lease that expired
    with its worker adds one). Report progress with ``await job.progress(0.5, "halfway")``."""

    id: str
    task: str
    params: Any
    attempt: int
    _store: JobStore = field(repr=False)

    async def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Record progress: ``fraction`` from 0.0 to 1.0 (clamped), and/or a short ``message``
        (cut to 500 characters), both shown by the status resource."""
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        if message is not None:
            message = str(message)[:500]
        await self._store.progress(self.id, fraction, message)


TaskFn = Callable[[Job], Awaitable[Any]]
"""A task: ``async def export(job: Job) -> result``; the result must be JSON."""


def _with_one_more(redelivery: Redelivery) -> Redelivery:
    return Redelivery(attempts=redelivery.attempts + 1, backoff=redelivery.backoff)


class JobRunner:
    """The pool handlers for one ``Jobs``: ``run_job`` for job messages, ``deliver`` for
    callbacks. Narrow inputs: the task table, the status store, the callback queue, the
    schedules, the signing secret, the callback clients and a clock."""

    def __init__(
        self,
        tasks: Mapping[str, TaskFn],
        store: JobStore,
        callback_queue: Queue,
        *,
        redelivery: Redelivery,
        callback_redelivery: Redelivery,
        callback_secret: str | bytes | None,
        clients: CallbackClients,
        max_result: int,
        clock: Clock,
        show_errors: bool = True,
    ) -> None:
        self.tasks = tasks
        self.store = store
        self.callback_queue = callback_queue
        self.redelivery = redelivery
        self.callback_redelivery = callback_redelivery
        self.pool_redelivery = _with_one_more(redelivery)
        """What the job pool runs with: one attempt more, so this handler decides the last."""
        self.callback_pool_redelivery = _with_one_more(callback_redelivery)
        self._key = decode_secret(callback_secret) if callback_secret is not None else None
        self.clients = clients
        self.max_result = max_result
        self.clock = clock
        self.show_errors = show_errors

    # -- jobs ------------------------------------------------------------------------------------

    async def run_job(self, event: Event) -> None:
        """Run one delivery of a job; raise to have it retried, ``PermanentFailure`` to fail it."""
        job_id, name = event.id, event.type
        refused = admit(event.attempt, self.redelivery)
        if refused is not None:
            await self._fail(job_id, refused.error)
            raise PermanentFailure(refused.error)
        fn = self.tasks.get(name)
        if fn is None:
            error = f"no task named {name!r} in this worker (it has {sorted(self.tasks)})"
            await self._fail(job_id, error)
            raise PermanentFailure(error)
        if not await self.store.start(job_id, event.attempt):
            log.info("job %s already finished; a stale delivery is dropped", job_id)
            return
        envelope = json.loads(event.body)
        job = Job(job_id, name, envelope.get("params"), event.attempt, self.store)
        with correlation_id(event.headers.get("correlation-id") or job_id):
            try:
                result = await fn(job)
            except PermanentFailure as exc:
                await self._fail(job_id, describe(exc))
                raise
            except Exception as exc:
                await self._retry_or_fail(event, exc)
                raise
            try:
                encoded = json.dumps(result)
            except (TypeError, ValueError) as exc:
                error = f"task {name!r} returned a value that is not JSON: {exc}"
                await self._fail(job_id, error)
                raise PermanentFailure(error) from exc
            if len(encoded) > self.max_result:
                error = f"task {name!r} returned {len(encoded)} bytes of JSON, more than max_result={self.max_result}"
                await self._fail(job_id, error)
                raise PermanentFailure(error)
            if await self.store.finish(job_id, "succeeded", result=result):
                await self._queue_callback(job_id)

    async def _retry_or_fail(self, event: Event, exc: Exception) -> None:
        error = describe(exc)
        decision = settle(event.attempt, Outcome.FAILED, self.redelivery, error=error)
        if isinstance(decision, ToDeadLetters):
            await self._fail(event.id, error)
            raise PermanentFailure(error) from exc
        await self.store.finish(event.id, "queued", error=error)

    async def _fail(self, job_id: str, error: str) -> None:
        if await self.store.finish(job_id, "failed", error=error):
            await self._queue_callback(job_id)

    async def _queue_callback(self, job_id: str) -> None:
        status = await self.store.get(job_id)
        if status is None or status.callback_url is None:
            return
        shown = status.to_json()
        if not self.show_errors and shown["error"] is not None:
            shown["error"] = "the job failed"
        message = Message(
            source=CALLBACK_SOURCE,
            # One callback per finish: a job replayed from the DLQ and finished again calls back again.
            id=f"{job_id}.{status.state}.{status.attempts}",
            type=f"job.{status.state}",
            body=payload(status.state, shown, status.updated_at),
            headers={"url": status.callback_url, "webhook-id": f"job_{job_id}_{status.attempts}"},
            received_at=self.clock.time(),
        )
        await self.callback_queue.put(message)

    # -- callbacks -------------------------------------------------------------------------------

    async def deliver(self, event: Event) -> None:
        """One attempt at a completion callback: sign it now and POST it through the Client."""
        refused = admit(event.attempt, self.callback_redelivery)
        if refused is not None:
            raise PermanentFailure(refused.error)
        msg_id = event.headers["webhook-id"]
        headers = (
            sign(self._key, msg_id, int(self.clock.time()), event.body)
            if self._key
            else {"webhook-id": msg_id}
        )
        try:
            await self.clients.post(event.headers["url"], event.body, headers, idempotency_key=msg_id)
        except Exception as exc:
            decision = settle(event.attempt, Outcome.FAILED, self.callback_redelivery, error=describe(exc))
            if isinstance(decision, ToDeadLetters):
                raise PermanentFailure(f"callback given up: {describe(exc)}") from exc
            raise

    def __repr__(self) -> str:
        return f"<JobRunner tasks={sorted(self.tasks)} store={self.store!r}>"
