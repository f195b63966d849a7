"""Where a source's delivery id, event type and ordering key come from: a header or a JSON path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._jsonpath import JsonPath
from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Locator:
    """``"$.data.object.customer"`` (a JSON path: dots, ``[0]``, ``['key']``) or a header name."""

    spec: str
    header: str | None
    path: JsonPath | None

    @classmethod
    def parse(cls, owner: str, field: str, spec: str) -> Locator:
        """A locator for ``spec`` (``$...``: a JSON path; anything else: a header name); a
        bad spec is a ``ConfigError`` naming ``owner`` and ``field``."""
        spec = spec.strip()
        if not spec:
            raise ConfigError(owner, field, "is empty; give a header name or a JSON path like $.id")
        if not spec.startswith("$"):
            return cls(spec, spec.lower(), None)
        return cls(spec, None, JsonPath.parse(spec, owner=owner, field=field))

    @property
    def needs_json(self) -> bool:
        """Whether the body must be parsed as JSON to find the value."""
        return self.header is None

    def find(self, headers: Mapping[str, str], doc: Any) -> str | None:
        """The value as text (booleans as ``true``/``false``); ``None`` when absent, empty or
        not a scalar."""
        if self.header is not None:
            return headers.get(self.header) or None
        node = self.path.find(doc) if self.path is not None else None
        if node is None or isinstance(node, dict | list):
            return None
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)
