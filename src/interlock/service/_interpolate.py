"""``${VAR}`` and ``${VAR:-default}`` in a config document, from the environment.

Pure: the environment is passed in. Every string value of the parsed TOML document is
interpolated (keys are not); ``$${`` stands for a literal ``${``. A variable that is not set
and has no default is an error naming it and the key path it was needed at. The key paths
whose values came (even partly) from the environment are returned, so the effective config
shown by the admin API can redact them: interpolation is how secrets enter the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MissingVariable", "interpolate", "key_path"]

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


class MissingVariable(Exception):
    """A ``${VAR}`` names a variable that is not set and has no default (or is malformed)."""

    def __init__(self, path: tuple[str | int, ...], problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{key_path(path)}: {problem}")


def key_path(path: tuple[str | int, ...]) -> str:
    """``("upstreams", "crm", "retry", "attempts")`` as ``upstreams.crm.retry.attempts``; list
    indexes as ``[0]``, keys that are not bare words quoted (``cache.routes."/industries"``)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else '"' + part.replace('"', '\\"') + '"'
        out += ("." if out else "") + text
    return out


def _one(value: str, path: tuple[str | int, ...], env: Mapping[str, str]) -> tuple[str, bool]:
    used = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal used
        whole = match.group(0)
        if whole == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name is None:
            raise MissingVariable(
                path, f"malformed reference {whole!r}: write ${{NAME}} or ${{NAME:-default}} (NAME: letters, digits, _)"
            )
        used = True
        found = env.get(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        raise MissingVariable(
            path, f"environment variable {name} is not set (set it, or write ${{{name}:-default}} for a default)"
        )

    return _REFERENCE.sub(substitute, value), used


def interpolate(doc: Any, env: Mapping[str, str]) -> tuple[Any, set[tuple[str | int, ...]]]:
    """``doc`` with every ``${VAR}`` filled in from ``env``, and the key paths that used one."""
    from_env: set[tuple[str | int, ...]] = set()

    def walk(node: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(node, str):
            if "$" not in node:
                return node
            text, used = _one(node, path, env)
            if used:
                from_env.add(path)
            return text
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        return node

    return walk(doc, ()), from_env
