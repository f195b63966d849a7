"""Argument parsing shared by the command modules of `interlock.cli`."""

from __future__ import annotations

import argparse
from typing import Any


def option_anywhere(parser: argparse.ArgumentParser, flag: str, **options: Any) -> argparse.ArgumentParser:
    """Add ``flag`` to a command with actions, and return a parent parser for each action so the
    flag is accepted after the action too (``interlock dlq list --store X`` as well as
    ``interlock dlq --store X list``). SUPPRESS keeps an action's absent flag from overwriting
    one given before it."""
    parser.add_argument(flag, **options)
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(flag, default=argparse.SUPPRESS, help=options.get("help"))
    return parent
