"""The client's side of the interaction log: ``InteractionLog`` (what to keep, where) and the
recorder that captures each attempt and writes the kept calls in the background.

The success path of a client that keeps only failures costs one tuple appended per attempt and
one comparison per call: nothing is copied, redacted or written for it. A kept call is built
and redacted once, then written by a background task, so the caller never waits for the store;
the writes in flight are bounded (``InteractionLog.max_pending``: past it new records are
dropped and counted) and a store that fails is logged, never raised into the call.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .._clock import Clock
from .._ids import current_correlation_id, new_id
from .._lifecycle import opens_once
from .._models import Request, Response
from .._redact import Redaction
from ..errors import CallError, ConfigError
from ..logging import Redactor
from ..stores import open_interactions
from ..stores.interactions import (
    Attempt,
    Interaction,
    InteractionFilter,
    InteractionRetention,
    InteractionStore,
)

__all__ = ["InteractionLog", "InteractionRecorder"]

_log = logging.getLogger("interlock.interactions")
_ATTEMPTS = "interlock.attempts"
"""Request.extensions key: the (attempt, status, error, started, duration) of each attempt."""
_LAST = "interlock.last_response"

TraceId = Callable[[], str | None]


@dataclass(frozen=True)
class InteractionLog:
    """Keep a client's calls for troubleshooting: every failed call (an error raised, or an
    answer with a status of 400 or more) and a ``sample`` (0.0 to 1.0) of the successful ones,
    with the first ``max_body`` bytes of both bodies, in ``store`` (a URL, ``sqlite:///...`` or
    ``postgresql://...``, or an ``InteractionStore``), bounded by ``retention``.

    Bodies and headers are redacted before they are kept: the client's ``redaction`` (headers,
    query parameters) and the values at ``json_paths`` (``["$.card.number"]``) in JSON bodies.
    At most ``max_pending`` writes are in flight; past it records are dropped (counted in
    ``dropped``) rather than queued without bound.
    """

    store: str | InteractionStore
    sample: float = 0.0
    max_body: int = 4096
    json_paths: Iterable[str] = ()
    retention: InteractionRetention | None = None
    max_pending: int = 1000
    failures: bool = True
    """Keep every failed call (switch off to keep only the sample of successes)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise ConfigError("InteractionLog", "sample", f"must be between 0.0 and 1.0, got {self.sample!r}")
        if self.max_body < 0:
            raise ConfigError("InteractionLog", "max_body", f"must be >= 0 bytes, got {self.max_body!r}")
        if self.max_pending < 1:
            raise ConfigError("InteractionLog", "max_pending", f"must be >= 1, got {self.max_pending!r}")
        if isinstance(self.json_paths, str):
            raise ConfigError(
                "InteractionLog", "json_paths", "must be a collection of JSON paths, not one string"
            )
        object.__setattr__(self, "json_paths", tuple(self.json_paths))


@dataclass
class InteractionRecorder:
    """Captures the attempts of a client's calls and writes the ones its ``InteractionLog``
    keeps. Built by the ``Client``; ``trace_id`` reads the current trace's id (OpenTelemetry)."""

    config: InteractionLog
    upstream: str
    clock: Clock
    redaction: Redaction
    rng: random.Random | None = None
    trace_id: TraceId | None = None
    dropped: int = 0
    """Records not written because ``max_pending`` writes were in flight."""
    write_errors: int = 0
    _store: InteractionStore | None = field(default=None, repr=False)
    _own_store: bool = field(default=False, repr=False)
    _opened: bool = field(default=False, repr=False)
    _pending: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        store = self.config.store
        if isinstance(store, str):
            self._store = open_interactions(
                store, retention=self.config.retention, owner="InteractionLog", field="store"
            )
            self._own_store = True
        else:
            self._store = store
        self._redactor = Redactor(redaction=self.redaction, json_paths=self.config.json_paths)
        self._random = (self.rng or random.Random()).random

    @property
    def store(self) -> InteractionStore:
        """The store the interactions go to."""
        assert self._store is not None
        return self._store

    def wrap(
        self, send: Callable[[Request], Coroutine[Any, Any, Response]]
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """``send`` (one attempt) noting each attempt's status, error and timing on the request."""
        clock = self.clock

        async def attempt(request: Request) -> Response:
            started = clock.monotonic()
            try:
                response = await send(request)
            except BaseException as exc:
                _note(
                    request,
                    (
                        request.attempt,
                        None,
                        f"{type(exc).__name__}: {exc}",
                        started,
                        clock.monotonic() - started,
                    ),
                )
                raise
            _note(request, (request.attempt, response.status, None, started, clock.monotonic() - started))
            request.extensions[_LAST] = response
            return response

        return attempt

    # -- the two ends of a call ----------------------------------------------------------------
    def on_response(self, request: Request, response: Response, elapsed: float) -> None:
        """A call answered: keep it if it failed (status >= 400) or is in the sample."""
        failed = response.status >= 400
        if failed:
            if not self.config.failures:
                return
        elif not (self.config.sample and self._random() < self.config.sample):
            return
        self._keep(new_id(), request, response, None, elapsed, failed)

    def on_error(self, request: Request, error: CallError, elapsed: float) -> None:
        """A call raised: keep it (when failures are kept) and name it in the error
        (``interaction_id``), so a dead letter's error history points to it."""
        if not self.config.failures:
            return
        ident = new_id()
        error.with_context(interaction_id=ident)
        last = request.extensions.get(_LAST)
        self._keep(ident, request, last if isinstance(last, Response) else None, error, elapsed, True)

    def _keep(
        self,
        ident: str,
        request: Request,
        response: Response | None,
        error: CallError | None,
        elapsed: float,
        failed: bool,
    ) -> None:
        if len(self._pending) >= self.config.max_pending:
            self.dropped += 1
            return
        record = self._build(ident, request, response, error, elapsed, failed)
        task = asyncio.get_running_loop().create_task(self._write(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _build(
        self,
        ident: str,
        request: Request,
        response: Response | None,
        error: CallError | None,
        elapsed: float,
        failed: bool,
    ) -> Interaction:
        red, limit = self._redactor, self.config.max_body
        began = request.extensions.get(_ATTEMPTS) or []
        origin = began[0][3] if began else self.clock.monotonic() - elapsed
        attempts = tuple(
            Attempt(a, s, red.text(e) if e else None, st - origin, d) for a, s, e, st, d in began
        )
        url = request.url + ("?" + urlencode(request.params) if request.params else "")
        req_body = request.body or b""
        resp_body = response.content if response is not None else b""
        tracking = response.tracking_id if response is not None else (error.tracking_id if error else None)
        return Interaction(
            id=ident,
            at=self.clock.time() - elapsed,
            upstream=self.upstream,
            method=request.method,
            url=self.redaction.mask_url(url),
            route=request.route,
            status=response.status if response is not None else (error.status if error else None),
            failed=failed,
            error=red.text(str(error)) if error is not None else None,
            tracking_id=tracking,
            correlation_id=request.request_id or current_correlation_id(),
            trace_id=self.trace_id() if self.trace_id is not None else None,
            duration=elapsed,
            attempts=attempts,
            request_headers=tuple(red.headers(request.headers.items())),
            request_body=red.body(req_body[:limit]),
            request_truncated=len(req_body) > limit,
            response_headers=tuple(red.headers(response.headers.items())) if response is not None else (),
            response_body=red.body(resp_body[:limit]),
            response_truncated=len(resp_body) > limit,
        )

    @opens_once
    async def _open(self) -> None:
        await self.store.open()
        self._opened = True

    async def _write(self, record: Interaction) -> None:
        try:
            await self._open()
            await self.store.record(record)
        except Exception as exc:
            self.write_errors += 1
            _log.warning(
                "interaction %s of %s not kept: %s: %s",
                record.id,
                self.upstream,
                type(exc).__name__,
                self.redaction.mask_text(str(exc)),
                extra={"interlock": {"upstream": self.upstream, "interaction_id": record.id}},
            )

    # -- reading and closing -------------------------------------------------------------------
    async def flush(self) -> None:
        """Wait for the writes in flight."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def find(self, where: InteractionFilter, *, limit: int) -> list[Interaction]:
        """The kept interactions matching ``where`` (after the writes in flight), newest first."""
        await self.flush()
        await self._open()
        return await self.store.find(where, limit=limit)

    async def aclose(self) -> None:
        """Finish the writes in flight, then close the store if this recorder opened it from a URL."""
        await self.flush()
        if self._own_store and self._opened:
            self._opened = False
            await self.store.aclose()


def _note(request: Request, entry: tuple[int, int | None, str | None, float, float]) -> None:
    noted = request.extensions.get(_ATTEMPTS)
    if noted is None:
        request.extensions[_ATTEMPTS] = [entry]
    else:
        noted.append(entry)
