"""Slack (https://api.slack.com/authentication/verifying-requests-from-slack).

``X-Slack-Signature: v0=<hex>`` is HMAC-SHA256 of the basestring ``v0:{timestamp}:{body}``
keyed with the signing secret; ``X-Slack-Request-Timestamp`` must be within five minutes.
Events API payloads carry ``event_id`` (same on Slack's retries) and ``event.type``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import SignatureInvalid
from ._base import TimestampedScheme, check_timestamp, header, verify_hmac

__all__ = ["Slack"]


class Slack(TimestampedScheme, name="slack", id_path="$.event_id", type_path="$.event.type"):
    """``Slack(secrets, tolerance=300)``: the app's signing secret(s)."""

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Check the timestamp and ``X-Slack-Signature``; raise ``SignatureInvalid`` if either fails."""
        ts = header(headers, "x-slack-request-timestamp", "Slack")
        value = header(headers, "x-slack-signature", "Slack")
        check_timestamp(ts, now, self.tolerance, "Slack")
        version, _, hexdigest = value.partition("=")
        if version != "v0" or not hexdigest:
            raise SignatureInvalid("X-Slack-Signature must look like v0=<hex>")
        basestring = b"v0:" + ts.strip().encode() + b":" + body
        verify_hmac(self._keys, basestring, [hexdigest], field="X-Slack-Signature")
