"""MkDocs hooks for the API reference (named in mkdocs.yml ``hooks:``).

The docstrings follow the reStructuredText habit of introducing a literal block with ``::``
("...as follows::" or a lone ``::`` line). Markdown already renders the indented block after it
as code, so only the marker itself needs to go: a lone ``::`` paragraph disappears and a
trailing one becomes a colon.
"""

from __future__ import annotations

import re
from typing import Any

_LONE = re.compile(r"<p>::</p>\s*")
_TRAILING = re.compile(r"::</p>")


def on_page_content(html: str, **_: Any) -> str:
    """Drop reStructuredText's ``::`` literal-block markers from the rendered page."""
    return _TRAILING.sub(":</p>", _LONE.sub("", html))
