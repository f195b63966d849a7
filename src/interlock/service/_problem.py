"""RFC 9457 problem details: the JSON body of every error the service decides itself.

``application/problem+json`` with ``type`` (a stable URI per kind of problem), ``title``,
``status``, ``detail`` and extension members (``upstream``, ``attempts``, ``retry_after``,
``request_id``). Pure: builds the status, headers and body; the ASGI apps send them.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["PROBLEM_BASE", "Problem", "problem"]

PROBLEM_BASE = "https://interlock.dev/problems/"
"""Each problem's ``type`` is this base followed by its slug (``circuit-open``)."""

Problem = tuple[int, list[tuple[bytes, bytes]], bytes]
"""(status, headers, body) of one problem response."""


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    retry_after: float | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    **extensions: Any,
) -> Problem:
    """The response for one problem. ``retry_after`` (seconds) is sent as ``Retry-After``
    (RFC 9110 section 10.2.3: whole seconds, rounded up, at least 1) and as a member."""
    doc: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    out = list(headers or [])
    if retry_after is not None:
        seconds = max(1, math.ceil(retry_after))
        doc["retry_after"] = seconds
        out.append((b"retry-after", str(seconds).encode()))
    doc.update({k: v for k, v in extensions.items() if v is not None})
    body = json.dumps(doc, separators=(",", ":")).encode()
    out.append((b"content-type", b"application/problem+json"))
    out.append((b"content-length", str(len(body)).encode()))
    return status, out, body
