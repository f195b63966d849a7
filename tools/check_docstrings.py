"""Fail on a public class, function or method of ``src/interlock`` that has no docstring.

ruff's ``D1`` rules judge visibility by the module: a class in ``client/_client.py`` counts as
private there, although users meet it as ``interlock.Client``. This check applies the house rule
instead (DESIGN.md): every class, function and method whose own name does not start with ``_``
gets a docstring, whatever module it lives in. Like ruff's selection it skips magic methods
(D105), ``__init__`` (D107), ``@overload`` stubs, ``@override``s and property setters, whose
documentation lives on the thing they refine.

Run: ``python tools/check_docstrings.py`` (exit 1 when any public name lacks a docstring).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "interlock"

_SKIPPED_DECORATORS = {"overload", "override", "setter", "deleter"}


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
        elif isinstance(target, ast.Name):
            names.add(target.id)
    return names


def _is_public(name: str) -> bool:
    return not name.startswith("_")


def _definitions(body: list[ast.stmt]) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    """The definitions in ``body``, looking into ``if``/``try`` blocks (``if TYPE_CHECKING:``,
    fallbacks for a missing optional dependency) the way an importer sees them."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node
        elif isinstance(node, ast.If):
            yield from _definitions(node.body)
            yield from _definitions(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _definitions(block)


def _missing_in(body: list[ast.stmt], prefix: str) -> Iterator[str]:
    for node in _definitions(body):
        if not _is_public(node.name) or _decorator_names(node) & _SKIPPED_DECORATORS:
            continue
        qualname = f"{prefix}{node.name}"
        if ast.get_docstring(node) is None:
            yield qualname
        if isinstance(node, ast.ClassDef):
            yield from _missing_in(node.body, f"{qualname}.")


def missing_docstrings(source: Path = SOURCE) -> list[str]:
    """Every public name under ``source`` without a docstring, as ``package:QualName``.

    ``package`` is the dotted package holding the module (not the module itself), so a name keeps
    its key when its module is renamed or merged inside the same package.
    """
    found: list[str] = []
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source.parent).with_suffix("")
        package = ".".join(relative.parts[:-1])
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found.extend(f"{package}:{qualname}" for qualname in _missing_in(tree.body, ""))
    return found


def main() -> int:
    """Print the undocumented public names; exit 1 if there are any."""
    missing = missing_docstrings()
    for name in missing:
        print(f"check_docstrings: missing docstring: {name}")
    print(f"check_docstrings: {len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
