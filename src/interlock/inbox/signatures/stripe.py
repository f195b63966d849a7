"""Stripe (https://docs.stripe.com/webhooks#verify-manually).

``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``; the signed payload is ``{t}.{body}``,
HMAC-SHA256 keyed with the endpoint secret as text (``whsec_...``, prefix included). During a
secret roll Stripe sends one ``v1`` per active secret. Stripe has no delivery-id header: the
event id ``$.id`` is the same on every retry of an event, so it is the dedupe key.
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

__all__ = ["Stripe"]


class Stripe:
    name = "stripe"
    id_header: str | None = None
    id_path: str | None = "$.id"
    type_header: str | None = None
    type_path: str | None = "$.type"

    def __init__(self, secrets: Sequence[str | bytes] | str | bytes, *, tolerance: float = DEFAULT_TOLERANCE) -> None:
        self._keys = as_keys("Stripe", secrets)
        self.tolerance = check_tolerance("Stripe", tolerance)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        value = header(headers, "stripe-signature", "Stripe")
        ts: str | None = None
        given: list[bytes] = []
        for item in value.split(","):
            key, _, val = item.strip().partition("=")
            if key == "t":
                ts = val
            elif key == "v1":
                given.append(val.encode("latin-1").lower())
        if ts is None or not given:
            raise SignatureInvalid("Stripe-Signature header has no t= timestamp or no v1= signature")
        check_timestamp(ts, now, self.tolerance, "Stripe")
        signed = ts.encode() + b"." + body
        expected = [d.hex().encode() for d in hmac_digests(self._keys, signed)]
        if not matches_any(expected, given):
            raise SignatureInvalid("no v1 signature in Stripe-Signature matches the configured secrets")

    def __repr__(self) -> str:
        return f"Stripe(secrets={hidden(self._keys)}, tolerance={self.tolerance})"
