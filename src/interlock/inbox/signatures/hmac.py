"""A configurable HMAC scheme for providers without a module of their own.

Covers the common shapes: a header holding ``[prefix]<hex|base64 digest>`` of the body, or of
a template such as ``{timestamp}.{body}`` when the provider signs a timestamp header too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from ...errors import ConfigError, SignatureInvalid
from ._base import (
    DEFAULT_TOLERANCE,
    KeyedScheme,
    check_algorithm,
    check_timestamp,
    check_tolerance,
    header,
    hidden,
    verify_hmac,
)

__all__ = ["HMAC"]


class HMAC(KeyedScheme, name="hmac"):
    """A configurable HMAC scheme: a header holding the digest of the body (or of a template).

    ``HMAC(secrets, header="X-Signature", algorithm="sha256", encoding="hex", prefix="sha256=")``.

    With ``timestamp_header``, the signed message is ``signed_payload`` with ``{timestamp}``
    (and ``{id}``, from ``id_header``) filled in; ``{body}`` must come last. Timestamps older or
    newer than ``tolerance`` are refused; ``timestamp_unit="ms"`` for millisecond timestamps.
    """

    def __init__(
        self,
        secrets: Sequence[str | bytes] | str | bytes,
        *,
        header: str = "X-Signature",
        algorithm: str = "sha256",
        encoding: Literal["hex", "base64"] = "hex",
        prefix: str = "",
        timestamp_header: str | None = None,
        signed_payload: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        timestamp_unit: Literal["s", "ms"] = "s",
        id_header: str | None = None,
        id_path: str | None = None,
        type_header: str | None = None,
        type_path: str | None = None,
    ) -> None:
        super().__init__(secrets)
        if not header:
            raise ConfigError("HMAC", "header", "name the header that carries the signature")
        self.header = header.lower()
        self.algorithm = check_algorithm("HMAC", algorithm)
        if encoding not in ("hex", "base64"):
            raise ConfigError("HMAC", "encoding", f"must be 'hex' or 'base64', got {encoding!r}")
        self.encoding = encoding
        self.prefix = prefix
        self.timestamp_header = timestamp_header.lower() if timestamp_header else None
        if signed_payload is None:
            signed_payload = "{timestamp}.{body}" if timestamp_header else "{body}"
        if not signed_payload.endswith("{body}") or signed_payload.count("{body}") != 1:
            raise ConfigError("HMAC", "signed_payload", f"must end with a single {{body}}, got {signed_payload!r}")
        self._template = signed_payload[: -len("{body}")]
        if "{timestamp}" in self._template and not timestamp_header:
            raise ConfigError("HMAC", "signed_payload", "uses {timestamp} but no timestamp_header is set")
        if "{id}" in self._template and not id_header:
            raise ConfigError("HMAC", "signed_payload", "uses {id} but no id_header is set")
        self.tolerance = check_tolerance("HMAC", tolerance)
        if timestamp_unit not in ("s", "ms"):
            raise ConfigError("HMAC", "timestamp_unit", f"must be 's' or 'ms', got {timestamp_unit!r}")
        self._unit = 1000.0 if timestamp_unit == "ms" else 1.0
        self.id_header = id_header.lower() if id_header else None
        self.id_path = id_path
        self.type_header = type_header.lower() if type_header else None
        self.type_path = type_path

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Check the timestamp (when configured) and the signature header; raise
        ``SignatureInvalid`` if either fails."""
        value = header(headers, self.header, "HMAC")
        if self.prefix:
            if not value.startswith(self.prefix):
                raise SignatureInvalid(f"{self.header} must start with {self.prefix!r}")
            value = value[len(self.prefix) :]
        fields: dict[str, str] = {}
        if self.timestamp_header:
            ts = header(headers, self.timestamp_header, "HMAC")
            check_timestamp(ts, now, self.tolerance, "HMAC", unit=self._unit)
            fields["timestamp"] = ts.strip()
        if self.id_header and "{id}" in self._template:
            fields["id"] = header(headers, self.id_header, "HMAC")
        message = (self._template.format(**fields).encode() if self._template else b"") + body
        verify_hmac(self._keys, message, [value], field=self.header, encoding=self.encoding, algorithm=self.algorithm)

    def __repr__(self) -> str:
        return f"HMAC(header={self.header!r}, algorithm={self.algorithm!r}, secrets={hidden(self._keys)})"
