"""Interlock: resilient API calls, durable webhooks and incremental sync, from the command line.

One module per command, registered in ``COMMANDS`` below. A command module has ``HELP`` (one
line), ``configure(parser)`` (its arguments) and ``run(args) -> int`` (the exit status).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from . import demo, dlq, sync, testbed

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, ModuleType] = {
    "demo": demo,
    "dlq": dlq,
    "sync": sync,
    "testbed": testbed,
}
"""Command name -> the module that implements it, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``interlock`` argument parser with every command's arguments."""
    parser = argparse.ArgumentParser(prog="interlock", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("interlock")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``interlock`` with ``argv`` (default: the process's arguments); the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.command:
        parser.print_help()
        return 2
    status: int = COMMANDS[args.command].run(args)
    return status
