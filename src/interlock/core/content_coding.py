"""Content-coding negotiation (RFC 9110 section 12.5.3), sans-I/O: which coding to answer with
for a request's ``Accept-Encoding``."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["choose_coding"]


def choose_coding(accept_encoding: str | None, available: Sequence[str]) -> str | None:
    """The coding to use from ``available`` (in the server's order of preference), or None for
    identity. The highest q-value wins, ties go to the earlier in ``available``; ``q=0`` refuses a
    coding; ``*`` stands for every coding not named; ``x-gzip`` is ``gzip`` (section 8.4.1.3). A
    malformed q-value reads as 0 (refused), never as an error."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        coding = name.strip().lower()
        if coding == "x-gzip":
            coding = "gzip"
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN
                    q = 0.0
        if coding:
            weights[coding] = q
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = weights.get(coding, weights.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best
