"""Shopify (https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook).

``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the raw body keyed with the app's client
secret. ``X-Shopify-Webhook-Id`` is the same on every retry of one delivery (dedupe key) and
``X-Shopify-Topic`` is the event type (``orders/create``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ._base import KeyedScheme, header, verify_hmac

__all__ = ["Shopify"]


class Shopify(KeyedScheme, name="shopify", id_header="x-shopify-webhook-id", type_header="x-shopify-topic"):
    """``Shopify(secrets)``: the app's client secret(s)."""

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Check ``X-Shopify-Hmac-Sha256`` against the body; raise ``SignatureInvalid`` if it fails."""
        value = header(headers, "x-shopify-hmac-sha256", "Shopify")
        verify_hmac(self._keys, body, [value], field="X-Shopify-Hmac-Sha256", encoding="base64")
