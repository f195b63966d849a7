"""Text for people: ``describe(exc)`` for error histories and logs, aligned plain-text tables for
terminal output (the demo, benchmarks)."""

from __future__ import annotations

import traceback
from collections.abc import Sequence

from .errors import CallError

MAX_ERROR = 4000
"""The longest error description kept in an error history (longer ones are cut)."""


def describe(exc: BaseException, *, limit: int = MAX_ERROR) -> str:
    """One line for an error history, cut to ``limit`` characters.

    An Interlock call error's own message (it already says which upstream, route, attempt and
    tracking id), otherwise type, message and where it was raised.
    """
    if isinstance(exc, CallError):
        text = str(exc)
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
        text = f"{type(exc).__name__}: {exc}{where}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def render_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """First column left-aligned, the others right-aligned, a rule under the header."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *(line(r) for r in cells[1:])])
