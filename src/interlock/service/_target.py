"""Where a proxied request may go: the pure decision that keeps ``/proxy/`` from being an
open proxy. No I/O.

``/proxy/{upstream}/{path...}`` names a configured upstream and a path under its base URL.
The raw request target (before any percent-decoding) is checked, because every layer below
(the ASGI server, yarl, the upstream's own server) may decode and normalise it differently:
what could change which resource, or which origin, a request reaches is refused with 400
rather than interpreted. Refused: dot segments (``..``, ``.``, and their encodings
``%2e``), encoded slashes and backslashes (``%2f``, ``%5c``, ``\\``), empty segments (``//host``),
user info (``@host``), control characters, double encodings (``%25``), path parameters that hide
a dot segment (``..;``), and methods that are not requests for a resource (CONNECT, TRACE).
The caller's URL never supplies a scheme, a host or a port: the origin is the upstream's.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["ALLOWED_METHODS", "PREFIX", "Refused", "Target", "decide_target"]

PREFIX = b"/proxy/"
ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""CONNECT (a tunnel to anywhere) and TRACE (reflects the request, credentials included) are not."""

# Percent-encodings refused anywhere in the path: '.', '/', '\\', '%' (a double encoding),
# NUL and the other control characters, '@', '?' and '#' (which would move the query or
# fragment boundary once decoded).
_BAD_ENCODED = re.compile(rb"%(?:2[eEfF5]|5[cC]|0[0-9a-fA-F]|1[0-9a-fA-F]|7[fF]|40|3[fF]|23)")
_BAD_RAW = re.compile(rb"[\x00-\x20\x7f-\xff\\@?#]")
_DOT_SEGMENT = re.compile(rb"^\.{1,2}(?:;.*)?$")


@dataclass(frozen=True, slots=True)
class Target:
    """Forward to ``upstream`` at ``path`` (starting with ``/``, relative to its base URL)."""

    upstream: str
    path: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Do not forward: answer ``status`` with a problem of kind ``slug``."""

    status: int
    slug: str
    detail: str


def decide_target(method: str, raw_path: bytes, upstreams: Collection[str]) -> Target | Refused:
    """Where ``method raw_path`` goes, or why it goes nowhere. ``raw_path`` is the request
    target's path as received (ASGI ``raw_path``: not decoded, without the query)."""
    if method not in ALLOWED_METHODS:
        allowed = ", ".join(sorted(ALLOWED_METHODS))
        return Refused(405, "method-not-allowed", f"{method[:16]!r} is not proxied (allowed: {allowed})")
    if not raw_path.startswith(PREFIX):
        return Refused(404, "not-found", "proxy paths look like /proxy/{upstream}/{path}")
    rest = raw_path[len(PREFIX) :]
    name_bytes, _sep, tail = rest.partition(b"/")
    try:
        name = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        name = ""
    if name not in upstreams:
        known = ", ".join(sorted(upstreams)) or "none"
        shown = name_bytes.decode("ascii", "replace")[:64]
        return Refused(404, "unknown-upstream", f"no upstream named {shown!r} is configured (configured: {known})")
    path = b"/" + tail
    if _BAD_RAW.search(path):
        return Refused(
            400, "unsafe-path", "the path holds a character that is not proxied (space, control, non-ASCII, '\\', '@', '?', '#')"
        )
    if _BAD_ENCODED.search(path):
        return Refused(
            400, "unsafe-path", "the path holds an encoded '.', '/', '\\', '%', '@', '?', '#' or control character"
        )
    segments = tail.split(b"/")
    for i, segment in enumerate(segments):
        if _DOT_SEGMENT.match(segment):
            return Refused(400, "unsafe-path", "dot segments ('.', '..') are not proxied")
        if segment == b"" and i < len(segments) - 1:
            return Refused(400, "unsafe-path", "empty path segments ('//') are not proxied")
    return Target(name, path.decode("ascii"))
