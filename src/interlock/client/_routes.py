"""Route templates: ``/customers/42`` is reported and matched as ``/customers/{id}``, so metrics
and rules are per route, not per URL (unbounded label cardinality would sink Prometheus).

One compiler, ``RoutePattern``, serves every place a template is matched: the cache and batch
rules of ``_config`` and the ``RouteNamer`` that names each request's route.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_log = logging.getLogger("interlock.client")

OTHER_ROUTE = "(other)"
"""The route every route past a client's ``Limits.max_routes`` is reported as."""
MAX_ROUTE_LENGTH = 256
"""A route name longer than this is reported as ``OTHER_ROUTE`` too (it is a label value)."""

# Id-looking path segments (numbers, UUIDs, long hex, ``cus_...`` style ids), found in a whole
# path at once: a segment (between slashes, or at either end) that is all id. One C-level
# substitution instead of a split, a match per segment and a join.
_ID_SEGMENTS = re.compile(
    r"(?:(?<=/)|^)(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|[A-Za-z]{2,5}_[A-Za-z0-9]{8,})(?=/|\Z)"
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PIECES = re.compile(r"(\{[^/{}]+\}|\*)")


class RoutePattern:
    """A route template (``/customers/{id}``, ``/zones/*``) matched against whole request paths,
    with the placeholders' values available (for tags such as ``customer:{id}``).

    A placeholder matches one path segment, ``*`` anything (slashes included). Raises
    ``ValueError`` for a template that does not start with ``/`` or has a placeholder that is
    not an identifier; callers turn it into the ``ConfigError`` of the field they validate.
    """

    __slots__ = ("names", "regex", "specificity", "template")

    def __init__(self, template: str) -> None:
        if not template.startswith("/"):
            raise ValueError(f"a route template starts with '/', got {template!r}")
        self.template = template
        self.names: list[str] = []
        parts: list[str] = []
        for piece in _PIECES.split(template):
            if piece == "*":
                parts.append(".*")
            elif (m := _PLACEHOLDER.fullmatch(piece)) is not None:
                self.names.append(m.group(1))
                parts.append(f"(?P<{m.group(1)}>[^/]+)")
            elif piece.startswith("{"):
                raise ValueError(f"bad placeholder {piece!r} in {template!r}")
            else:
                parts.append(re.escape(piece))
        self.regex = re.compile("".join(parts) + "$")
        # Exact templates before placeholders before wildcards, then longer first.
        self.specificity = ("*" in template, bool(self.names), -len(template))

    @property
    def is_wildcard(self) -> bool:
        """True for a template with ``*``: it matches many routes, so it names none."""
        return self.specificity[0]

    def match(self, path: str) -> dict[str, str] | None:
        """The placeholders' values when ``path`` matches the whole template, else None."""
        m = self.regex.match(path)
        return None if m is None else m.groupdict()

    def __repr__(self) -> str:
        return f"RoutePattern({self.template!r})"


class RouteNamer:
    """Maps paths to route names: the first declared template that matches, else the path with
    its id-looking segments (numbers, UUIDs, long hex, ``cus_...`` style ids) as ``{id}``.

    Route names are label values of every per-route statistic and Prometheus series, so their
    number is bounded: past ``max_routes`` distinct names (slugs and usernames are not ids, so
    ``/users/alice`` and ``/users/bob`` are two routes) each new one is reported as
    ``OTHER_ROUTE``, with one warning naming the fix. Declared templates always count on
    their own. Results are memoised per path, up to ``max_cached`` paths (then forgotten at
    once), so a client calling millions of distinct ids holds a bounded table.
    """

    def __init__(
        self,
        templates: Iterable[str] = (),
        max_cached: int = 10_000,
        *,
        max_routes: int = 200,
        upstream: str = "",
    ) -> None:
        patterns = [RoutePattern(t) for t in templates]
        self._declared = [p for p in patterns if not p.is_wildcard]
        self._declared_names = frozenset(p.template for p in self._declared)
        self._cache: dict[str, str] = {}
        self._max_cached = max_cached
        self._seen: set[str] = set()
        self.max_routes = max_routes
        self._upstream = upstream
        self.overflowed = 0
        """Names reported as ``OTHER_ROUTE`` so far (calls, not distinct names)."""

    @property
    def routes(self) -> int:
        """Distinct automatic or given route names admitted so far (declared ones not counted)."""
        return len(self._seen)

    def __call__(self, path: str) -> str:
        """The route name of ``path``."""
        route = self._cache.get(path)
        if route is None:
            route = self.admit(self._name(path))
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            self._cache[path] = route
        elif route is OTHER_ROUTE:
            self.overflowed += 1
        return route

    def admit(self, route: str) -> str:
        """``route`` itself while the bound allows a new name (or it is known), else ``OTHER_ROUTE``."""
        if route in self._seen or route in self._declared_names:
            return route
        if len(self._seen) < self.max_routes and len(route) <= MAX_ROUTE_LENGTH:
            self._seen.add(route)
            return route
        if not self.overflowed:
            why = (
                f"a route name over {MAX_ROUTE_LENGTH} characters"
                if len(route) > MAX_ROUTE_LENGTH
                else f"more than {self.max_routes} distinct routes"
            )
            _log.warning(
                "%s: %s (the latest: %.80s); it and every route past the bound are reported as %r. "
                "Declare route templates, Client(routes=['/users/{name}']), or raise Limits(max_routes=...)",
                self._upstream,
                why,
                route,
                OTHER_ROUTE,
                extra={"interlock": {"upstream": self._upstream, "max_routes": self.max_routes}},
            )
        self.overflowed += 1
        return OTHER_ROUTE

    def _name(self, path: str) -> str:
        for pattern in self._declared:
            if pattern.regex.match(path):
                return pattern.template
        return _ID_SEGMENTS.sub("{id}", path)
