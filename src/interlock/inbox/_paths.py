"""Where a source's delivery id, event type and ordering key come from: a header or a JSON path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


@dataclass(frozen=True, slots=True)
class Locator:
    """``"$.data.object.customer"`` (a JSON path: dots, ``[0]``, ``['key']``) or a header name."""

    spec: str
    header: str | None
    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, owner: str, field: str, spec: str) -> Locator:
        spec = spec.strip()
        if not spec:
            raise ConfigError(owner, field, "is empty; give a header name or a JSON path like $.id")
        if not spec.startswith("$"):
            return cls(spec, spec.lower(), ())
        steps: list[str | int] = []
        pos = 1
        while pos < len(spec):
            m = _STEP.match(spec, pos)
            if m is None:
                raise ConfigError(owner, field, f"cannot parse JSON path {spec!r} at position {pos}")
            name, index, quoted = m.groups()
            steps.append(int(index) if index is not None else (name or quoted))
            pos = m.end()
        return cls(spec, None, tuple(steps))

    @property
    def needs_json(self) -> bool:
        return self.header is None

    def find(self, headers: Mapping[str, str], doc: Any) -> str | None:
        if self.header is not None:
            return headers.get(self.header) or None
        node = doc
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return None
                node = node[step]
            else:
                if not isinstance(node, dict) or step not in node:
                    return None
                node = node[step]
        if node is None or isinstance(node, dict | list):
            return None
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)
