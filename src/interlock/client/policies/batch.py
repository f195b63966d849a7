"""Drives ``core.batching.Batcher``: single reads of a declared route wait a few milliseconds,
then one list call fetches every pending id and each caller gets its own item as a Response.

The list call goes down the rest of the pipeline like any call, retries included. Ids absent from the answer are a 404 for their own caller. If the list
call fails (an error, a non-200, a body without the items), every member falls back to its own
single call, with its own retries: one bad id or one failed batch never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from ..._clock import Clock
from ..._ids import new_id
from ..._metrics import work_stats
from ..._models import Request, Response
from ...core.batching import Batcher, Flush, Opened
from .._config import Batch
from .._pipeline import Send

_log = logging.getLogger("interlock.batch")
BATCHED = "interlock.batched"
"""Request.extensions key: the read was served (or meant to be served) by a list call."""
# Fields of the list answer that describe the list, not the item a member receives.
_DROP_HEADERS = frozenset(
    {
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "etag",
        "last-modified",
        "link",
        "cache-control",
        "expires",
        "age",
    }
)
_FALLBACK: Any = object()


@dataclass(slots=True)
class _Member:
    request: Request
    future: asyncio.Future[Any]


class BatchPolicy:
    """The batch stage of the pipeline: gathers single reads of each declared ``Batch`` route
    for its window, then answers them from one list call."""

    def __init__(
        self,
        batches: Sequence[Batch],
        upstream: str,
        clock: Clock,
        *,
        request_id_header: str = "X-Request-ID",
        ignored_headers: Sequence[str] = (),
    ) -> None:
        self.batches = tuple(batches)
        self._request_id_header = request_id_header
        self.upstream = upstream
        self._clock = clock
        self._ignored = frozenset(h.lower() for h in (*ignored_headers, request_id_header))
        self._batchers: list[Batcher[_Member]] = [Batcher(b.max_size, b.window) for b in self.batches]
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.members = 0
        self._work = work_stats(upstream)

    def _match(self, request: Request) -> tuple[int, str] | None:
        if request.method != "GET" or request.body:
            return None
        for index, spec in enumerate(self.batches):
            params = spec.pattern.match(request.path)
            if params is not None and spec.ids_param not in request.params:
                return index, params[spec.id_name]
        return None

    async def handle(self, request: Request, call_next: Send) -> Response:
        """Answer a single read of a batched route from a list call shared with its neighbours
        (or, should that fail, from its own call); other requests pass through."""
        found = self._match(request)
        if found is None:
            return await call_next(request)
        index, item_id = found
        request.extensions[BATCHED] = True  # for the call's span: answered by a list call
        # Members of one batch share query parameters (fields=...) and headers (credentials).
        headers = tuple(
            sorted((k.lower(), v) for k, v in request.headers.items() if k.lower() not in self._ignored)
        )
        group = (index, tuple(sorted(request.params.items())), headers)
        member = _Member(request, asyncio.get_running_loop().create_future())
        batcher = self._batchers[index]
        decision = batcher.add(group, item_id, member, self._clock.monotonic())
        if isinstance(decision, Opened):
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle | None = None

            def fire(close_at: float = decision.close_at) -> None:
                if handle is not None:
                    self._timers.discard(handle)
                flush = batcher.due(group, close_at)
                if flush is not None:
                    self._launch(index, flush, call_next)

            handle = loop.call_later(self.batches[index].window, fire)
            self._timers.add(handle)
        elif isinstance(decision, Flush):
            self._launch(index, decision, call_next)
        outcome = await member.future
        if outcome is _FALLBACK:
            return await call_next(request)
        assert isinstance(outcome, Response)
        return outcome

    def _launch(self, index: int, flush: Flush[_Member], call_next: Send) -> None:
        task = asyncio.ensure_future(self._run(self.batches[index], flush, call_next))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, spec: Batch, flush: Flush[_Member], call_next: Send) -> None:
        ids = list(flush.ids)
        members = [m for waiting in flush.members.values() for m in waiting]
        if len(ids) == 1:
            # Nothing to merge: the single call is cheaper to read and keeps its own validators.
            for m in members:
                _settle(m, _FALLBACK)
            return
        first = members[0].request
        base = first.url[: len(first.url) - len(first.path)]
        deadlines = [m.request.deadline for m in members]
        request_id = new_id()
        headers = first.headers.copy()
        headers[self._request_id_header] = request_id
        batch_request = Request(
            method="GET",
            url=base + spec.via,
            path=spec.via,
            route=spec.via,
            upstream=first.upstream,
            params={**first.params, spec.ids_param: spec.separator.join(ids)},
            headers=headers,
            request_id=request_id,
            deadline=None if None in deadlines else max(d for d in deadlines if d is not None),
            extensions={"batch_of": len(ids)},
        )
        self.calls += 1
        self.members += len(members)
        try:
            response = await call_next(batch_request)
            items = self._items(spec, response)
        except asyncio.CancelledError:
            for m in members:
                if not m.future.done():
                    m.future.cancel()
            raise
        except Exception as exc:
            _log.info(
                "%s%s: batch of %d failed (%s); members fall back to single calls",
                self.upstream,
                spec.via,
                len(ids),
                exc,
            )
            items = None
            response = None
        work = self._work
        outcome_key = (spec.via, "ok" if items is not None else "failed")
        work.batch_calls[outcome_key] = work.batch_calls.get(outcome_key, 0) + 1
        work.batch_members[spec.route] = work.batch_members.get(spec.route, 0) + len(members)
        if items is None or response is None:
            for m in members:
                _settle(m, _FALLBACK)
            return
        kept: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in response.headers.items() if k.lower() not in _DROP_HEADERS
        )
        kept["X-Interlock-Batch"] = f"{spec.via} {len(ids)}"
        frozen = CIMultiDictProxy(kept)
        for item_id, waiting in flush.members.items():
            item = items.get(item_id)
            if item is None:
                status = 404
                content = json.dumps({"error": "not found", "id": item_id, "batch": spec.via}).encode()
            else:
                status, content = 200, json.dumps(item, separators=(",", ":")).encode()
            for m in waiting:
                answer = Response.answering(
                    m.request, status, frozen, content, attempts=response.attempts, tracking_id=response.tracking_id
                )
                _settle(m, answer)

    @staticmethod
    def _items(spec: Batch, response: Response) -> dict[str, Any] | None:
        if response.status != 200:
            return None
        try:
            found = spec.items.find(response.json())
        except ValueError:
            return None
        if not isinstance(found, list):
            return None
        out: dict[str, Any] = {}
        for item in found:
            if isinstance(item, dict) and spec.id_field in item:
                out.setdefault(str(item[spec.id_field]), item)
        return out

    async def aclose(self) -> None:
        """Cancel pending windows and list calls; their members fall back to single calls."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for batcher in self._batchers:
            for flush in batcher.flush_all():
                for waiting in flush.members.values():
                    for m in waiting:
                        _settle(m, _FALLBACK)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def __repr__(self) -> str:
        routes = ", ".join(f"{b.route} via {b.via}" for b in self.batches)
        return f"<BatchPolicy {self.upstream} [{routes}] calls={self.calls} members={self.members}>"


def _settle(member: _Member, outcome: Any) -> None:
    if not member.future.done():
        member.future.set_result(outcome)
