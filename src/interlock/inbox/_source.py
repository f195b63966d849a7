"""A configured webhook source: how its requests are verified and turned into a ``Message``."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._otel import TRACE_HEADERS
from .._redact import DEFAULT_HEADERS
from ..errors import ConfigError, MalformedPayload, SignatureInvalid, WebhookError
from ..stores.queue import Message
from ._locator import Locator
from .signatures import SignatureScheme

DEFAULT_MAX_BODY = 1_048_576
MAX_JSON_DEPTH = 100
"""How deep a body's JSON may nest (arrays and objects); deeper is refused with 400 before
parsing, so no document can exhaust the parser's recursion (provider payloads nest < 20)."""
MAX_KEY_CHARS = 512
"""The longest delivery id, event type or ordering key accepted: they are indexed, and a longer
one would be refused by the store on every retry of the delivery."""
SENSITIVE_HEADERS: frozenset[str] = DEFAULT_HEADERS
"""Request headers not stored with an event unless the source asks to keep them: credentials
of the sender, which handlers do not need and the queue would keep in plain text. The one list
of credential headers, ``interlock._redact.DEFAULT_HEADERS``, that logs and errors mask too."""

# Headers kept with the event for handlers; hop-by-hop and size headers are not useful later,
# and the trace context Interlock stores with an event (interlock-traceparent) is its own to
# write: a sender cannot choose the parent of the worker's span.
_DROPPED_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", *TRACE_HEADERS}
)
_REDACTED = "[redacted]"

# A JSON string (where brackets do not count), as the unrolled loop of JSON's escapes.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_PARENS = bytes.maketrans(b"[{]}", b"(())")  # depth alone: the kind of bracket does not matter
_STEPS = bytes.maketrans(b"()", b"\x01\xff")  # +1 and -1 as signed bytes
_QUICK_PASSES = 16


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON in ``body`` nests arrays and objects deeper than ``limit``.

    Counted without parsing, in C-speed passes over the bytes: strings are cut out, every byte
    but a bracket deleted, then each pass deletes the innermost ``()`` pairs, one level of
    depth; a document gone within ``limit`` passes (and at most 16 of them: payloads are
    shallow) is shallow enough. Otherwise (deeper, or brackets that do not pair up) the depth
    is counted exactly, as a running sum of +1/-1 steps. A body with no more than ``limit``
    opening brackets in all is not even scanned.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # Without an escaped quote, every other piece between quotes is a string (a split is
    # several times faster than the expression that understands escapes).
    outside = _JSON_STRING.sub(b"", body) if b'\\"' in body else b"".join(body.split(b'"')[::2])
    marks = rest = outside.translate(_PARENS, _NOT_BRACKETS)
    for _ in range(min(limit, _QUICK_PASSES)):
        shorter = rest.replace(b"()", b"")
        if not shorter:
            return False
        if len(shorter) == len(rest):
            break
        rest = shorter
    return max(itertools.accumulate(memoryview(marks.translate(_STEPS)).cast("b")), default=0) > limit


def _check_key(source: str, what: str, spec: str, value: str) -> str:
    """``value`` if it can be stored and indexed, else a ``MalformedPayload`` saying why: the
    sender retries a refused delivery, so a value the store cannot hold must be a 4xx, not the
    503 a failing put is."""
    if len(value) > MAX_KEY_CHARS:
        raise MalformedPayload(
            f"the {what} at {spec} is {len(value)} characters long; at most {MAX_KEY_CHARS} are accepted", source=source
        )
    if "\x00" in value:
        raise MalformedPayload(f"the {what} at {spec} holds a NUL character", source=source)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedPayload(
            f"the {what} at {spec} holds a lone surrogate (\\ud800-\\udfff), which is not text", source=source
        ) from None
    return value


@dataclass(frozen=True, slots=True)
class Source:
    """One ``POST /hooks/{name}`` endpoint. Build it with ``Inbox.source(...)``."""

    name: str
    signature: SignatureScheme
    max_body: int = DEFAULT_MAX_BODY
    dedupe: str | None = None
    """Header name or JSON path of the delivery id; defaults to the scheme's (``webhook-id``,
    ``X-GitHub-Delivery``, Stripe's ``$.id``...)."""
    event_type: str | None = None
    ordering_key: str | None = None
    """JSON path or header; events sharing its value are handled one at a time, in order."""
    json: bool = True
    """The body must be JSON (refused with 400 otherwise)."""
    max_depth: int = MAX_JSON_DEPTH
    """How deep the body's JSON may nest; deeper is refused with 400."""
    sensitive_headers: frozenset[str] = SENSITIVE_HEADERS
    """Request headers (any case; any collection of names is taken) not stored with the event,
    and redacted from logs."""
    keep_sensitive_headers: bool = False
    """Store the ``sensitive_headers`` with the event after all (a handler that needs the
    sender's ``Authorization``, say); they stay redacted from logs."""
    _id: Locator | None = field(default=None, repr=False)
    _type: Locator | None = field(default=None, repr=False)
    _order: Locator | None = field(default=None, repr=False)
    _parse: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        owner = f"Inbox.source({self.name!r})"
        if not self.name or "/" in self.name or not self.name.isprintable():
            raise ConfigError(owner, "name", "must be a non-empty URL path segment without '/'")
        if not isinstance(self.signature, SignatureScheme):
            raise ConfigError(
                owner, "signature", "must be a scheme from interlock.signatures (Stripe(...), GitHub(...), HMAC(...))"
            )
        if self.max_body < 1:
            raise ConfigError(owner, "max_body", f"must be >= 1 byte, got {self.max_body!r}")
        if self.max_depth < 1:
            raise ConfigError(owner, "max_depth", f"must be >= 1, got {self.max_depth!r}")
        if isinstance(self.sensitive_headers, str) or not all(isinstance(h, str) for h in self.sensitive_headers):
            raise ConfigError(owner, "sensitive_headers", "must be a collection of header names")
        object.__setattr__(self, "sensitive_headers", frozenset(h.lower() for h in self.sensitive_headers))
        sig = self.signature
        id_spec = self.dedupe or (
            f"{sig.id_header}" if sig.id_header else sig.id_path
        )
        type_spec = self.event_type or (sig.type_header if sig.type_header else sig.type_path)
        locate = Locator.parse
        id_loc = locate(owner, "dedupe", id_spec) if id_spec else None
        type_loc = locate(owner, "event_type", type_spec) if type_spec else None
        order_loc = locate(owner, "ordering_key", self.ordering_key) if self.ordering_key else None
        needs_json = any(loc is not None and loc.needs_json for loc in (id_loc, type_loc, order_loc))
        if needs_json and not self.json:
            raise ConfigError(owner, "json", "JSON paths are configured, so the body must be JSON")
        object.__setattr__(self, "_id", id_loc)
        object.__setattr__(self, "_type", type_loc)
        object.__setattr__(self, "_order", order_loc)
        object.__setattr__(self, "_parse", self.json)

    def accept(self, body: bytes, headers: Mapping[str, str], now: float) -> Message:
        """Verify and parse one request; raises a ``WebhookError`` subclass on bad input."""
        try:
            self.signature.verify(body, headers, now)
        except WebhookError as exc:
            exc.source = self.name
            raise
        except Exception as exc:  # a scheme choking on garbage must not become a 500
            raise SignatureInvalid(f"could not verify the signature: {type(exc).__name__}", source=self.name) from None
        doc: Any = None
        if self._parse:
            too_deep = f"body nests JSON deeper than {self.max_depth} levels"
            if json_depth_exceeds(body, self.max_depth):
                raise MalformedPayload(too_deep, source=self.name)
            try:
                doc = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedPayload(f"body is not valid JSON ({exc})", source=self.name) from None
            except RecursionError:  # a depth limit above the interpreter's own
                raise MalformedPayload(too_deep, source=self.name) from None
        name = self.name
        if self._id is not None:
            delivery_id = self._id.find(headers, doc)
            if not delivery_id:
                raise MalformedPayload(f"no delivery id at {self._id.spec} (needed to drop duplicates)", source=name)
            _check_key(name, "delivery id", self._id.spec, delivery_id)
        else:
            delivery_id = os.urandom(12).hex()
        event_type = ""
        if self._type is not None:
            event_type = _check_key(name, "event type", self._type.spec, self._type.find(headers, doc) or "")
        dropped = _DROPPED_HEADERS if self.keep_sensitive_headers else _DROPPED_HEADERS | self.sensitive_headers
        kept = {k: v for k, v in headers.items() if k not in dropped}
        return Message(
            source=self.name,
            id=delivery_id,
            type=event_type,
            body=body,
            headers=kept,
            received_at=now,
            ordering_key=self.ordering_key_of(headers, doc),
        )

    def redact(self, text: str, headers: Mapping[str, str]) -> str:
        """``text`` (an error about a request, for a log) with the values of the request's
        sensitive headers replaced by ``[redacted]``."""
        for name, value in headers.items():
            if name in self.sensitive_headers and len(value) >= 4:
                text = text.replace(value, _REDACTED)
        return text

    def ordering_key_of(self, headers: Mapping[str, str], doc: Any) -> str | None:
        """The queue's ordering key of an event of this source (None: no ordering), found at
        ``ordering_key`` in the headers or the parsed body ``doc``."""
        if self._order is None:
            return None
        key = self._order.find(headers, doc)
        if key is None:
            return None
        _check_key(self.name, "ordering key", self._order.spec, key)
        return ordering_key(self.name, key)


def ordering_key(source: str, key: str) -> str:
    """How the queue keys ordering: by source too, so two sources never wait on each other."""
    return f"{source}\x1f{key}"
