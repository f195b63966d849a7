"""Stripe (https://docs.stripe.com/webhooks#verify-manually).

``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``; the signed payload is ``{t}.{body}``,
HMAC-SHA256 keyed with the endpoint secret as text (``whsec_...``, prefix included). During a
secret roll Stripe sends one ``v1`` per active secret. Stripe has no delivery-id header: the
event id ``$.id`` is the same on every retry of an event, so it is the dedupe key.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import SignatureInvalid
from ._base import TimestampedScheme, check_timestamp, header, verify_hmac

__all__ = ["Stripe"]


class Stripe(TimestampedScheme, name="stripe", id_path="$.id", type_path="$.type"):
    """``Stripe(secrets, tolerance=300)``: the endpoint's signing secret(s), ``whsec_...``."""

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Check the ``t=`` timestamp and the ``v1=`` signatures; raise ``SignatureInvalid`` if
        the timestamp is stale or no signature matches."""
        value = header(headers, "stripe-signature", "Stripe")
        ts: str | None = None
        given: list[str] = []
        for item in value.split(","):
            key, _, val = item.strip().partition("=")
            if key == "t":
                ts = val
            elif key == "v1":
                given.append(val)
        if ts is None or not given:
            raise SignatureInvalid("Stripe-Signature header has no t= timestamp or no v1= signature")
        check_timestamp(ts, now, self.tolerance, "Stripe")
        verify_hmac(
            self._keys, ts.encode() + b"." + body, given, field="Stripe-Signature",
            mismatch="no v1 signature in Stripe-Signature matches the configured secrets",
        )
