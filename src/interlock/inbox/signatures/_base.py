"""What every signature scheme shares: the Protocol, secret handling and the timestamp check."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from ...errors import ConfigError, SignatureInvalid

DEFAULT_TOLERANCE = 300.0
"""Seconds a signed timestamp may be away from now (Standard Webhooks, Stripe and Slack all
recommend five minutes)."""


@runtime_checkable
class SignatureScheme(Protocol):
    """Verifies one provider's signatures and knows where its ids and event types live.

    ``headers`` maps lower-cased header names to values. ``verify`` raises
    ``SignatureInvalid`` with a message that never contains a secret or an expected signature.
    """

    name: str
    id_header: str | None
    """Header carrying the delivery id (lower case), used to drop duplicate deliveries."""
    id_path: str | None
    """JSON path of the delivery id when the provider has no header for it."""
    type_header: str | None
    type_path: str | None

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None: ...


def as_keys(owner: str, secrets: Sequence[str | bytes] | str | bytes) -> tuple[bytes, ...]:
    """Secrets as HMAC keys. Several are tried in turn so a secret can be rotated without
    dropping deliveries signed with the old one."""
    if isinstance(secrets, str | bytes):
        secrets = [secrets]
    keys = tuple(s.encode() if isinstance(s, str) else bytes(s) for s in secrets)
    if not keys or any(not k for k in keys):
        raise ConfigError(owner, "secrets", "give at least one non-empty secret")
    return keys


def check_tolerance(owner: str, tolerance: float) -> float:
    if tolerance <= 0:
        raise ConfigError(owner, "tolerance", f"must be > 0 seconds, got {tolerance!r}")
    return float(tolerance)


def header(headers: Mapping[str, str], name: str, scheme: str) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureInvalid(f"missing {name} header ({scheme} signature)")
    return value


def check_timestamp(raw: str, now: float, tolerance: float, scheme: str, *, unit: float = 1.0) -> int:
    """Reject a timestamp further than ``tolerance`` from now, in either direction (replays)."""
    try:
        ts = int(raw.strip())
    except ValueError:
        raise SignatureInvalid(f"{scheme} timestamp is not an integer") from None
    if abs(now - ts / unit) > tolerance:
        raise SignatureInvalid(
            f"{scheme} timestamp is {now - ts / unit:+.0f} s from now, outside the {tolerance:.0f} s "
            "tolerance (stale or replayed delivery, or a clock out of sync)"
        )
    return ts


def matches_any(expected: Sequence[bytes], given: Sequence[bytes]) -> bool:
    """Constant-time comparison of every expected signature with every given one."""
    found = False
    for e in expected:
        for g in given:
            # No early exit: the time taken does not depend on which pair matched.
            found |= hmac.compare_digest(e, g)
    return found


def hmac_digests(keys: Sequence[bytes], message: bytes, algorithm: str = "sha256") -> list[bytes]:
    return [hmac.new(k, message, algorithm).digest() for k in keys]


def hidden(keys: Sequence[object]) -> str:
    return f"<{len(keys)} hidden>"


ALGORITHMS = frozenset({"sha1", "sha256", "sha384", "sha512"})


def check_algorithm(owner: str, algorithm: str) -> str:
    algorithm = algorithm.lower().replace("-", "")
    if algorithm not in ALGORITHMS or algorithm not in hashlib.algorithms_available:
        raise ConfigError(owner, "algorithm", f"must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    return algorithm
