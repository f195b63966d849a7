"""The documentation's examples run: every ``python`` block in ``docs/`` marked with an HTML
comment ``<!-- test: run -->`` on the line above it is executed as a script, in a fresh
process and an empty working directory, against the testbed it starts itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^<!-- test: run -->\n```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for number, match in enumerate(_BLOCK.finditer(page.read_text(encoding="utf-8")), start=1):
            found.append((f"{page.stem}-{number}", match.group(1)))
    return found


EXAMPLES = _examples()


def test_the_guides_have_runnable_examples() -> None:
    pages = {name.rsplit("-", 1)[0] for name, _ in EXAMPLES}
    assert {"quickstart", "client", "inbox", "sync", "server"} <= pages


@pytest.mark.parametrize("code", [code for _, code in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_example_runs(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
