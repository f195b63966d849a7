"""Slack (https://api.slack.com/authentication/verifying-requests-from-slack).

``X-Slack-Signature: v0=<hex>`` is HMAC-SHA256 of the basestring ``v0:{timestamp}:{body}``
keyed with the signing secret; ``X-Slack-Request-Timestamp`` must be within five minutes.
Events API payloads carry ``event_id`` (same on Slack's retries) and ``event.type``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...errors import SignatureInvalid
from ._base import (
    DEFAULT_TOLERANCE,
    as_keys,
    check_timestamp,
    check_tolerance,
    header,
    hidden,
    hmac_digests,
    matches_any,
)

__all__ = ["Slack"]


class Slack:
    name = "slack"
    id_header: str | None = None
    id_path: str | None = "$.event_id"
    type_header: str | None = None
    type_path: str | None = "$.event.type"

    def __init__(self, secrets: Sequence[str | bytes] | str | bytes, *, tolerance: float = DEFAULT_TOLERANCE) -> None:
        self._keys = as_keys("Slack", secrets)
        self.tolerance = check_tolerance("Slack", tolerance)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        ts = header(headers, "x-slack-request-timestamp", "Slack")
        value = header(headers, "x-slack-signature", "Slack")
        check_timestamp(ts, now, self.tolerance, "Slack")
        version, _, hexdigest = value.partition("=")
        if version != "v0" or not hexdigest:
            raise SignatureInvalid("X-Slack-Signature must look like v0=<hex>")
        basestring = b"v0:" + ts.strip().encode() + b":" + body
        expected = [d.hex().encode() for d in hmac_digests(self._keys, basestring)]
        if not matches_any(expected, [hexdigest.strip().lower().encode("latin-1")]):
            raise SignatureInvalid("X-Slack-Signature does not match the configured secrets")

    def __repr__(self) -> str:
        return f"Slack(secrets={hidden(self._keys)}, tolerance={self.tolerance})"
