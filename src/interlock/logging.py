"""``interlock.logging``: one JSON object per log line, with secrets masked before it is written.

Plug it into the standard ``logging`` module::

    import logging
    import interlock.logging

    interlock.logging.configure(level="INFO")            # JSON on stderr, for the root logger
    # or, on a handler of your own:
    handler.setFormatter(interlock.logging.JSONFormatter(json_paths=["$.card.number"]))

Each line is an object with ``time`` (RFC 3339, UTC), ``level``, ``logger``, ``message``, then
the record's fields: what Interlock attaches to its records (``upstream``, ``route``,
``status``, ``attempts``, ``duration_ms``, ``tracking_id``...), the ``correlation_id`` of the
call or event being handled, the ``trace_id`` and ``span_id`` of the current OpenTelemetry span
(when ``opentelemetry-api`` is installed and a span is recording), and any ``extra=`` keys of the
caller's own. An exception is one ``exception`` string.

Redaction comes before writing, for the message, the exception text and every field: the
values of credential headers (``Authorization``, ``Cookie``, ``X-API-Key``...), credentials in
URLs (``user:password@``, ``?api_key=...``) and the values at the configured JSON paths
(``$.card.number``) in any field holding a JSON document. The names come from one place,
``interlock._redact``; pass ``redaction=`` to add a client's own.

structlog: ``add_interlock_fields`` is a processor that puts the same fields, under the same
names and unchanged, into structlog's event dict (as ``foreign_pre_chain`` of structlog's
``ProcessorFormatter`` for the stdlib records Interlock writes, or in structlog's own chain);
``redact_event`` masks an event dict the way the formatter masks a record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import IO, Any

from ._ids import current_correlation_id
from ._jsonpath import JsonPath
from ._redact import MASK, REDACTION, Redaction

__all__ = [
    "FIELDS",
    "JSONFormatter",
    "Redactor",
    "add_interlock_fields",
    "configure",
    "record_fields",
    "redact_event",
]

FIELDS = (
    "correlation_id",
    "tracking_id",
    "upstream",
    "route",
    "method",
    "status",
    "attempt",
    "attempts",
    "duration_ms",
    "trace_id",
    "span_id",
)
"""The fields Interlock's own records carry (when they apply), written in this order."""

# Attributes every LogRecord has: what is left in a record's __dict__ is the caller's extra=.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "interlock",
}
_MAX_FIELD = 8192
"""The longest text a field's value is written with (longer is cut, marked with ``...``)."""
_MAX_DEPTH = 8
_MAX_JSON_TEXT = 1_048_576
"""Text longer than this is not searched for JSON documents (credentials are still masked)."""
_MAX_DOCUMENTS = 64
"""How many '{' of one text are tried as the start of a JSON document."""
_DECODER = json.JSONDecoder()


def _trace_ids() -> tuple[str, str] | None:
    # Only when something imported the OpenTelemetry API already: without it there can be no
    # current span, and logging must not import it (nor cost more than this lookup).
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None
    ctx = api.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


class Redactor:
    """Masks secrets in values about to be logged: ``redaction``'s headers and query
    parameters, and the values at ``json_paths`` (``["$.card.number", "$.password"]``) in
    JSON documents (mappings, lists, or text holding one)."""

    def __init__(self, *, redaction: Redaction | None = None, json_paths: Iterable[str] = ()) -> None:
        if isinstance(json_paths, str):
            raise TypeError(f"json_paths must be a collection of paths, not one string: {json_paths!r}")
        self.redaction = redaction or REDACTION
        self.json_paths = tuple(JsonPath.parse(p, owner="Redactor", field="json_paths") for p in json_paths)
        # For JSON that cannot be parsed (a body cut at N bytes, a log line quoting part of a
        # document): the value of any key named like a path's last step is masked, to the
        # end of the text if its string is cut short.
        names = sorted({p.steps[-1] for p in self.json_paths if p.steps and isinstance(p.steps[-1], str)})
        self._by_key = (
            re.compile(
                r'("(?:' + "|".join(re.escape(n) for n in names) + r')"\s*:\s*)'
                r'(?:"(?:[^"\\]|\\.)*"?|[-+0-9.eE]+|true|false|null)'
            )
            if names
            else None
        )

    def text(self, value: str) -> str:
        """Free text with its credentials masked, and the JSON-path values of the JSON
        documents it holds (the whole text, or objects inside it: ``order {"card": ...}``)."""
        if self.json_paths and "{" in value and len(value) <= _MAX_JSON_TEXT:
            value = self._json_in_text(value)
        if self._by_key is not None:
            value = self._by_key.sub(lambda m: f'{m.group(1)}"{MASK}"', value)
        return self.redaction.mask_text(value)

    def _json_in_text(self, value: str) -> str:
        # Each '{' may open a document: decode from there (bounded by _MAX_DOCUMENTS tries).
        out: list[str] = []
        pos = 0
        for _ in range(_MAX_DOCUMENTS):
            start = value.find("{", pos)
            if start < 0:
                break
            try:
                doc, end = _DECODER.raw_decode(value, start)
            except ValueError:
                out.append(value[pos : start + 1])
                pos = start + 1
                continue
            out.append(value[pos:start])
            out.append(json.dumps(self.value(doc), separators=(",", ":")))
            pos = end
        out.append(value[pos:])
        return "".join(out)

    def body(self, body: bytes) -> bytes:
        """A request or response body with JSON-path values and credentials masked."""
        return self.text(body.decode("utf-8", errors="replace")).encode()

    def value(self, value: Any, depth: int = 0) -> Any:
        """Any JSON-shaped value with its secrets masked (a copy; the original is untouched)."""
        if isinstance(value, str):
            return self.text(value)
        if depth >= _MAX_DEPTH:
            return value if isinstance(value, int | float | bool) or value is None else "..."
        if isinstance(value, Mapping):
            masked = {
                str(k): MASK if self.redaction.is_sensitive_header(str(k)) else self.value(v, depth + 1)
                for k, v in value.items()
            }
            if self.json_paths:
                self._mask_paths(masked)
            return masked
        if isinstance(value, list | tuple):
            items = [self.value(v, depth + 1) for v in value]
            if self.json_paths:
                self._mask_paths(items)
            return items
        return value

    def _mask_paths(self, doc: Any) -> None:
        for path in self.json_paths:
            if path.is_root:
                continue
            parent = JsonPath(path.text, path.steps[:-1]).find(doc)
            last = path.steps[-1]
            if isinstance(last, int):
                if isinstance(parent, list) and last < len(parent):
                    parent[last] = MASK
            elif isinstance(parent, dict) and last in parent:
                parent[last] = MASK

    def headers(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Header pairs with the credential values masked."""
        return self.redaction.mask_headers(items)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of ``record`` as the JSON line carries them (unmasked): Interlock's own
    (``record.interlock``), the caller's ``extra=`` keys, the current correlation id and the
    current span's trace and span ids."""
    fields: dict[str, Any] = {}
    own = getattr(record, "interlock", None)
    if isinstance(own, Mapping):
        fields.update(own)
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields.setdefault(key, value)
    if "correlation_id" not in fields:
        cid = fields.get("request_id") or current_correlation_id()
        if cid:
            fields["correlation_id"] = cid
    if "trace_id" not in fields:
        ids = _trace_ids()
        if ids is not None:
            fields["trace_id"], fields["span_id"] = ids
    return {k: v for k, v in fields.items() if v is not None}


def _rfc3339(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created * 1000) % 1000:03d}Z"


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_FIELD:
        return value[: _MAX_FIELD - 3] + "..."
    return value


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line (see the module docstring), masking
    secrets first: ``redaction`` names the credential headers and query parameters (default:
    ``interlock._redact.REDACTION``), ``json_paths`` the values to mask in JSON documents.
    ``static`` fields (``{"service": "billing"}``) go into every line."""

    def __init__(
        self,
        *,
        redaction: Redaction | None = None,
        json_paths: Iterable[str] = (),
        static: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.redactor = Redactor(redaction=redaction, json_paths=json_paths)
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON, its secrets masked."""
        redactor = self.redactor
        line: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redactor.text(record.getMessage()),
        }
        line.update(self.static)
        fields = redactor.value(record_fields(record))  # a field named like a credential header is masked too
        for key in FIELDS:
            if key in fields:
                line[key] = _bounded(fields.pop(key))
        for key, value in fields.items():
            if key not in line:
                line[key] = _bounded(_jsonable(value))
        if record.exc_info:
            line["exception"] = redactor.text(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redactor.text(record.exc_text)
        if record.stack_info:
            line["stack"] = redactor.text(self.formatStack(record.stack_info))
        return json.dumps(line, default=_default, ensure_ascii=False, separators=(",", ":"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | dict | list) or value is None:
        return value
    return REDACTION.mask_text(str(value))


def _default(value: Any) -> str:
    return REDACTION.mask_text(str(value))


def add_interlock_fields(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: Interlock's fields, under the names the JSON formatter writes,
    into ``event_dict``. For a stdlib record (structlog's ``ProcessorFormatter`` passes it as
    ``_record``) they are the record's; for a structlog event, the current correlation id and
    span. Values already in the event are kept."""
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        fields = record_fields(record)
    else:
        fields = {}
        cid = current_correlation_id()
        if cid:
            fields["correlation_id"] = cid
        ids = _trace_ids()
        if ids is not None:
            fields["trace_id"], fields["span_id"] = ids
    for key, value in fields.items():
        event_dict.setdefault(key, value)
    return event_dict


_DEFAULT_REDACTOR = Redactor()


def redact_event(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor masking credentials in every value of ``event_dict`` (the default
    redaction; for JSON paths, use ``Redactor(json_paths=...).value`` in a processor of your own)."""
    for key in list(event_dict):
        if key == "_record" or key == "_from_structlog":
            continue
        value = event_dict[key]
        event_dict[key] = MASK if REDACTION.is_sensitive_header(key) else _DEFAULT_REDACTOR.value(value)
    return event_dict


def configure(
    *,
    level: int | str = "INFO",
    format: str = "json",
    stream: IO[str] | None = None,
    json_paths: Iterable[str] = (),
    redaction: Redaction | None = None,
    logger: str = "",
) -> logging.Handler:
    """Send ``logger``'s records (the root logger by default) to ``stream`` (stderr) at
    ``level``, as JSON lines (``format="json"``) or as text for people (``"text"``), both
    redacted. Replaces the handlers this function installed before; returns the new one."""
    if format not in ("json", "text"):
        raise ValueError(f"format must be 'json' or 'text', got {format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JSONFormatter(redaction=redaction, json_paths=json_paths)
        if format == "json"
        else _TextFormatter(Redactor(redaction=redaction, json_paths=json_paths))
    )
    handler._interlock = True  # type: ignore[attr-defined]
    target = logging.getLogger(logger or None)
    for old in [h for h in target.handlers if getattr(h, "_interlock", False)]:
        target.removeHandler(old)
    target.addHandler(handler)
    target.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


class _TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))
