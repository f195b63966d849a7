"""``JsonPath``: the one way Interlock points into a JSON document.

Used for a webhook's delivery id and event type (``$.data.object.id``), a listing's items
(``data``), a batch answer's items, a sync record's id and timestamp. The syntax is the dotted
subset of JSONPath (RFC 9535) that these need: an optional leading ``$``, names separated by
dots, ``[0]`` for a list index and ``['key.with.dots']`` for a name that is not plain. ``""``
or ``"$"`` is the document itself. Parsed once at configuration time; ``find`` is a loop over
the steps, cheap enough for the hot path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["JsonPath"]

_STEP = re.compile(r"\.?([^.\[\]'\"]+)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed path: ``JsonPath.parse("$.data.items[0]")``; ``find(doc)`` follows it."""

    text: str
    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, spec: str, *, owner: str = "JsonPath", field: str = "path") -> JsonPath:
        """Parse ``spec``; a ``ConfigError(owner, field, ...)`` says where it stops making sense."""
        text = spec.strip()
        body = text[1:] if text.startswith("$") else text
        steps: list[str | int] = []
        pos = 0
        while pos < len(body):
            match = _STEP.match(body, pos)
            if match is None or (pos == 0 and body.startswith(".") and text == body):
                raise ConfigError(
                    owner,
                    field,
                    f"cannot parse JSON path {spec!r} at position {pos + len(text) - len(body)}; "
                    "write it like $.data.items[0] or data.id",
                )
            name, index, quoted = match.groups()
            steps.append(int(index) if index is not None else (name or quoted))
            pos = match.end()
        return cls(text, tuple(steps))

    @property
    def is_root(self) -> bool:
        """True for ``""`` or ``"$"``: the document itself."""
        return not self.steps

    def find(self, doc: Any) -> Any:
        """The value at this path in ``doc``, or None when any step is missing."""
        node = doc
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return None
            elif not isinstance(node, dict) or step not in node:
                return None
            node = node[step]
        return node

    def __str__(self) -> str:
        return self.text
