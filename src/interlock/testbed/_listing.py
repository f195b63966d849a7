"""Collection reads: the three pagination styles real APIs use, their pathological variants,
and batch reads by id. Pure functions over a ``DataStore``: they return the body and headers.

Which style answers a request: ``page``/``per_page`` select page style, ``offset`` offset
style, ``cursor`` cursor style; a request naming none (a first page) gets
``TestbedConfig.pagination``. Order is ``(updated_at, id)`` ascending when ``updated_since`` is
given (or the cursor came from such a listing), else id ascending.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

from yarl import URL

from ._config import TestbedConfig
from ._data import DataStore, Record
from ._timefmt import parse_rfc3339_ms

__all__ = ["BadRequest", "by_ids", "list_page"]


class BadRequest(Exception):
    """The query is malformed; the app answers 400 with this message."""


def _int_param(query: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise BadRequest(f"{name} must be >= {minimum}, got {value}")
    return value


def _fields(query: Mapping[str, str]) -> tuple[str, ...] | None:
    raw = query.get("fields")
    if not raw:
        return None
    wanted = [f.strip() for f in raw.split(",") if f.strip()]
    # id is always included: a client needs it to key what it receives.
    return ("id", *(f for f in wanted if f != "id"))


def _project(records: list[Record], fields: tuple[str, ...] | None) -> list[Record]:
    if fields is None:
        return records
    return [{f: r[f] for f in fields if f in r} for r in records]


def _encode_cursor(*parts: object) -> str:
    raw = ".".join(str(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded.encode()).decode().split(".")
        if parts[0] == "i" and len(parts) == 2:
            int(parts[1])
        elif (parts[0] == "t" and len(parts) == 3) or (
            parts[0] == "e" and len(parts) == 4 and parts[3] in ("t", "i")
        ):
            int(parts[1]), int(parts[2])
        else:
            raise ValueError(cursor)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(f"invalid cursor {cursor!r}") from None
    return parts


def list_page(
    store: DataStore, kind: str, query: Mapping[str, str], config: TestbedConfig, url: URL
) -> tuple[dict[str, Any], dict[str, str]]:
    """Answer ``GET /{kind}`` (without ``ids``): ``(body, extra headers)``."""
    since_raw = query.get("updated_since")
    since_ms: int | None = None
    if since_raw:
        try:
            since_ms = parse_rfc3339_ms(since_raw)
        except ValueError:
            raise BadRequest(f"updated_since must be an RFC 3339 timestamp, got {since_raw!r}") from None
    fields = _fields(query)
    if "page" in query or "per_page" in query:
        style = "page"
    elif "offset" in query:
        style = "offset"
    elif "cursor" in query:
        style = "cursor"
    else:
        style = config.pagination
    if style == "cursor":
        return _cursor_page(store, kind, query, config, since_ms, fields), {}
    if style == "offset":
        return _offset_page(store, kind, query, config, since_ms, fields), {}
    return _page_page(store, kind, query, config, since_ms, fields, url)


def _limit(query: Mapping[str, str], name: str, config: TestbedConfig) -> int:
    # Over-large limits are clamped, not refused, as most APIs do; clients must read back
    # the page size instead of assuming theirs was honoured.
    return min(_int_param(query, name, config.default_limit, 1), config.max_limit)


def _window(
    store: DataStore, kind: str, since_ms: int | None, by_time: bool, start: int, count: int
) -> tuple[list[Record], int]:
    """Records at positions ``start..start+count`` of the chosen order, and how many exist
    from ``start`` on (positions count from the ``updated_since`` lower bound)."""
    if by_time:
        index = store.time_index(kind)
        lo = store.start_by_time(kind, since_ms, None)
        chosen = [rid for _, rid in index[lo + start : lo + start + count]]
        remaining = len(index) - lo - start
    else:
        ids = store.ids_index(kind)
        chosen = ids[start : start + count]
        remaining = len(ids) - start
    return [r for rid in chosen if (r := store.raw(kind, rid)) is not None], remaining


def _wrapped(
    store: DataStore, kind: str, since_ms: int | None, by_time: bool, start: int, count: int
) -> list[Record]:
    """For the "endless" bug: positions wrap around, so a page is never empty."""
    if by_time:
        lo = store.start_by_time(kind, since_ms, None)
        keys = [rid for _, rid in store.time_index(kind)[lo:]]
    else:
        keys = list(store.ids_index(kind))
    if not keys:
        return []
    chosen = (keys[(start + j) % len(keys)] for j in range(count))
    return [r for rid in chosen if (r := store.raw(kind, rid)) is not None]


def _cursor_page(
    store: DataStore,
    kind: str,
    query: Mapping[str, str],
    config: TestbedConfig,
    since_ms: int | None,
    fields: tuple[str, ...] | None,
) -> dict[str, Any]:
    limit = _limit(query, "limit", config)
    cursor = query.get("cursor") or None
    parts = _decode_cursor(cursor) if cursor else None
    bug = config.pagination_bug
    by_time = since_ms is not None or (parts is not None and parts[0] == "t")
    if bug == "endless":
        # Cursor "e.<seq>.<position>.<order>": a fresh cursor every page, positions wrapping.
        seq, position = (int(parts[1]), int(parts[2])) if parts and parts[0] == "e" else (0, 0)
        if parts and parts[0] == "e":
            by_time = parts[3] == "t"
        data = _wrapped(store, kind, since_ms, by_time, position, limit)
        fresh = _encode_cursor("e", seq + 1, position + limit, "t" if by_time else "i")
        return {"data": _project(data, fields), "next_cursor": fresh, "has_more": True}
    if by_time:
        after = (int(parts[1]), int(parts[2])) if parts and parts[0] == "t" else None
        index = store.time_index(kind)
        start = store.start_by_time(kind, since_ms, after)
        page_keys = index[start : start + limit]
        has_more = start + limit < len(index)
        rids = [rid for _, rid in page_keys]
        next_cursor: str | None = _encode_cursor("t", *page_keys[-1]) if has_more and page_keys else None
    else:
        after_id = int(parts[1]) if parts and parts[0] == "i" else None
        ids = store.ids_index(kind)
        start = store.start_by_id(kind, after_id)
        rids = ids[start : start + limit]
        has_more = start + limit < len(ids)
        next_cursor = _encode_cursor("i", rids[-1]) if has_more and rids else None
    data = [r for rid in rids if (r := store.raw(kind, rid)) is not None]
    if bug == "repeat_cursor" and cursor is not None:
        # The server hands back the cursor it was given: page 2 forever.
        next_cursor, has_more = cursor, True
    elif bug == "has_more_without_cursor" and not has_more:
        has_more = True
    return {"data": _project(data, fields), "next_cursor": next_cursor, "has_more": has_more}


def _offset_page(
    store: DataStore,
    kind: str,
    query: Mapping[str, str],
    config: TestbedConfig,
    since_ms: int | None,
    fields: tuple[str, ...] | None,
) -> dict[str, Any]:
    limit = _limit(query, "limit", config)
    offset = _int_param(query, "offset", 0, 0)
    by_time = since_ms is not None
    data, remaining = _window(store, kind, since_ms, by_time, offset, limit)
    total = offset + remaining
    if config.pagination_bug == "endless":
        data = _wrapped(store, kind, since_ms, by_time, offset, limit)
        total = offset + len(data) + 1
    body: dict[str, Any] = {"data": _project(data, fields), "total": total, "offset": offset}
    body["limit"] = limit
    if config.pagination_bug == "no_total":
        del body["total"]
    return body


def _page_page(
    store: DataStore,
    kind: str,
    query: Mapping[str, str],
    config: TestbedConfig,
    since_ms: int | None,
    fields: tuple[str, ...] | None,
    url: URL,
) -> tuple[dict[str, Any], dict[str, str]]:
    per_page = _limit(query, "per_page", config)
    page = _int_param(query, "page", 1, 1)
    by_time = since_ms is not None
    data, remaining = _window(store, kind, since_ms, by_time, (page - 1) * per_page, per_page)
    total = (page - 1) * per_page + remaining
    total_pages = max(1, math.ceil(total / per_page))
    if config.pagination_bug == "endless":
        data = _wrapped(store, kind, since_ms, by_time, (page - 1) * per_page, per_page)
        total_pages = page + 1
    body: dict[str, Any] = {
        "data": _project(data, fields),
        "page": page,
        "per_page": per_page,
        "total_pages": total_pages,
    }
    # RFC 8288 web links, as GitHub paginates: rel="next" is absent on the last page, which
    # is how a Link-following client knows to stop.
    links: list[str] = []

    def link(target: int, rel: str) -> None:
        href = url.update_query({"page": str(target), "per_page": str(per_page)})
        links.append(f'<{href}>; rel="{rel}"')

    if page < total_pages:
        link(page + 1, "next")
    if page > 1:
        link(page - 1, "prev")
    link(1, "first")
    link(total_pages, "last")
    return body, {"Link": ", ".join(links)}


def by_ids(
    store: DataStore, kind: str, raw_ids: str, query: Mapping[str, str], max_ids: int
) -> tuple[dict[str, Any], int]:
    """Answer ``GET /{kind}?ids=1,2,3``: ``({"data": [...]}, number of ids asked)``.

    Ids that do not exist are silently absent, as real batch endpoints do; order follows the
    request, duplicates once.
    """
    tokens = [t.strip() for t in raw_ids.split(",") if t.strip()]
    if len(tokens) > max_ids:
        raise BadRequest(f"at most {max_ids} ids per request, got {len(tokens)}")
    try:
        ids = [int(t) for t in tokens]
    except ValueError:
        raise BadRequest(f"ids must be comma-separated integers, got {raw_ids!r}") from None
    seen: set[int] = set()
    data: list[Record] = []
    for rid in ids:
        if rid in seen:
            continue
        seen.add(rid)
        record = store.raw(kind, rid)
        if record is not None:
            data.append(record)
    return {"data": _project(data, _fields(query))}, len(ids)
