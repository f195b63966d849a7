"""Standard Webhooks (https://www.standardwebhooks.com, spec section "Signature scheme").

Signed content is ``{webhook-id}.{webhook-timestamp}.{body}``. ``webhook-signature`` holds
space-delimited ``version,base64`` pairs: ``v1`` is HMAC-SHA256 with a ``whsec_``-prefixed
base64 secret, ``v1a`` is ed25519 with a ``whpk_``-prefixed base64 public key. Svix sends the
same scheme under ``svix-*`` header names, accepted too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConfigError, SignatureInvalid
from ._base import DEFAULT_TOLERANCE, check_timestamp, check_tolerance, hidden, hmac_digests, matches_any

__all__ = ["StandardWebhooks"]


def _b64(owner: str, field: str, value: str | bytes, prefix: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if value.startswith(prefix):
        value = value[len(prefix) :]
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(owner, field, f"expected {prefix}<base64>; the value is not base64") from None
    if not decoded:
        raise ConfigError(owner, field, "decodes to an empty key")
    return decoded


class StandardWebhooks:
    """``StandardWebhooks(secrets, public_keys=(), tolerance=300)``: ``whsec_`` secrets for
    ``v1`` signatures and/or ``whpk_`` ed25519 public keys for ``v1a`` (needs ``cryptography``)."""

    name = "standard-webhooks"
    id_header: str | None = "webhook-id"
    id_path: str | None = None
    type_header: str | None = None
    type_path: str | None = "$.type"

    def __init__(
        self,
        secrets: Sequence[str | bytes] | str | bytes = (),
        *,
        public_keys: Sequence[str | bytes] = (),
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        if isinstance(secrets, str | bytes):
            secrets = [secrets]
        self._keys = tuple(_b64("StandardWebhooks", "secrets", s, "whsec_") for s in secrets)
        self._public: tuple[Any, ...] = ()
        if public_keys:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            self._public = tuple(
                Ed25519PublicKey.from_public_bytes(_b64("StandardWebhooks", "public_keys", k, "whpk_"))
                for k in public_keys
            )
        if not self._keys and not self._public:
            raise ConfigError("StandardWebhooks", "secrets", "give whsec_ secrets (v1) or whpk_ public keys (v1a)")
        self.tolerance = check_tolerance("StandardWebhooks", tolerance)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Check the timestamp and the ``webhook-signature`` list (any one valid signature
        is enough); raise ``SignatureInvalid`` if the timestamp is stale or none matches."""
        msg_id = headers.get("webhook-id") or headers.get("svix-id")
        ts = headers.get("webhook-timestamp") or headers.get("svix-timestamp")
        sig_header = headers.get("webhook-signature") or headers.get("svix-signature")
        missing = [n for n, v in (("id", msg_id), ("timestamp", ts), ("signature", sig_header)) if not v]
        if missing:
            raise SignatureInvalid(
                "missing " + ", ".join(f"webhook-{n}" for n in missing) + " header (Standard Webhooks)"
            )
        assert msg_id is not None
        assert ts is not None
        assert sig_header is not None
        check_timestamp(ts, now, self.tolerance, "Standard Webhooks")
        signed = f"{msg_id}.{ts}.".encode() + body
        v1: list[bytes] = []
        v1a: list[bytes] = []
        for part in sig_header.split():
            version, _, value = part.partition(",")
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if version == "v1":
                v1.append(raw)
            elif version == "v1a":
                v1a.append(raw)
        if self._keys and v1 and matches_any(hmac_digests(self._keys, signed), v1):
            return
        if self._public and v1a and self._verify_ed25519(signed, v1a):
            return
        raise SignatureInvalid("no webhook-signature matches the configured secrets (Standard Webhooks)")

    def _verify_ed25519(self, signed: bytes, signatures: list[bytes]) -> bool:
        from cryptography.exceptions import InvalidSignature

        for key in self._public:
            for sig in signatures:
                try:
                    key.verify(sig, signed)
                except InvalidSignature:
                    continue
                return True
        return False

    def __repr__(self) -> str:
        return f"StandardWebhooks(secrets={hidden(self._keys)}, public_keys={len(self._public)}, tolerance={self.tolerance})"
