"""GitHub (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries).

``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body. GitHub signs no timestamp,
so replays are caught by dedupe on ``X-GitHub-Delivery`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...errors import SignatureInvalid
from ._base import as_keys, header, hidden, hmac_digests, matches_any

__all__ = ["GitHub"]


class GitHub:
    name = "github"
    id_header: str | None = "x-github-delivery"
    id_path: str | None = None
    type_header: str | None = "x-github-event"
    type_path: str | None = None

    def __init__(self, secrets: Sequence[str | bytes] | str | bytes) -> None:
        self._keys = as_keys("GitHub", secrets)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        value = header(headers, "x-hub-signature-256", "GitHub")
        algorithm, _, hexdigest = value.partition("=")
        if algorithm != "sha256" or not hexdigest:
            raise SignatureInvalid("X-Hub-Signature-256 must look like sha256=<hex>")
        expected = [d.hex().encode() for d in hmac_digests(self._keys, body)]
        if not matches_any(expected, [hexdigest.strip().lower().encode("latin-1")]):
            raise SignatureInvalid("X-Hub-Signature-256 does not match the configured secrets")

    def __repr__(self) -> str:
        return f"GitHub(secrets={hidden(self._keys)})"
