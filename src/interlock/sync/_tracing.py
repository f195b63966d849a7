"""A sync job's spans (OpenTelemetry, when the application traces; see ``interlock._otel``):
one per poll (``sync.poll {job}``), one per page of the listing (``sync.page {job}``, from its
first item to the next page), one per record write (``sync.write {job}``), each a child of the
one before, so a record's destination calls sit under the page that listed it.

When tracing is off every function here returns a shared no-op without making a span.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import _otel
from ._source import SyncRecord

__all__ = ["PageSpans", "poll_span", "write_span"]

_NULL = contextlib.nullcontext()


def poll_span(job: str) -> contextlib.AbstractContextManager[Any]:
    """The span of one poll of ``job`` (a no-op when tracing is off)."""
    tracer = _otel.tracer()
    if tracer is None:
        return _NULL
    return tracer.start_as_current_span(f"sync.poll {job}", attributes={"interlock.sync.job": job})  # type: ignore[no-any-return]


def write_span(job: str, record: SyncRecord) -> contextlib.AbstractContextManager[Any]:
    """The span of one record's write to the destination (a no-op when tracing is off)."""
    tracer = _otel.tracer()
    if tracer is None:
        return _NULL
    attributes = {
        "interlock.sync.job": job,
        "interlock.sync.record": str(record.key)[:256],
        "interlock.sync.version": record.version,
    }
    return tracer.start_as_current_span(f"sync.write {job}", attributes=attributes)  # type: ignore[no-any-return]


class PageSpans:
    """The page spans of one listing: ``enter(page)`` for each item (``page``: the
    paginator's page count so far) returns the context to dispatch the item in, opening a
    new span when the page changed; ``close()`` ends the last one."""

    def __init__(self, job: str) -> None:
        self.job = job
        self._tracer = _otel.tracer()
        self._span: Any = None
        self._page = -1
        self._items = 0

    def enter(self, page: int) -> contextlib.AbstractContextManager[Any]:
        """The context the item of ``page`` is dispatched in (its page's span current)."""
        if self._tracer is None:
            return _NULL
        from opentelemetry import trace

        if page != self._page:
            self.close()
            self._page = page
            self._span = self._tracer.start_span(
                f"sync.page {self.job}",
                attributes={"interlock.sync.job": self.job, "interlock.sync.page": page},
            )
        self._items += 1
        return trace.use_span(self._span, end_on_exit=False)

    def close(self) -> None:
        """End the open page span, noting how many items it listed."""
        if self._span is not None:
            self._span.set_attribute("interlock.sync.items", self._items)
            self._span.end()
            self._span = None
            self._items = 0
