"""Interlock: resilient API calls, durable webhooks and incremental sync, from the command line.

Each subcommand lives beside the code it drives and registers itself here; its module is
imported only when it runs, so ``--help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# name -> (module that defines it, one-line help). The module exposes
# ``configure(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "dlq": ("interlock.inbox._cli", "list, inspect, replay and purge the inbox's dead letters"),
    "demo": (
        "interlock._demo",
        "run a workload against a faulty simulated API, naive vs Interlock",
    ),
    "sync": (
        "interlock.sync._cli",
        "run a sync job now, show its checkpoint and ledger, replay its dead records",
    ),
    "testbed": ("interlock.testbed._cli", "run the simulated third-party API"),
}


def _load(name: str) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[..., int]]:
    module = importlib.import_module(COMMANDS[name][0])
    return module.configure, module.run


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interlock", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name)[0](cmd)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("interlock")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    if not args.command:
        parser.print_help()
        return 2
    return _load(args.command)[1](args)


if __name__ == "__main__":
    sys.exit(main())
