"""``client.paginate(...)``: every item of a listing, whatever its pagination style, fetching the
next page while the caller works on the current one.

Styles: ``cursor`` (``next_cursor`` / ``has_more``), ``offset`` (``offset`` / ``limit`` /
``total``), ``page`` (``page`` / ``per_page`` / ``total_pages``) and ``link`` (RFC 8288
``Link: <...>; rel="next"``, as GitHub does). ``"auto"`` reads the style off the first answer.

Guards against the loops real APIs cause (and other tools follow forever): a cursor or next link
seen before, ``has_more`` without a cursor, a page of only already-seen items (an API that
wraps around), an empty page that claims more, a missing total (then a short page ends the
listing), and ``max_pages``. Why a listing stopped is in ``stop_reason``; a guard that fires logs
a warning, since the listing may be incomplete.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._jsonpath import JsonPath
from .._models import Response

if TYPE_CHECKING:
    from ._client import Client, ParamValue

_log = logging.getLogger("interlock.paginate")
STYLES = ("auto", "cursor", "offset", "page", "link")
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 ``Link`` field."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        target, params = match.group(1), match.group(2)
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return target
    return None



class Paginator:
    """An async iterator over the items of a listing. Use ``async for item in paginator`` (or
    ``async with`` to be sure the prefetch is cancelled if you stop early)."""

    def __init__(
        self,
        client: Client,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        style: str = "auto",
        items: str = "data",
        page_size: int | None = None,
        fields: Iterable[str] | None = None,
        cursor_param: str = "cursor",
        cursor_field: str = "next_cursor",
        has_more_field: str = "has_more",
        limit_param: str = "limit",
        offset_param: str = "offset",
        total_field: str = "total",
        page_param: str = "page",
        per_page_param: str = "per_page",
        total_pages_field: str = "total_pages",
        id_field: str | None = "id",
        max_pages: int | None = None,
        prefetch: bool = True,
        **request_options: Any,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
        self._client = client
        self.path = path
        self.style = style
        self._items_path = JsonPath.parse(items, owner="Paginator", field="items")
        self._page_size = page_size
        self._cursor_param, self._cursor_field, self._has_more_field = (
            cursor_param,
            cursor_field,
            has_more_field,
        )
        self._limit_param, self._offset_param, self._total_field = limit_param, offset_param, total_field
        self._page_param, self._per_page_param, self._total_pages_field = (
            page_param,
            per_page_param,
            total_pages_field,
        )
        self._id_field = id_field
        self._max_pages = max_pages
        self._prefetch = prefetch
        self._options = request_options
        base: dict[str, Any] = dict(params or {})
        if fields is not None:
            base["fields"] = ",".join(fields)
        if page_size is not None:
            key = per_page_param if style == "page" else limit_param
            base.setdefault(key, page_size)
        self._base_params = base
        self._buffer: deque[Any] = deque()
        self._task: asyncio.Task[Response] | None = None
        self._next_request: tuple[str, dict[str, Any]] | None = (path, dict(base))
        self._seen_ids: set[Any] = set()
        self._seen_tokens: set[str] = set()
        self._offset = int(base.get(offset_param, 0) or 0)
        self._page = int(base.get(page_param, 1) or 1)
        self.pages = 0
        self.items = 0
        self.stop_reason: str | None = None
        """``"end"`` for a listing that ended normally, ``"not_modified"`` when the first page
        was answered 304 to a conditional request (``headers={"If-None-Match": ...}``: nothing
        changed, no items), else the guard that stopped it: ``repeated_cursor``,
        ``repeated_link``, ``has_more_without_cursor``, ``no_new_items``, ``empty_page``,
        ``max_pages``, ``foreign_link``."""
        self.first_etag: str | None = None
        """The ``ETag`` of the first page's answer (to send as ``If-None-Match`` next time)."""

    # -- iteration ------------------------------------------------------------------------
    def __aiter__(self) -> Paginator:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._task is None and not self._start_next():
                raise StopAsyncIteration
            assert self._task is not None
            task, self._task = self._task, None
            response = await task
            self._take(response)
        return self._buffer.popleft()

    def _start_next(self) -> bool:
        if self._next_request is None:
            return False
        path, params = self._next_request
        self._next_request = None
        self._task = asyncio.ensure_future(self._fetch(path, params))
        return True

    async def _fetch(self, path: str, params: dict[str, Any]) -> Response:
        response = await self._client.get(path, params=params, **self._options)
        return response.raise_for_status()

    async def aclose(self) -> None:
        """Stop early: cancel the page being fetched ahead. Iterating to the end needs none."""
        task, self._task = self._task, None
        self._next_request = None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> Paginator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- one page -------------------------------------------------------------------------
    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._next_request = None
        if reason != "end":
            _log.warning(
                "%s%s: pagination stopped after %d pages (%s); the listing may be incomplete",
                self._client.name,
                self._client.redaction.mask_url(self.path),  # a path may carry ?api_key=...
                self.pages,
                reason.replace("_", " "),
                extra={
                    "interlock": {
                        "path": self._client.redaction.mask_url(self.path),
                        "pages": self.pages,
                        "reason": reason,
                    }
                },
            )

    def _take(self, response: Response) -> None:
        self.pages += 1
        if self.pages == 1:
            self.first_etag = response.headers.get("ETag")
            if response.status == 304:  # RFC 9110 section 15.4.5: unchanged since that ETag
                self.stop_reason = "not_modified"
                self._next_request = None
                return
        body = response.json()
        found = self._items_path.find(body) if isinstance(body, dict) else body
        items: list[Any] = found if isinstance(found, list) else []
        new = items
        if self._id_field is not None:
            new = []
            for item in items:
                key = item.get(self._id_field) if isinstance(item, dict) else None
                if key is None:
                    new.append(item)
                elif key not in self._seen_ids:
                    self._seen_ids.add(key)
                    new.append(item)
        self._buffer.extend(new)
        self.items += len(new)
        if self.style == "auto":
            self.style = self._detect(response, body)
        if items and not new:
            self._stop("no_new_items")  # an API that wraps around, or serves one page forever
            return
        if self.style == "link":
            self._plan_link(response)
        elif self.style == "cursor":
            self._plan_cursor(body, items)
        elif self.style == "offset":
            self._plan_offset(body, items)
        elif self.style == "page":
            self._plan_page(body, items)
        else:
            self._stop("end")
        if self._next_request is not None and self._max_pages is not None and self.pages >= self._max_pages:
            self._stop("max_pages")
        if self._next_request is not None and self._prefetch:
            self._start_next()  # the next page is on its way while the caller works on this one

    def _detect(self, response: Response, body: Any) -> str:
        if next_link(response.headers.get("Link")) is not None:
            return "link"
        if not isinstance(body, dict):
            return "single"
        if self._cursor_field in body or self._has_more_field in body:
            return "cursor"
        if self._total_field in body or self._offset_param in body or self._offset_param in self._base_params:
            return "offset"
        if self._page_param in body or self._total_pages_field in body:
            return "page"
        return "single"

    def _plan_link(self, response: Response) -> None:
        target = next_link(response.headers.get("Link"))
        if target is None:
            self._stop("end")
            return
        if target in self._seen_tokens:
            self._stop("repeated_link")
            return
        self._seen_tokens.add(target)
        base = self._client.base_url
        if target.startswith("/"):
            target = base + target
        if not target.startswith(base + "/") and target != base:
            self._stop("foreign_link")  # never send our credentials to another host
            return
        self._next_request = (target, {})

    def _plan_cursor(self, body: dict[str, Any], items: list[Any]) -> None:
        cursor = body.get(self._cursor_field)
        has_more = body.get(self._has_more_field)
        if has_more is False or (has_more is None and not cursor):
            self._stop("end")
        elif not cursor:
            self._stop("has_more_without_cursor")
        elif not items:
            self._stop("empty_page")
        elif str(cursor) in self._seen_tokens:
            self._stop("repeated_cursor")
        else:
            self._seen_tokens.add(str(cursor))
            params = dict(self._base_params)
            params[self._cursor_param] = cursor
            self._next_request = (self.path, params)

    def _plan_offset(self, body: dict[str, Any], items: list[Any]) -> None:
        if not items:
            self._stop("end")
            return
        self._offset += len(items)
        total = body.get(self._total_field)
        if isinstance(total, int | float):
            if self._offset >= total:
                self._stop("end")
                return
        else:
            # No total: a short page is the last one. The page size is what the server says it
            # used (APIs clamp over-large limits), else what we asked for.
            size = body.get(self._limit_param) or self._base_params.get(self._limit_param)
            if size is None or len(items) < int(size):
                self._stop("end")
                return
        params = dict(self._base_params)
        params[self._offset_param] = self._offset
        self._next_request = (self.path, params)

    def _plan_page(self, body: dict[str, Any], items: list[Any]) -> None:
        total_pages = body.get(self._total_pages_field)
        if not items or (isinstance(total_pages, int) and self._page >= total_pages):
            self._stop("end")
            return
        self._page += 1
        params = dict(self._base_params)
        params[self._page_param] = self._page
        self._next_request = (self.path, params)

    def __repr__(self) -> str:
        return f"<Paginator {self.path} style={self.style} pages={self.pages} items={self.items} stop={self.stop_reason}>"
