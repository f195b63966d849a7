"""Route templates: ``/customers/42`` is reported and matched as ``/customers/{id}``, so metrics
and rules are per route, not per URL (unbounded label cardinality would sink Prometheus)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|[A-Za-z]{2,5}_[A-Za-z0-9]{8,})$"
)
_PLACEHOLDER = re.compile(r"\{[^/{}]+\}")


def compile_template(template: str) -> re.Pattern[str]:
    """``/zones/*`` and ``/customers/{id}`` into a regex matching whole paths."""
    parts = []
    for piece in re.split(r"(\{[^/{}]+\}|\*)", template):
        if piece == "*":
            parts.append(".*")
        elif _PLACEHOLDER.fullmatch(piece):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + "$")


class RouteNamer:
    """Maps paths to templates: declared templates first, then id-looking segments."""

    def __init__(self, templates: Iterable[str] = (), max_cached: int = 10_000) -> None:
        self._declared = [(t, compile_template(t)) for t in templates if "*" not in t]
        self._cache: dict[str, str] = {}
        self._max_cached = max_cached

    def __call__(self, path: str) -> str:
        route = self._cache.get(path)
        if route is None:
            route = self._name(path)
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            self._cache[path] = route
        return route

    def _name(self, path: str) -> str:
        for template, pattern in self._declared:
            if pattern.match(path):
                return template
        return "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/"))
