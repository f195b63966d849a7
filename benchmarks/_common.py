"""Shared by the benchmark scripts: medians, a plain table, and the final JSON line."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from interlock._text import render_table


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    return render_table(header, rows)


def emit(name: str, results: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object for machines to read."""
    payload = {"benchmark": name, "python": platform.python_version(), "cpus": os.cpu_count(), **results}
    print(json.dumps(payload, sort_keys=True))
