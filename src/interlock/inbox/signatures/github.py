"""GitHub (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries).

``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body. GitHub signs no timestamp,
so replays are caught by dedupe on ``X-GitHub-Delivery`` only.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import SignatureInvalid
from ._base import KeyedScheme, header, verify_hmac

__all__ = ["GitHub"]


class GitHub(KeyedScheme, name="github", id_header="x-github-delivery", type_header="x-github-event"):
    """``GitHub(secrets)``: the webhook secret(s) configured on the repository or app."""

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Check ``X-Hub-Signature-256`` against the body; raise ``SignatureInvalid`` if it fails."""
        value = header(headers, "x-hub-signature-256", "GitHub")
        algorithm, _, hexdigest = value.partition("=")
        if algorithm != "sha256" or not hexdigest:
            raise SignatureInvalid("X-Hub-Signature-256 must look like sha256=<hex>")
        verify_hmac(self._keys, body, [hexdigest], field="X-Hub-Signature-256")
