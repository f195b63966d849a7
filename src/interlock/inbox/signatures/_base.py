"""What every signature scheme shares: the Protocol, secret handling, the timestamp check and
the HMAC comparison.

``KeyedScheme`` / ``TimestampedScheme`` are the bases of the schemes keyed with shared secrets
(the keys, hidden in ``repr``; the tolerance); ``verify_hmac`` is the one place a received
digest is decoded and compared, in constant time, with the digests of every configured key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

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

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Return if ``body`` is genuinely signed (``now``: wall-clock seconds, for the
        timestamp check), else raise ``SignatureInvalid``."""
        ...


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
    """``tolerance`` as a float, refused with ``ConfigError`` unless it is > 0 seconds."""
    if tolerance <= 0:
        raise ConfigError(owner, "tolerance", f"must be > 0 seconds, got {tolerance!r}")
    return float(tolerance)


def header(headers: Mapping[str, str], name: str, scheme: str) -> str:
    """The value of header ``name`` (lower case); ``SignatureInvalid`` when missing or empty."""
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
    """The HMAC of ``message`` under each key, raw bytes."""
    return [hmac.new(k, message, algorithm).digest() for k in keys]


def verify_hmac(
    keys: Sequence[bytes],
    message: bytes,
    given: Sequence[str],
    *,
    field: str,
    encoding: Literal["hex", "base64"] = "hex",
    algorithm: str = "sha256",
    mismatch: str | None = None,
) -> None:
    """Raise ``SignatureInvalid`` unless one of the ``given`` digests (as received, in
    ``encoding``) is the HMAC of ``message`` under one of ``keys``.

    ``field`` names where the digests came from (a header), for the error messages;
    ``mismatch`` replaces the default "``field`` does not match the configured secrets".
    """
    if encoding == "hex":
        expected = [d.hex().encode() for d in hmac_digests(keys, message, algorithm)]
        received = [g.strip().lower().encode("latin-1") for g in given]
    else:
        expected = hmac_digests(keys, message, algorithm)
        try:
            received = [base64.b64decode(g.strip(), validate=True) for g in given]
        except (binascii.Error, ValueError):
            raise SignatureInvalid(f"{field} is not base64") from None
    if not matches_any(expected, received):
        raise SignatureInvalid(mismatch or f"{field} does not match the configured secrets")


def hidden(keys: Sequence[object]) -> str:
    """How keys appear in a ``repr``: their number, never their value."""
    return f"<{len(keys)} hidden>"


ALGORITHMS = frozenset({"sha1", "sha256", "sha384", "sha512"})
"""The digest algorithms ``HMAC(algorithm=...)`` accepts."""


def check_algorithm(owner: str, algorithm: str) -> str:
    """``algorithm`` normalised (``SHA-256`` -> ``sha256``), refused unless in ``ALGORITHMS``."""
    algorithm = algorithm.lower().replace("-", "")
    if algorithm not in ALGORITHMS or algorithm not in hashlib.algorithms_available:
        raise ConfigError(owner, "algorithm", f"must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    return algorithm


class KeyedScheme:
    """Base of the schemes keyed with shared secrets: the keys (several, for rotation) and a
    ``repr`` that shows how many there are, never what they are.

    A subclass names itself and where its deliveries keep their id and type in the class
    statement: ``class GitHub(KeyedScheme, name="github", id_header="x-github-delivery",
    type_header="x-github-event")``; the attributes are those of ``SignatureScheme``.
    """

    name: str
    id_header: str | None
    id_path: str | None
    type_header: str | None
    type_path: str | None

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        id_header: str | None = None,
        id_path: str | None = None,
        type_header: str | None = None,
        type_path: str | None = None,
    ) -> None:
        super().__init_subclass__()
        if name is None:
            return  # an intermediate base (TimestampedScheme): its subclasses name themselves
        cls.name = name
        cls.id_header = id_header
        cls.id_path = id_path
        cls.type_header = type_header
        cls.type_path = type_path

    def __init__(self, secrets: Sequence[str | bytes] | str | bytes) -> None:
        self._keys = as_keys(type(self).__name__, secrets)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Return if ``body`` is genuinely signed, else raise ``SignatureInvalid``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(secrets={hidden(self._keys)})"


class TimestampedScheme(KeyedScheme):
    """A keyed scheme that signs a timestamp too: deliveries signed more than ``tolerance``
    seconds away from now are refused as stale or replayed."""

    def __init__(self, secrets: Sequence[str | bytes] | str | bytes, *, tolerance: float = DEFAULT_TOLERANCE) -> None:
        super().__init__(secrets)
        self.tolerance = check_tolerance(type(self).__name__, tolerance)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(secrets={hidden(self._keys)}, tolerance={self.tolerance})"
