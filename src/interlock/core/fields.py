"""Partial responses, sans-I/O: parse a field selection such as ``id,email,stats.total_bookings``
and apply it to JSON data (objects, and lists of objects at any depth)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["FieldError", "FieldTree", "parse_fields", "select_fields"]

FieldTree = dict[str, "FieldTree | None"]
"""A parsed selection: each name maps to None (the whole value) or to the selection inside it."""

_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")

MAX_FIELDS = 100
MAX_DEPTH = 8
MAX_LENGTH = 2000


class FieldError(ValueError):
    """A field selection that is malformed, or names a field the data does not have."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


def parse_fields(spec: str) -> FieldTree:
    """Parse ``a,b.c,b.d`` into ``{"a": None, "b": {"c": None, "d": None}}``. Bounded: at most
    100 fields, 8 levels, 2000 characters; names are letters, digits, ``_`` and ``-``."""
    if len(spec) > MAX_LENGTH:
        raise FieldError(f"the field list is longer than {MAX_LENGTH} characters")
    paths = spec.split(",")
    if len(paths) > MAX_FIELDS:
        raise FieldError(f"at most {MAX_FIELDS} fields may be selected, got {len(paths)}")
    tree: FieldTree = {}
    for path in paths:
        parts = path.strip().split(".")
        if len(parts) > MAX_DEPTH:
            raise FieldError(f"field {path.strip()!r} is nested deeper than {MAX_DEPTH} levels", path.strip())
        for part in parts:
            if not _NAME.fullmatch(part):
                shown = path.strip() or "(empty)"
                raise FieldError(
                    f"malformed field {shown!r}: use comma-separated names, dots for nesting "
                    "(letters, digits, '_' and '-'), e.g. fields=id,email,stats.total_bookings",
                    path.strip(),
                )
        node = tree
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                node[part] = None  # the whole value wins over a narrower selection
                break
            child = node.get(part, {})
            if child is None:
                break  # already selected whole
            node[part] = child
            node = child
    return tree


def select_fields(data: Any, tree: FieldTree, _prefix: str = "") -> Any:
    """``data`` keeping only the selected fields. A list applies the selection to each element;
    a field absent from an object (from every element of a list) raises ``FieldError``."""
    if isinstance(data, list):
        if not data:
            return data
        out = []
        seen: set[str] = set()
        for item in data:
            if not isinstance(item, dict):
                raise FieldError(
                    f"{_prefix.rstrip('.') or 'the response'} is not an object: it has no fields"
                )
            out.append(_select_object(item, tree, _prefix, seen, lenient=True))
        missing = [name for name in tree if name not in seen]
        if missing:
            raise FieldError(f"unknown field {_prefix + missing[0]!r}", _prefix + missing[0])
        return out
    if not isinstance(data, dict):
        raise FieldError(f"{_prefix.rstrip('.') or 'the response'} is not an object: it has no fields")
    return _select_object(data, tree, _prefix, set(), lenient=False)


def _select_object(obj: dict[str, Any], tree: FieldTree, prefix: str, seen: set[str], lenient: bool) -> Any:
    out: dict[str, Any] = {}
    for name, sub in tree.items():
        if name not in obj:
            if lenient:
                continue
            raise FieldError(f"unknown field {prefix + name!r}", prefix + name)
        seen.add(name)
        value = obj[name]
        out[name] = value if sub is None or value is None else select_fields(value, sub, prefix + name + ".")
    return out
