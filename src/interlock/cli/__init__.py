"""Interlock: resilient API calls, durable webhooks and incremental sync, from the command line.

One module per command, registered in ``COMMANDS`` below. A command module has ``HELP`` (one
line), ``configure(parser)`` (its arguments) and ``run(args) -> int`` (the exit status).

A mistake (a bad flag, a store that cannot be opened, a job that is not one, no terminal to
confirm on, a missing extra) is one line on stderr and exit status 2, never a traceback: a
command raises ``UsageError`` (or lets a ``ConfigError`` or a missing extra's ``ImportError``
through) and ``main`` prints it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from ..errors import ConfigError
from . import alerts, check, config, demo, dlq, serve, stats, sync, testbed, worker
from ._argparse import Parser, UsageError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, ModuleType] = {
    "serve": serve,
    "worker": worker,
    "check": check,
    "config": config,
    "alerts": alerts,
    "demo": demo,
    "dlq": dlq,
    "sync": sync,
    "stats": stats,
    "testbed": testbed,
}
"""Command name -> the module that implements it, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``interlock`` argument parser with every command's arguments."""
    parser = Parser(prog="interlock", description=__doc__.splitlines()[0])
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
    try:
        status: int = COMMANDS[args.command].run(args)
    except (UsageError, ConfigError, ImportError) as exc:
        # ImportError: a backend's client library is missing; the message names the extra.
        print(f"interlock {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
