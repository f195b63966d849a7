"""Shopify (https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook).

``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the raw body keyed with the app's client
secret. ``X-Shopify-Webhook-Id`` is the same on every retry of one delivery (dedupe key) and
``X-Shopify-Topic`` is the event type (``orders/create``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from ...errors import SignatureInvalid
from ._base import as_keys, header, hidden, hmac_digests, matches_any

__all__ = ["Shopify"]


class Shopify:
    name = "shopify"
    id_header: str | None = "x-shopify-webhook-id"
    id_path: str | None = None
    type_header: str | None = "x-shopify-topic"
    type_path: str | None = None

    def __init__(self, secrets: Sequence[str | bytes] | str | bytes) -> None:
        self._keys = as_keys("Shopify", secrets)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        value = header(headers, "x-shopify-hmac-sha256", "Shopify")
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureInvalid("X-Shopify-Hmac-Sha256 is not base64") from None
        if not matches_any(hmac_digests(self._keys, body), [given]):
            raise SignatureInvalid("X-Shopify-Hmac-Sha256 does not match the configured secrets")

    def __repr__(self) -> str:
        return f"Shopify(secrets={hidden(self._keys)})"
