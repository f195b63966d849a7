"""The OpenAPI 3.1 document of the admin API (``GET /admin/api/openapi.json``).

Written out by hand, next to nothing else: it is the contract the dashboard and scripts build
on, so a change to a JSON shape shows up here in review. A test checks every route of the app
is described and every described route exists.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["openapi_document"]

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Any], required: list[str] | None = None, extra: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    if not extra:
        out["additionalProperties"] = False
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SCHEMAS: dict[str, Any] = {
    "Problem": _obj(
        {"type": _STR, "title": _STR, "status": _INT, "detail": _STR},
        ["type", "title", "status", "detail"],
    ),
    "Upstream": _obj(
        {
            "name": _STR,
            "base_url": {**_STR, "description": "passwords in the URL shown as ***"},
            "breaker": _nullable({"type": "string", "enum": ["closed", "open", "half_open"]}),
            "in_flight": _nullable(_INT),
            "retries": _INT,
            "latency": {"type": "object", "description": "seconds: p50, p95, p99 (absent before any call)"},
            "calls": {"type": "object", "description": "calls by outcome (2xx, 4xx, 5xx, error names)"},
            "rate_limit": _nullable(
                _obj(
                    {
                        "keys": {"type": "object", "description": "per quota key: rate, capacity, remaining"},
                        "waited": _NUM,
                        "throttled": _INT,
                        "headroom": _nullable({**_NUM, "description": "remaining / capacity, 0..1, lowest key"}),
                    }
                )
            ),
            "cache": _nullable({"type": "object", "description": "hits, misses, revalidated, stale, per route"}),
            "proxied": _INT,
        },
        ["name", "base_url", "breaker", "retries"],
    ),
    "UpstreamList": _obj({"upstreams": {"type": "array", "items": _ref("Upstream")}}, ["upstreams"]),
    "BreakerReset": _obj({"upstream": _STR, "breaker": _nullable(_STR)}, ["upstream", "breaker"]),
    "Invalidation": {
        "type": "object",
        "description": "exactly one of path, prefix, tag",
        "properties": {"path": _STR, "prefix": _STR, "tag": _STR},
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
    },
    "Invalidated": _obj({"upstream": _STR, "removed": _INT}, ["upstream", "removed"]),
    "Source": _obj(
        {
            "name": _STR,
            "scheme": _STR,
            "paused": _BOOL,
            "handler": _nullable(_STR),
            "forward": _nullable({**_STR, "description": "the forward URL, passwords shown as ***"}),
            "received": _INT,
            "duplicates": _INT,
            "processed": _INT,
            "retries": _INT,
            "dead_lettered": _INT,
            "dead_letters": {**_INT, "description": "waiting in the DLQ now"},
        },
        ["name", "scheme", "paused"],
    ),
    "SourceList": _obj({"sources": {"type": "array", "items": _ref("Source")}}, ["sources"]),
    "Event": _obj(
        {
            "source": _STR,
            "id": _STR,
            "type": _STR,
            "status": {"type": "string", "enum": ["processing", "succeeded", "failed", "paused"]},
            "received_at": _NUM,
            "updated_at": _NUM,
            "attempts": _INT,
            "last_error": _nullable(_STR),
        },
        ["source", "id", "type", "status", "attempts"],
    ),
    "EventPage": _obj(
        {"items": {"type": "array", "items": _ref("Event")}, "limit": _INT, "kept": {**_INT, "description": "events remembered"}},
        ["items", "limit", "kept"],
    ),
    "EventDetail": {
        "allOf": [
            _ref("Event"),
            _obj(
                {
                    "body": _STR,
                    "body_encoding": {"type": "string", "enum": ["utf-8", "base64"]},
                    "body_truncated": _BOOL,
                    "headers": {"type": "object", "additionalProperties": _STR},
                    "attempt_history": {
                        "type": "array",
                        "items": _obj({"attempt": _INT, "started_at": _NUM, "finished_at": _NUM, "error": _nullable(_STR)}),
                    },
                },
                ["body", "body_encoding", "headers", "attempt_history"],
            ),
        ]
    },
    "DeadLetter": _obj(
        {
            "id": _STR,
            "source": _STR,
            "type": _STR,
            "received_at": _NUM,
            "dead_at": _NUM,
            "attempts": _INT,
            "last_error": _STR,
        },
        ["id", "source", "type", "received_at", "dead_at", "attempts", "last_error"],
    ),
    "DeadLetterDetail": {
        "allOf": [
            _ref("DeadLetter"),
            _obj(
                {
                    "body": _STR,
                    "body_encoding": {"type": "string", "enum": ["utf-8", "base64"]},
                    "headers": {"type": "object", "additionalProperties": _STR},
                    "ordering_key": _nullable(_STR),
                    "failures": {
                        "type": "array",
                        "items": _obj({"attempt": _INT, "at": _NUM, "error": _STR}, ["attempt", "at", "error"]),
                    },
                },
                ["body", "body_encoding", "headers", "failures"],
            ),
        ]
    },
    "DeadLetterPage": _obj(
        {"items": {"type": "array", "items": _ref("DeadLetter")}, "total": _INT, "limit": _INT, "offset": _INT},
        ["items", "total", "limit", "offset"],
    ),
    "DeadLetterFilter": {
        "type": "object",
        "properties": {
            "source": _STR,
            "type": _STR,
            "ids": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 1000},
            "since": {"type": "number", "minimum": 0},
            "until": {"type": "number", "minimum": 0},
            "error": _STR,
            "dry_run": _BOOL,
        },
        "additionalProperties": False,
    },
    "Replayed": _obj({"dry_run": _BOOL, "replayed": _INT, "matched": _INT}),
    "Purged": _obj({"dry_run": _BOOL, "purged": _INT, "matched": _INT}),
    "ReplayJob": _obj(
        {
            "id": _STR,
            "match": {"type": "object", "description": "the filter"},
            "state": {"type": "string", "enum": ["running", "succeeded", "cancelled", "failed"]},
            "total": {**_INT, "description": "matching dead letters when the job started (at most these are replayed)"},
            "done": {**_INT, "description": "dead letters handled so far (progress: done / total)"},
            "replayed": _INT,
            "error": _STR,
        },
        ["id", "state", "total", "done", "replayed"],
    ),
    "ReplayJobList": _obj({"jobs": {"type": "array", "items": _ref("ReplayJob")}}, ["jobs"]),
    "ReplayFilter": {
        "type": "object",
        "properties": {
            "source": _STR,
            "type": _STR,
            "ids": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 1000},
            "since": {"type": "number", "minimum": 0},
            "until": {"type": "number", "minimum": 0},
            "error": _STR,
        },
        "additionalProperties": False,
    },
    "Sync": _obj(
        {
            "name": _STR,
            "upstream": _STR,
            "path": _STR,
            "every": _nullable(_NUM),
            "running": _BOOL,
            "checkpoint": {"description": "the stored checkpoint, or null before the first poll"},
            "ledger": {"type": "object"},
            "dead_letters": _INT,
            "polls": _INT,
            "last_report": _nullable({"type": "object"}),
        },
        ["name", "upstream", "path"],
    ),
    "SyncList": _obj({"syncs": {"type": "array", "items": _ref("Sync")}}, ["syncs"]),
    "Triggered": _obj({"sync": _STR, "triggered": _BOOL}, ["sync", "triggered"]),
    "Config": {"type": "object", "description": "the effective config; every secret shown as ***"},
}

_PROBLEM = {"description": "a problem (RFC 9457)", "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _ok(schema: str, description: str = "OK", status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}}


def _op(summary: str, schema: str, *, params: list[Any] | None = None, body: str | None = None,
        status: str = "200", errors: tuple[str, ...] = ()) -> dict[str, Any]:
    responses = {**_ok(schema, status=status), "401": _PROBLEM, "503": _PROBLEM}
    for code in errors:
        responses[code] = _PROBLEM
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": _ref(body)}}}
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_DLQ_QUERY = [
    _query("source", _STR, "only this source's dead letters"),
    _query("type", _STR, "only this event type"),
    _query("error", _STR, "a substring of the error history"),
    _query("since", {"type": "number", "minimum": 0}, "dead-lettered at or after (epoch seconds)"),
    _query("until", {"type": "number", "minimum": 0}, "dead-lettered before (epoch seconds)"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size (default 100)"),
    _query("offset", {"type": "integer", "minimum": 0}, "first item (default 0)"),
]

_PATHS: dict[str, Any] = {
    "/admin/api/v1/upstreams": {"get": _op("Upstreams with live stats, breaker state, rate-limit headroom", "UpstreamList")},
    "/admin/api/v1/upstreams/{name}": {
        "get": _op("One upstream", "Upstream", params=[_path_param("name")], errors=("404",))
    },
    "/admin/api/v1/upstreams/{name}/breaker/reset": {
        "post": _op("Close the upstream's breaker now", "BreakerReset", params=[_path_param("name")], errors=("404", "409"))
    },
    "/admin/api/v1/upstreams/{name}/cache/invalidate": {
        "post": _op(
            "Forget cached answers by path, prefix or tag", "Invalidated", params=[_path_param("name")],
            body="Invalidation", errors=("400", "404", "409", "413"),
        )
    },
    "/admin/api/v1/sources": {"get": _op("Webhook sources with their counters", "SourceList")},
    "/admin/api/v1/sources/{name}": {"get": _op("One source", "Source", params=[_path_param("name")], errors=("404",))},
    "/admin/api/v1/sources/{name}/pause": {
        "post": _op("Pause processing (events are still received and stored)", "Source", params=[_path_param("name")], errors=("404",))
    },
    "/admin/api/v1/sources/{name}/resume": {
        "post": _op("Resume processing", "Source", params=[_path_param("name")], errors=("404",))
    },
    "/admin/api/v1/events": {
        "get": _op(
            "Events this process's workers handled, most recent first (the last 1000)", "EventPage",
            params=[
                _query("source", _STR, "only this source"),
                _query("type", _STR, "only this event type"),
                _query("status", {"type": "string", "enum": ["processing", "succeeded", "failed", "paused"]}, "only this status"),
                _query("since", {"type": "number", "minimum": 0}, "received at or after (epoch seconds)"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most (default 100)"),
            ],
            errors=("400",),
        )
    },
    "/admin/api/v1/events/{id}": {
        "get": _op(
            "One event with its raw body, headers and every attempt's error", "EventDetail",
            params=[_path_param("id"), _query("source", _STR, "the source, when ids repeat across sources")],
            errors=("400", "404"),
        )
    },
    "/admin/api/v1/dlq": {"get": _op("Dead letters, oldest first", "DeadLetterPage", params=_DLQ_QUERY, errors=("400",))},
    "/admin/api/v1/dlq/replay": {
        "post": _op(
            "Replay every matching dead letter (dry_run: only count them)", "Replayed", body="DeadLetterFilter",
            errors=("400", "413"),
        )
    },
    "/admin/api/v1/dlq/purge": {
        "post": _op(
            "Delete matching dead letters (an empty filter needs \"all\": true)", "Purged", body="DeadLetterFilter",
            errors=("400", "413"),
        )
    },
    "/admin/api/v1/dlq/replay-jobs": {
        "get": _op("Bulk replay jobs, newest first", "ReplayJobList"),
        "post": _op(
            "Start a bulk replay job (one dead letter at a time, with progress, cancellable)", "ReplayJob",
            body="ReplayFilter", status="202", errors=("400", "413"),
        ),
    },
    "/admin/api/v1/dlq/replay-jobs/{job}": {
        "get": _op("One replay job's progress", "ReplayJob", params=[_path_param("job")], errors=("404",)),
        "delete": _op("Cancel a replay job after the dead letter it is replaying", "ReplayJob", params=[_path_param("job")], errors=("404",)),
    },
    "/admin/api/v1/dlq/{id}": {
        "get": _op(
            "One dead letter with its raw body, headers and every attempt's error", "DeadLetterDetail",
            params=[_path_param("id"), _query("source", _STR, "the source, when ids repeat across sources")],
            errors=("400", "404"),
        )
    },
    "/admin/api/v1/dlq/{id}/replay": {
        "post": _op(
            "Send one dead letter back to the workers", "Replayed",
            params=[_path_param("id"), _query("source", _STR, "the source, when ids repeat across sources")],
            errors=("400", "404"),
        )
    },
    "/admin/api/v1/syncs": {"get": _op("Sync jobs and their status", "SyncList")},
    "/admin/api/v1/syncs/{name}": {"get": _op("One sync job", "Sync", params=[_path_param("name")], errors=("404",))},
    "/admin/api/v1/syncs/{name}/trigger": {
        "post": _op("Poll now", "Triggered", params=[_path_param("name")], status="202", errors=("404",))
    },
    "/admin/api/v1/syncs/{name}/reset": {
        "post": _op("Forget the checkpoint and ledger", "Sync", params=[_path_param("name")], errors=("404",))
    },
    "/admin/api/v1/config": {"get": _op("The effective config, secrets redacted", "Config")},
    "/admin/api/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}},
                          "401": _PROBLEM, "503": _PROBLEM},
        }
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Interlock admin API",
        "version": "1",
        "description": "Every route needs Authorization: Bearer <admin token> ([server] admin_token).",
    },
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
}


def openapi_document() -> dict[str, Any]:
    """The admin API's OpenAPI 3.1 document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_DOCUMENT)
