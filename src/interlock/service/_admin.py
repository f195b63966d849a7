"""``/admin/api/v1/...``: the admin API (JSON), described by OpenAPI 3.1 at
``/admin/api/openapi.json``.

Every route, the OpenAPI document included, needs ``Authorization: Bearer <admin token>``
(compared in constant time, ``hmac.compare_digest``); without it 401, and with no
``[server] admin_token`` configured every route answers 503 (an admin API without a token
would be open to anyone who can reach the port). Mistakes are RFC 9457 problems with a 4xx.
The JSON shapes are the OpenAPI document's (``_openapi.py``), which the dashboard builds on.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._redact import redact_headers
from ..stores.queue import DeadLetter
from ._events import STATUSES
from ._openapi import openapi_document
from ._problem import problem

if TYPE_CHECKING:
    from ._app import Service

__all__ = ["AdminError", "admin_app"]

MAX_LIMIT = 1000
"""The most items one list call returns (``limit``); pages beyond with ``offset``."""
_FILTER_KEYS = frozenset({"source", "type", "ids", "since", "until", "error"})


class AdminError(Exception):
    """A mistake in an admin request: answered as a problem with ``status`` (4xx)."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail


def _problem_response(status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    code, raw, body = problem(status, slug, title, detail)
    out = {k.decode(): v.decode() for k, v in raw if k != b"content-length"}
    out.update(headers or {})
    return Response(body, status_code=code, headers=out)


_TITLES = {400: "Bad request", 401: "Unauthorized", 404: "Not found", 409: "Conflict", 413: "Too large", 503: "Unavailable"}

Handler = Callable[[Request], Awaitable[Any]]


def admin_app(service: Service) -> Starlette:
    """The admin API of ``service`` as a Starlette app (mounted at ``/admin/``)."""
    token = service.admin_token

    def guarded(fn: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if token is None:
                return _problem_response(
                    503, "admin-disabled", "Admin API disabled",
                    "set [server] admin_token (e.g. admin_token = \"${INTERLOCK_ADMIN_TOKEN}\") to use the admin API",
                )
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token):
                return _problem_response(
                    401, "unauthorized", "Unauthorized", "send Authorization: Bearer <admin token>",
                    headers={"WWW-Authenticate": 'Bearer realm="interlock-admin"'},
                )
            try:
                result = await fn(request)
            except AdminError as exc:
                return _problem_response(exc.status, exc.slug, _TITLES.get(exc.status, "Bad request"), exc.detail)
            if isinstance(result, Response):
                return result
            return JSONResponse(result, status_code=status)

        return endpoint

    api = _Api(service)
    v1 = "/api/v1"
    routes = [
        Route("/api/openapi.json", guarded(api.openapi), methods=["GET"]),
        Route(f"{v1}/upstreams", guarded(api.upstreams), methods=["GET"]),
        Route(f"{v1}/upstreams/{{name}}", guarded(api.upstream), methods=["GET"]),
        Route(f"{v1}/upstreams/{{name}}/breaker/reset", guarded(api.reset_breaker), methods=["POST"]),
        Route(f"{v1}/upstreams/{{name}}/cache/invalidate", guarded(api.invalidate), methods=["POST"]),
        Route(f"{v1}/sources", guarded(api.sources), methods=["GET"]),
        Route(f"{v1}/sources/{{name}}", guarded(api.source), methods=["GET"]),
        Route(f"{v1}/sources/{{name}}/pause", guarded(api.pause), methods=["POST"]),
        Route(f"{v1}/sources/{{name}}/resume", guarded(api.resume), methods=["POST"]),
        Route(f"{v1}/events", guarded(api.events), methods=["GET"]),
        Route(f"{v1}/events/{{id}}", guarded(api.event), methods=["GET"]),
        Route(f"{v1}/dlq", guarded(api.dlq_list), methods=["GET"]),
        Route(f"{v1}/dlq/replay", guarded(api.dlq_replay_where), methods=["POST"]),
        Route(f"{v1}/dlq/purge", guarded(api.dlq_purge), methods=["POST"]),
        Route(f"{v1}/dlq/replay-jobs", guarded(api.replay_jobs), methods=["GET"]),
        Route(f"{v1}/dlq/replay-jobs", guarded(api.replay_job_start, 202), methods=["POST"]),
        Route(f"{v1}/dlq/replay-jobs/{{job}}", guarded(api.replay_job), methods=["GET"]),
        Route(f"{v1}/dlq/replay-jobs/{{job}}", guarded(api.replay_job_cancel), methods=["DELETE"]),
        Route(f"{v1}/dlq/{{id}}", guarded(api.dlq_show), methods=["GET"]),
        Route(f"{v1}/dlq/{{id}}/replay", guarded(api.dlq_replay), methods=["POST"]),
        Route(f"{v1}/syncs", guarded(api.syncs), methods=["GET"]),
        Route(f"{v1}/syncs/{{name}}", guarded(api.sync), methods=["GET"]),
        Route(f"{v1}/syncs/{{name}}/trigger", guarded(api.sync_trigger, 202), methods=["POST"]),
        Route(f"{v1}/syncs/{{name}}/reset", guarded(api.sync_reset), methods=["POST"]),
        Route(f"{v1}/config", guarded(api.config), methods=["GET"]),
    ]
    app = Starlette(routes=routes)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return _problem_response(405, "method-not-allowed", "Method not allowed", f"{request.method} is not allowed here")
        return _problem_response(404, "not-found", "Not found", "no such admin route (see /admin/api/openapi.json)")

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_found)
    return app


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise AdminError(400, "bad-parameter", f"{name} must be an integer from {low} to {high}, got {text[:32]!r}") from None
    if not low <= value <= high:
        raise AdminError(400, "bad-parameter", f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def _float_param(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise AdminError(400, "bad-parameter", f"{name} must be seconds since the epoch (a number >= 0), got {text[:32]!r}")
    return value


def _text_param(request: Request, name: str) -> str | None:
    text = request.query_params.get(name)
    if text is not None and (len(text) > 512 or not text.isprintable()):
        raise AdminError(400, "bad-parameter", f"{name} must be printable text of at most 512 characters")
    return text


async def _json_body(request: Request, limit: int = 65536) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    if len(body) > limit:
        raise AdminError(413, "body-too-large", f"admin request bodies are at most {limit} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AdminError(400, "bad-json", "the body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise AdminError(400, "bad-json", "the body must be a JSON object")
    return doc


def _filter_of(doc: dict[str, Any]) -> dict[str, Any]:
    """A DLQ filter (``source``, ``type``, ``ids``, ``since``, ``until``, ``error``) from a JSON
    body, each key checked."""
    unknown = sorted(set(doc) - _FILTER_KEYS - {"dry_run"})
    if unknown:
        raise AdminError(400, "bad-filter", f"unknown filter keys {unknown} (accepted: {', '.join(sorted(_FILTER_KEYS))}, dry_run)")
    match: dict[str, Any] = {}
    for key in ("source", "type", "error"):
        value = doc.get(key)
        if value is not None:
            if not isinstance(value, str) or len(value) > 512:
                raise AdminError(400, "bad-filter", f"{key} must be a string of at most 512 characters")
            match[key] = value
    for key in ("since", "until"):
        value = doc.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise AdminError(400, "bad-filter", f"{key} must be seconds since the epoch (a number >= 0)")
            match[key] = float(value)
    ids = doc.get("ids")
    if ids is not None:
        if not isinstance(ids, list) or len(ids) > MAX_LIMIT or not all(isinstance(i, str) and i for i in ids):
            raise AdminError(400, "bad-filter", f"ids must be a list of at most {MAX_LIMIT} non-empty strings")
        match["ids"] = ids
    return match


def _dead_letter_summary(dead: DeadLetter) -> dict[str, Any]:
    m = dead.message
    return {
        "id": m.id,
        "source": m.source,
        "type": m.type,
        "received_at": m.received_at,
        "dead_at": dead.dead_at,
        "attempts": dead.attempts,
        "last_error": dead.last_error,
    }


def _dead_letter_detail(dead: DeadLetter) -> dict[str, Any]:
    out = _dead_letter_summary(dead)
    body = dead.message.body
    try:
        out["body"], out["body_encoding"] = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        out["body"], out["body_encoding"] = base64.b64encode(body).decode("ascii"), "base64"
    out["headers"] = redact_headers(dict(dead.message.headers))
    out["ordering_key"] = dead.message.ordering_key
    out["failures"] = [f.to_json() for f in dead.failures]
    return out


class _Api:
    """The admin endpoints over one ``Service``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    # -- lookups -------------------------------------------------------------------------------
    def _upstream(self, request: Request) -> str:
        name = request.path_params["name"]
        if name not in self.service.clients:
            raise AdminError(404, "unknown-upstream", f"no upstream named {name[:64]!r}")
        return str(name)

    def _source(self, request: Request) -> str:
        name = request.path_params["name"]
        if name not in self.service.config.sources:
            raise AdminError(404, "unknown-source", f"no source named {name[:64]!r}")
        return str(name)

    def _sync_name(self, request: Request) -> str:
        name = request.path_params["name"]
        if name not in self.service.syncs:
            raise AdminError(404, "unknown-sync", f"no sync named {name[:64]!r}")
        return str(name)

    # -- endpoints -----------------------------------------------------------------------------
    async def openapi(self, request: Request) -> Any:
        return openapi_document()

    async def upstreams(self, request: Request) -> Any:
        return {"upstreams": [self.service.upstream_status(name) for name in self.service.clients]}

    async def upstream(self, request: Request) -> Any:
        return self.service.upstream_status(self._upstream(request))

    async def reset_breaker(self, request: Request) -> Any:
        name = self._upstream(request)
        client = self.service.clients[name]
        if client.breaker_state() is None:
            raise AdminError(409, "no-breaker", f"upstream {name!r} has no breaker (breaker = false)")
        client.reset_breaker()
        return {"upstream": name, "breaker": client.breaker_state()}

    async def invalidate(self, request: Request) -> Any:
        name = self._upstream(request)
        cache = self.service.clients[name].cache
        doc = await _json_body(request)
        given = {k: v for k, v in doc.items() if k in ("path", "prefix", "tag")}
        unknown = sorted(set(doc) - {"path", "prefix", "tag"})
        if unknown or len(given) != 1:
            raise AdminError(400, "bad-invalidation", 'give exactly one of {"path": "/x"}, {"prefix": "/x/"} or {"tag": "t"}')
        (kind, value), = given.items()
        if not isinstance(value, str) or not value or len(value) > 2048:
            raise AdminError(400, "bad-invalidation", f"{kind} must be a non-empty string of at most 2048 characters")
        if kind in ("path", "prefix") and not value.startswith("/"):
            raise AdminError(400, "bad-invalidation", f"{kind} must start with '/', got {value[:64]!r}")
        if cache is None:
            raise AdminError(409, "no-cache", f"upstream {name!r} has no cache configured")
        if kind == "path":
            removed = await cache.invalidate(value)
        elif kind == "prefix":
            removed = await cache.invalidate_prefix(value)
        else:
            removed = await cache.invalidate_tag(value)
        return {"upstream": name, kind: value, "removed": removed}

    async def sources(self, request: Request) -> Any:
        return {"sources": [await self.service.source_status(name) for name in self.service.config.sources]}

    async def source(self, request: Request) -> Any:
        return await self.service.source_status(self._source(request))

    async def pause(self, request: Request) -> Any:
        name = self._source(request)
        self.service.gate.pause(name)
        return await self.service.source_status(name)

    async def resume(self, request: Request) -> Any:
        name = self._source(request)
        self.service.gate.resume(name)
        return await self.service.source_status(name)

    async def events(self, request: Request) -> Any:
        limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
        status = _text_param(request, "status")
        if status is not None and status not in STATUSES:
            raise AdminError(400, "bad-parameter", f"status must be one of {', '.join(STATUSES)}, got {status[:32]!r}")
        found = self.service.events.list(
            source=_text_param(request, "source"), type=_text_param(request, "type"), status=status,
            since=_float_param(request, "since"), limit=limit,
        )
        return {"items": [e.summary() for e in found], "limit": limit, "kept": self.service.events.capacity}

    async def event(self, request: Request) -> Any:
        event_id = request.path_params["id"]
        seen = self.service.events.get(event_id, _text_param(request, "source"))
        if seen is None:
            raise AdminError(404, "unknown-event", f"no recent event with id {event_id[:64]!r} (see /admin/api/v1/dlq for dead letters)")
        return seen.detail()

    async def dlq_list(self, request: Request) -> Any:
        limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        match: dict[str, Any] = {}
        for key in ("source", "type", "error"):
            value = _text_param(request, key)
            if value is not None:
                match[key] = value
        for key in ("since", "until"):
            seconds = _float_param(request, key)
            if seconds is not None:
                match[key] = seconds
        dlq = self.service.inbox.dlq
        items = await dlq.list(limit=limit, offset=offset, **match)
        total = await dlq.count(**match)
        return {"items": [_dead_letter_summary(d) for d in items], "total": total, "limit": limit, "offset": offset}

    async def dlq_show(self, request: Request) -> Any:
        event_id = request.path_params["id"]
        source = _text_param(request, "source")
        found = await self.service.inbox.dlq.inspect(event_id, source=source)
        if found is None:
            raise AdminError(404, "unknown-dead-letter", f"no dead letter with id {event_id[:64]!r}")
        return _dead_letter_detail(found)

    async def dlq_replay(self, request: Request) -> Any:
        event_id = request.path_params["id"]
        source = _text_param(request, "source")
        moved = await self.service.inbox.dlq.replay(event_id, source=source)
        if not moved:
            raise AdminError(404, "unknown-dead-letter", f"no dead letter with id {event_id[:64]!r}")
        return {"replayed": moved}

    async def dlq_replay_where(self, request: Request) -> Any:
        doc = await _json_body(request)
        dry_run = doc.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise AdminError(400, "bad-filter", "dry_run must be true or false")
        match = _filter_of(doc)
        dlq = self.service.inbox.dlq
        if dry_run:
            return {"dry_run": True, "matched": await dlq.count(**match)}
        return {"dry_run": False, "replayed": await dlq.replay_where(**match)}

    async def dlq_purge(self, request: Request) -> Any:
        doc = await _json_body(request)
        dry_run = doc.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise AdminError(400, "bad-filter", "dry_run must be true or false")
        everything = doc.pop("all", False)
        if not isinstance(everything, bool):
            raise AdminError(400, "bad-filter", "all must be true or false")
        match = _filter_of(doc)
        if not match and not dry_run and not everything:
            raise AdminError(400, "bad-filter", 'give a filter, or "all": true to empty the whole DLQ')
        dlq = self.service.inbox.dlq
        if dry_run:
            return {"dry_run": True, "matched": await dlq.count(**match)}
        return {"dry_run": False, "purged": await dlq.purge(**match)}

    async def replay_jobs(self, request: Request) -> Any:
        return {"jobs": [j.to_json() for j in self.service.replay_jobs.all()]}

    async def replay_job_start(self, request: Request) -> Any:
        doc = await _json_body(request)
        if "dry_run" in doc:
            raise AdminError(400, "bad-filter", "a replay job has no dry_run: count with POST /admin/api/v1/dlq/replay")
        job = await self.service.replay_jobs.start(_filter_of(doc))  # type: ignore[arg-type]
        return job.to_json()

    def _job(self, request: Request) -> Any:
        job = self.service.replay_jobs.get(str(request.path_params["job"]))
        if job is None:
            raise AdminError(404, "unknown-job", "no such replay job")
        return job

    async def replay_job(self, request: Request) -> Any:
        return self._job(request).to_json()

    async def replay_job_cancel(self, request: Request) -> Any:
        job = self._job(request)
        job.cancel()
        if job._task is not None:  # it stops after the dead letter being replayed now
            await asyncio.wait([job._task], timeout=5)
        return job.to_json()

    async def syncs(self, request: Request) -> Any:
        return {"syncs": [await self.service.sync_status(name) for name in self.service.syncs]}

    async def sync(self, request: Request) -> Any:
        return await self.service.sync_status(self._sync_name(request))

    async def sync_trigger(self, request: Request) -> Any:
        name = self._sync_name(request)
        self.service.trigger_sync(name)
        return {"sync": name, "triggered": True}

    async def sync_reset(self, request: Request) -> Any:
        name = self._sync_name(request)
        await self.service.syncs[name].reset()
        return await self.service.sync_status(name)

    async def config(self, request: Request) -> Any:
        return self.service.loaded.redacted()

