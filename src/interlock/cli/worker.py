"""``interlock worker -c FILE``: handle the inbox's events and run the syncs, with no HTTP.

For workers on other machines than ``interlock serve`` (whose ``[server] run_workers = false``
then leaves the work to them): every process leases from the same PostgreSQL store. SIGTERM
or Ctrl-C stops leasing, gives handlers in flight ``[server] grace`` seconds, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ._argparse import UsageError, count

HELP = "process webhook events and run syncs from a config file (no HTTP)"

__all__ = ["HELP", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """``-c FILE`` and ``--concurrency``."""
    parser.add_argument("-c", "--config", default="interlock.toml", metavar="FILE", help="the config file (default %(default)s)")
    parser.add_argument("--concurrency", type=count(1, 1000), help="events handled at once (default: [server] concurrency)")


async def _work(args: argparse.Namespace) -> None:
    from ..service import Service, load_config, resolve_handlers

    loaded = load_config(args.config)
    resolve_handlers(loaded)
    service = Service(loaded, run_workers=True)
    if args.concurrency:
        service.concurrency = args.concurrency
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except Exception as exc:
        await service.aclose()
        raise UsageError(f"cannot open the store: {type(exc).__name__}: {exc}") from None
    print(f"interlock worker: {service!r}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await service.aclose()


def run(args: argparse.Namespace) -> int:
    """Work until SIGTERM / Ctrl-C; the exit status."""
    asyncio.run(_work(args))
    return 0
