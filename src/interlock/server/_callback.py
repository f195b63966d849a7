"""Completion callbacks of 202 jobs: signed per Standard Webhooks and delivered through the
outbound ``Client``. Private to ``interlock.server``.

Standard Webhooks (https://www.standardwebhooks.com, "Signature scheme"): the signed content is
``{webhook-id}.{webhook-timestamp}.{body}``; ``webhook-signature`` is ``v1,`` and the base64
HMAC-SHA256 of it under the secret (``whsec_`` + base64). The ``webhook-id`` stays the same on
every retry of one callback (the receiver's dedupe key); the timestamp and signature are made
afresh on each attempt, so a receiver's replay window never rejects a late retry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..client import Client
from ..errors import ConfigError

__all__ = ["CallbackClients", "CallbackRejected", "callback_url_problem", "decode_secret", "sign"]


class CallbackRejected(Exception):
    """The callback's receiver answered something other than 2xx."""


def decode_secret(secret: str | bytes) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (raw bytes are taken as the key)."""
    if isinstance(secret, bytes):
        if not secret:
            raise ConfigError("Jobs", "callback_secret", "is empty")
        return secret
    value = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "Jobs", "callback_secret", "expected whsec_<base64>; the value is not base64"
        ) from None
    if not key:
        raise ConfigError("Jobs", "callback_secret", "decodes to an empty key")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent as ``msg_id`` at ``timestamp``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{digest}"}


def callback_url_problem(url: object, hosts: Sequence[str] | None, max_length: int = 2048) -> str | None:
    """Why ``url`` cannot be a callback URL (None: it can). Only absolute http(s) URLs, at most
    ``max_length`` characters, to one of ``hosts`` when an allow-list is given (an API that
    calls any URL a caller names can be turned against the network it runs in)."""
    if not isinstance(url, str) or not url:
        return "callback_url must be a non-empty string"
    if len(url) > max_length:
        return f"callback_url is longer than {max_length} characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "callback_url must be an absolute http:// or https:// URL"
    if parts.username or parts.password:
        return "callback_url must not carry credentials"
    if hosts is not None and parts.hostname.lower() not in {h.lower() for h in hosts}:
        return f"callback_url's host {parts.hostname!r} is not one this API calls back"
    return None


def split_url(url: str) -> tuple[str, str]:
    """``(origin, path?query)`` of an absolute URL."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return origin, target


class CallbackClients:
    """One outbound ``Client`` per callback origin, at most ``max_clients`` (the least recently
    used one is closed at the bound). ``factory(origin)`` builds a client; by default a plain
    ``Client(origin)`` (its retries, breaker and time limits)."""

    def __init__(self, factory: Callable[[str], Client] | None = None, *, max_clients: int = 32) -> None:
        self.factory = factory or (lambda origin: Client(origin, name="job-callbacks"))
        self.max_clients = max_clients
        self._clients: OrderedDict[str, Client] = OrderedDict()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], idempotency_key: str) -> int:
        """POST ``body`` to ``url``; the status. Raises ``CallbackRejected`` on a non-2xx."""
        origin, target = split_url(url)
        client = self._clients.get(origin)
        if client is None:
            client = self.factory(origin)
            self._clients[origin] = client
            while len(self._clients) > self.max_clients:
                _, old = self._clients.popitem(last=False)
                await old.aclose()
        self._clients.move_to_end(origin)
        response = await client.post(
            target,
            content=body,
            headers={"content-type": "application/json", **headers},
            idempotency_key=idempotency_key,
            route="/job-callback",
        )
        if not 200 <= response.status < 300:
            raise CallbackRejected(f"the job callback to {origin} answered {response.status}")
        return response.status

    async def aclose(self) -> None:
        """Close every client."""
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.aclose()

    def __repr__(self) -> str:
        return f"<CallbackClients origins={len(self._clients)}/{self.max_clients}>"


def payload(state: str, status: Mapping[str, Any], at: float) -> bytes:
    """The callback body: ``{"type": "job.succeeded", "timestamp": ..., "data": status}``, the
    Standard Webhooks payload shape."""
    import datetime as _dt

    stamp = _dt.datetime.fromtimestamp(at, tz=_dt.UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": f"job.{state}", "timestamp": stamp, "data": dict(status)}).encode()
