"""``interlock config schema``: the JSON Schema of ``interlock.toml``, for editors
(``#:schema`` in taplo / Even Better TOML, or ``$schema`` mappings)."""

from __future__ import annotations

import argparse
import json

HELP = "config file tools: 'schema' prints the JSON Schema of interlock.toml"

__all__ = ["HELP", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``schema`` action."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("schema", help="print the JSON Schema of interlock.toml", description="print the JSON Schema of interlock.toml")


def run(args: argparse.Namespace) -> int:
    """Print the schema (the only action)."""
    from ..service import config_schema

    print(json.dumps(config_schema(), indent=2, sort_keys=True))
    return 0
