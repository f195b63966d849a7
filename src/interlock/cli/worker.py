"""``interlock worker``: handle events with no HTTP, from a config file or an application's
Inbox / Outbox, in one or N processes.

interlock worker -c interlock.toml                   # the config file's inbox and syncs
interlock worker -c interlock.toml --processes 4     # in four processes
interlock worker myapp.events:inbox                  # an Inbox (or Outbox) of your code
interlock worker myapp.events:outbox --processes 4 --concurrency 16

From a config file (for workers on other machines than ``interlock serve``, whose ``[server]
run_workers = false`` then leaves the work to them) every process leases from the configured
store. ``APP`` is ``module:attribute`` naming an ``interlock.Inbox`` or ``interlock.Outbox``
(whose relay runs in every process too), or a function returning one; the current directory is
importable, as with uvicorn. Either way the processes share the work through the backend (any
shared one: PostgreSQL, RabbitMQ, NATS, or a SQLite file on this machine): each event is leased
to one process at a time, and the events of a process that dies are redelivered when their
leases expire. With ``--processes`` above 1 this process supervises the others: it restarts one
that dies and, on SIGTERM or Ctrl-C, stops them all, each given ``--grace`` seconds. One
process: SIGTERM or Ctrl-C stops leasing, lets handlers in flight finish, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ..inbox import WorkerProcesses, load_app, run_app_workers, worker_command
from ._argparse import UsageError, count, seconds

HELP = "process events with no HTTP: from a config file (-c) or an Inbox/Outbox (module:attribute), in N processes"

__all__ = ["HELP", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """``[APP]``, ``-c FILE``, ``--processes``, ``--concurrency``, ``--visibility``, ``--grace``."""
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="module:attribute of an Inbox or Outbox (instead of a config file)",
    )
    parser.add_argument(
        "-c",
        "--config",
        default="interlock.toml",
        metavar="FILE",
        help="the config file (default %(default)s)",
    )
    parser.add_argument("--processes", type=count(1, 256), default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--concurrency",
        type=count(1, 10_000),
        help="events handled at once per process (default: [server] concurrency, or 8 for APP)",
    )
    parser.add_argument(
        "--visibility",
        type=seconds(86_400),
        default=None,
        help="APP only: seconds a lease hides an event (default: the inbox's)",
    )
    parser.add_argument(
        "--grace",
        type=seconds(3600),
        default=30.0,
        help="seconds each process gets to finish on stop (default 30)",
    )


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
    """Work until SIGTERM / Ctrl-C (a mistake is exit 2 before any process starts); the exit status."""
    if args.app is None:
        if args.visibility is not None:
            raise UsageError("--visibility applies to an APP; a config file sets its own")
        if args.processes == 1:
            asyncio.run(_work(args))
            return 0
        command = [sys.executable, "-m", "interlock", "worker", "-c", args.config, "--processes", "1"]
        if args.concurrency:
            command += ["--concurrency", str(args.concurrency)]
        return WorkerProcesses(command, args.processes, grace=args.grace).run()
    concurrency = args.concurrency or 8
    app = load_app(args.app)
    if args.processes == 1:
        run_app_workers(app, concurrency=concurrency, visibility=args.visibility)
        return 0
    command = worker_command(args.app, concurrency=concurrency, visibility=args.visibility)
    return WorkerProcesses(command, args.processes, grace=args.grace).run()
