"""``interlock check -c FILE``: validate a config file without starting anything.

Reads the file, fills in ``${VAR}`` from the environment, validates every key, builds every
policy and imports every ``handler = "module:function"``. Exit 0 with a one-line summary on
stdout, or one line on stderr naming the file, the key path and the mistake, and exit 2.
"""

from __future__ import annotations

import argparse

HELP = "validate a config file (interlock.toml) without starting"

__all__ = ["HELP", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """``-c/--config FILE``."""
    parser.add_argument("-c", "--config", default="interlock.toml", metavar="FILE", help="the config file (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Validate ``args.config``; 0 when it is right (a ``ConfigError`` otherwise, exit 2)."""
    from ..service import load_config, resolve_handlers

    loaded = load_config(args.config)
    resolve_handlers(loaded)
    cfg = loaded.config
    print(
        f"{args.config}: ok ({len(cfg.upstreams)} upstreams, {len(cfg.sources)} sources, {len(cfg.syncs)} syncs; "
        f"store {cfg.store.url.partition('://')[0]})"
    )
    return 0
