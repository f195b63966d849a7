"""A configured webhook source: how its requests are verified and turned into a ``Message``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, MalformedPayload, SignatureInvalid, WebhookError
from ..stores.queue import Message
from ._locator import Locator
from .signatures import SignatureScheme

DEFAULT_MAX_BODY = 1_048_576

# Headers kept with the event for handlers; hop-by-hop and size headers are not useful later.
_DROPPED_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


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
            try:
                doc = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedPayload(f"body is not valid JSON ({exc})", source=self.name) from None
        if self._id is not None:
            delivery_id = self._id.find(headers, doc)
            if not delivery_id:
                raise MalformedPayload(f"no delivery id at {self._id.spec} (needed to drop duplicates)", source=self.name)
        else:
            delivery_id = os.urandom(12).hex()
        event_type = (self._type.find(headers, doc) if self._type is not None else None) or ""
        kept = {k: v for k, v in headers.items() if k not in _DROPPED_HEADERS}
        return Message(
            source=self.name,
            id=delivery_id,
            type=event_type,
            body=body,
            headers=kept,
            received_at=now,
            ordering_key=self.ordering_key_of(headers, doc),
        )

    def ordering_key_of(self, headers: Mapping[str, str], doc: Any) -> str | None:
        """The queue's ordering key of an event of this source (None: no ordering), found at
        ``ordering_key`` in the headers or the parsed body ``doc``."""
        if self._order is None:
            return None
        key = self._order.find(headers, doc)
        return ordering_key(self.name, key) if key is not None else None


def ordering_key(source: str, key: str) -> str:
    """How the queue keys ordering: by source too, so two sources never wait on each other."""
    return f"{source}\x1f{key}"
