"""``interlock worker``: run the workers of an application's Inbox or Outbox, in N processes.

interlock worker myapp.events:inbox                  # one process, 8 handlers at once
interlock worker myapp.events:outbox --processes 4   # four processes sharing the backend
interlock worker myapp.events:make_inbox --concurrency 16 --visibility 60

APP is ``module:attribute`` naming an ``interlock.Inbox`` or ``interlock.Outbox`` (whose relay
runs in every process too), or a function returning one; the current directory is importable,
as with uvicorn. The processes share the work through the app's backend (any shared one:
PostgreSQL, RabbitMQ, NATS, or a SQLite file on this machine): each event is leased to one
process at a time, and the events of a process that dies are redelivered when their leases
expire. With ``--processes`` above 1 this process supervises the others: it restarts one that
dies and, on SIGTERM or Ctrl-C, stops them all, each given ``--grace`` seconds to finish.
"""

from __future__ import annotations

import argparse

from ..inbox import WorkerProcesses, load_app, run_app_workers, worker_command
from ._argparse import count, seconds

HELP = "run the workers of an Inbox or Outbox (module:attribute), in one or more processes"


def configure(parser: argparse.ArgumentParser) -> None:
    """``APP``, ``--processes``, ``--concurrency``, ``--visibility``, ``--grace``."""
    parser.add_argument(
        "app", metavar="APP", help="module:attribute of an Inbox or Outbox (or a function returning one)"
    )
    parser.add_argument("--processes", type=count(1, 256), default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--concurrency",
        type=count(1, 10_000),
        default=8,
        help="handlers running at once in each process (default 8)",
    )
    parser.add_argument(
        "--visibility",
        type=seconds(86_400),
        default=None,
        help="seconds a lease hides an event (default: the inbox's own)",
    )
    parser.add_argument(
        "--grace",
        type=seconds(3600),
        default=30.0,
        help="seconds each process gets to finish its events on stop (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the app (a mistake is exit 2 before any process starts), then run or supervise."""
    visibility = args.visibility if args.visibility else None
    app = load_app(args.app)
    if args.processes == 1:
        run_app_workers(app, concurrency=args.concurrency, visibility=visibility)
        return 0
    command = worker_command(args.app, concurrency=args.concurrency, visibility=visibility)
    return WorkerProcesses(command, args.processes, grace=args.grace).run()
