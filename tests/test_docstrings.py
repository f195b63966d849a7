"""Every public class, function and method has a docstring (tools/check_docstrings.py)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

TOOL = Path(__file__).resolve().parent.parent / "tools" / "check_docstrings.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_docstrings", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_docstrings", module)
    spec.loader.exec_module(module)
    return module


def test_no_public_name_lacks_a_docstring() -> None:
    missing = _tool().missing_docstrings()
    assert missing == [], "document these (a one-line summary first): " + ", ".join(missing)


def test_the_check_sees_private_modules_and_skips_what_ruff_skips(tmp_path: Path) -> None:
    package = tmp_path / "interlock" / "client"
    package.mkdir(parents=True)
    (package / "_client.py").write_text(
        textwrap.dedent(
            '''
            from typing import overload, override

            class Client:
                def get(self): ...
                def _send(self): ...
                def __repr__(self): ...
                def __init__(self): ...
                @property
                def name(self):
                    """The name."""
                @name.setter
                def name(self, value): ...
                @overload
                def put(self, x: int): ...
                def put(self, x):
                    """Put."""
                @override
                def close(self): ...
                class Options:
                    pass

            class _Helper:
                def run(self): ...

            def open_client():
                """Open one."""

            def build(): ...

            if True:
                def fallback(): ...
            '''
        )
    )
    found = _tool().missing_docstrings(tmp_path / "interlock")
    assert found == [
        "interlock.client:Client",
        "interlock.client:Client.get",
        "interlock.client:Client.Options",
        "interlock.client:build",
        "interlock.client:fallback",
    ]
