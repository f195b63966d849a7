"""``interlock testbed``: serve the simulated API.

The first line on stdout is the bound URL and nothing else, so a parent process
(``spawn_testbed``) can read it; a human-readable summary goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..testbed import DIALECTS, Latency, RateLimitConfig, Testbed, TestbedConfig
from ._argparse import count, fraction, port, seconds

HELP = "run the simulated third-party API"

__all__ = ["HELP", "build_config", "configure", "run"]


def _error_rate(text: str) -> tuple[int, float]:
    status, sep, rate = text.partition("=")
    try:
        if not sep:
            raise ValueError(text)
        return int(status), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected STATUS=PROBABILITY such as 503=0.2, got {text!r}"
        ) from None


def _rate_limit(text: str) -> tuple[int, float]:
    limit, _, window = text.partition("/")
    try:
        return int(limit), float(window) if window else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LIMIT/WINDOW_SECONDS such as 50/1, got {text!r}"
        ) from None


def configure(parser: argparse.ArgumentParser) -> None:
    """The testbed's flags: where to listen, and the faults and quota it plays."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=port, default=8080, help="port, 0 for a free one (default %(default)s)")
    parser.add_argument(
        "--config",
        metavar="JSON|@FILE",
        help="a TestbedConfig as JSON, or @path to a JSON file; the flags below override it",
    )
    parser.add_argument("--records", type=count(0, 10_000_000), help="records per kind (ids 1..N)")
    parser.add_argument("--seed", type=int, help="seed for data and fault draws")
    parser.add_argument("--latency-ms", type=seconds(unit="milliseconds"), metavar="MS", help="fixed latency per request")
    parser.add_argument(
        "--error-rate",
        type=_error_rate,
        action="append",
        default=[],
        metavar="STATUS=P",
        help="inject STATUS with probability P (repeatable)",
    )
    parser.add_argument(
        "--reset-rate", type=fraction(), metavar="P", help="drop the connection with probability P"
    )
    parser.add_argument(
        "--rate-limit", type=_rate_limit, metavar="LIMIT/WINDOW", help="quota per client key, e.g. 50/1"
    )
    parser.add_argument(
        "--algorithm",
        choices=("token_bucket", "fixed_window"),
        help="rate-limit algorithm (default token_bucket)",
    )
    parser.add_argument("--burst", type=count(1), help="token bucket capacity (default: the limit)")
    parser.add_argument(
        "--dialect", choices=DIALECTS, help="how the quota is announced (default x-ratelimit-epoch)"
    )
    parser.add_argument("--key-header", help="header naming the client for the quota (default Authorization)")
    # For spawn_testbed: exit when stdin reaches EOF (the parent closed it or died).
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)


def build_config(args: argparse.Namespace) -> TestbedConfig:
    """The configuration the arguments describe: ``--config`` first, flags on top."""
    base = TestbedConfig()
    if args.config:
        text = args.config
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError("testbed", "--config", f"not valid JSON: {exc}") from None
        base = TestbedConfig.from_dict(data)
    changes: dict[str, Any] = {}
    if args.records is not None:
        changes["records"] = args.records
    if args.seed is not None:
        changes["seed"] = args.seed
    faults: dict[str, Any] = {}
    if args.latency_ms is not None:
        faults["latency"] = Latency("fixed", ms=args.latency_ms)
    if args.error_rate:
        faults["error_rates"] = {**base.faults.error_rates, **dict(args.error_rate)}
    if args.reset_rate is not None:
        faults["reset_rate"] = args.reset_rate
    if faults:
        changes["faults"] = dataclasses.replace(base.faults, **faults)
    limit_flags = {
        "algorithm": args.algorithm,
        "burst": args.burst,
        "dialect": args.dialect,
        "key_header": args.key_header,
    }
    limit_changes = {k: v for k, v in limit_flags.items() if v is not None}
    if args.rate_limit is not None:
        limit_changes["limit"], limit_changes["window"] = args.rate_limit
    if limit_changes:
        if base.rate_limit is None and args.rate_limit is None:
            raise ConfigError("testbed", "--rate-limit", "set it to use --algorithm/--burst/--dialect")
        changes["rate_limit"] = dataclasses.replace(base.rate_limit or RateLimitConfig(), **limit_changes)
    return dataclasses.replace(base, **changes) if changes else base


def _watch_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin closes: the parent closed the pipe, or died (the OS closes
    it then), so an orphaned testbed never outlives its benchmark."""

    def wait_for_eof() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, name="testbed-parent-watch", daemon=True).start()


async def _serve(config: TestbedConfig, host: str, port: int, exit_with_parent: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if exit_with_parent:
        _watch_parent(loop, stop)
    async with Testbed(config, host=host, port=port) as testbed:
        print(testbed.url, flush=True)
        print(f"{testbed!r} (pid {os.getpid()}); Ctrl-C to stop", file=sys.stderr, flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    """Serve the testbed until Ctrl-C (or the parent's exit); the exit status."""
    try:
        config = build_config(args)
    except (ConfigError, OSError) as exc:
        print(f"interlock testbed: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port, args.exit_with_parent))
    except OSError as exc:  # e.g. the port is taken
        print(f"interlock testbed: error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0

