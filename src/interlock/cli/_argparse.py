"""What the command modules of ``interlock.cli`` share: the parser (one line per mistake), argument types that say what
they accept, the ``UsageError`` a command raises for a mistake it finds later, and asking for
confirmation (``--yes`` where there is no terminal to ask on)."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = [
    "Parser",
    "UsageError",
    "confirm",
    "count",
    "fraction",
    "open_or_say_why",
    "option_anywhere",
    "port",
    "seconds",
]


class UsageError(Exception):
    """A mistake in what the command was asked to do (a store that does not exist, a job that
    is not one, no terminal to confirm on): ``interlock`` prints it as one line on stderr and
    exits with status 2, as argparse does for a bad flag."""


class Parser(argparse.ArgumentParser):
    """argparse's parser, but a bad flag is one line on stderr (exit status 2) naming the flag,
    what it accepts, and ``--help``, instead of the usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` on stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def option_anywhere(parser: argparse.ArgumentParser, flag: str, **options: Any) -> argparse.ArgumentParser:
    """Add ``flag`` to a command with actions, and return a parent parser for each action so the
    flag is accepted after the action too (``interlock dlq list --store X`` as well as
    ``interlock dlq --store X list``). SUPPRESS keeps an action's absent flag from overwriting
    one given before it."""
    parser.add_argument(flag, **options)
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(flag, default=argparse.SUPPRESS, help=options.get("help"))
    return parent


def count(low: int = 0, high: int | None = None) -> Callable[[str], int]:
    """An argument type: an integer from ``low`` to ``high`` (inclusive; None: no upper bound)."""
    bounds = f"from {low} to {high}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {value}")
        return value

    return parse


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def seconds(high: float | None = None, *, unit: str = "seconds") -> Callable[[str], float]:
    """An argument type: a number of seconds (or of ``unit``) >= 0, and <= ``high`` when given."""
    what = f"{unit} from 0 to {high:g}" if high is not None else f"a number of {unit} >= 0"

    def parse(text: str) -> float:
        value = _number(text, what)
        if value < 0 or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


def fraction(high: float = 1.0) -> Callable[[str], float]:
    """An argument type: a probability from 0 to ``high``."""
    what = f"a fraction from 0 to {high:g} (0.1 is 10 %)"

    def parse(text: str) -> float:
        value = _number(text, what)
        if not 0 <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


def port(text: str) -> int:
    """An argument type: a TCP port, 0 (any free one) to 65535."""
    value: int = count(0, 65535)(text)
    return value


async def open_or_say_why(resource: Any, what: str) -> None:
    """``await resource.open()``; when that fails (a server that is down, a database that does
    not exist), close what it half opened and raise a ``UsageError``: ``cannot open WHAT: why``."""
    try:
        await resource.open()
    except Exception as exc:
        with contextlib.suppress(Exception):
            await resource.aclose()
        raise UsageError(f"cannot open {what}: {type(exc).__name__}: {exc}") from None


def confirm(question: str, *, yes: bool) -> bool:
    """True when ``yes`` (the command's ``--yes``) or the person at the terminal says so. With
    no terminal to ask on (a script, CI, a pipe) it is a ``UsageError`` saying to pass
    ``--yes``, rather than reading an answer nobody can give."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: there is no terminal to confirm on; pass --yes")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
