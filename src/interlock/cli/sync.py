"""``interlock sync``: run a sync job on demand (with a progress bar), show its state, replay its
dead records, reset it.

    interlock sync run     NAME --app myproject.syncs:jobs [--full] [--max-records N]
    interlock sync status  NAME --app ...
    interlock sync ledger  NAME --app ... [--outcome dead] [--limit 20]
    interlock sync replay  NAME --app ...        # re-apply its dead letters (no workers needed)
    interlock sync reset   NAME --app ... [--yes]  # forget checkpoint and ledger

``--app module:attribute`` names where the jobs are defined (``$INTERLOCK_SYNC_APP`` by
default): a ``Sync``, a list or dict of them, or a function without arguments returning one of
those. The clients the job calls through are closed when the command ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import json
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..client import Client
from ..errors import CallError
from ..sync import Sync, SyncReport, checkpoint_json
from ._argparse import UsageError, confirm, count, open_or_say_why, option_anywhere

HELP = "run a sync job now, show its checkpoint and ledger, replay its dead records"


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``sync`` actions (run, status, ledger, replay, reset), each with ``--app``."""
    app = option_anywhere(
        parser,
        "--app",
        default=os.environ.get("INTERLOCK_SYNC_APP"),
        help="module:attribute holding the sync jobs (default: $INTERLOCK_SYNC_APP)",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="poll once now, with a progress bar", parents=[app])
    run.add_argument("name")
    run.add_argument("--full", action="store_true", help="ignore the checkpoint: read everything since start")
    run.add_argument(
        "--max-records", type=count(1), default=None, help="stop after reading this many records"
    )
    run.add_argument("--no-progress", action="store_true", help="print only the summary")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    status = sub.add_parser("status", help="checkpoint, ledger counts, dead letters", parents=[app])
    status.add_argument("name")
    ledger = sub.add_parser("ledger", help="the last outcomes per record, most recent first", parents=[app])
    ledger.add_argument("name")
    ledger.add_argument("--outcome", choices=["applied", "dead"])
    ledger.add_argument("--limit", type=count(1, 100_000), default=20, help="entries shown (default 20)")
    replay = sub.add_parser(
        "replay", help="re-apply the job's dead letters; those applied leave the DLQ", parents=[app]
    )
    replay.add_argument("name")
    replay.add_argument("--limit", type=count(1, 1_000_000), default=1000, help="letters replayed at most")
    reset = sub.add_parser("reset", help="forget the job's checkpoint and ledger", parents=[app])
    reset.add_argument("name")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")


def load_jobs(spec: str | None) -> dict[str, Sync]:
    """Import ``module:attribute`` and collect the ``Sync`` jobs it holds; a ``UsageError``
    saying what is wrong with ``spec`` otherwise."""
    if not spec or ":" not in spec:
        raise UsageError("name the jobs with --app module:attribute (or set INTERLOCK_SYNC_APP)")
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app {spec}: cannot import {module_name!r}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"--app {spec}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"--app {spec}: {module_name!r} has no attribute {attribute!r}") from None
    if callable(target) and not isinstance(target, Sync):
        target = _call_factory(spec, target)
    jobs: Iterable[Any]
    if isinstance(target, Sync):
        jobs = [target]
    elif isinstance(target, Mapping):
        jobs = target.values()
    elif isinstance(target, Iterable):
        jobs = list(target)
    else:
        raise UsageError(f"--app {spec} is not a Sync, a list or dict of them, or a function returning one")
    found = {job.name: job for job in jobs if isinstance(job, Sync)}
    if not found:
        kind = type(target).__name__
        raise UsageError(f"--app {spec} holds no interlock.Sync job (it gave a {kind})")
    return found


def _call_factory(spec: str, factory: Any) -> Any:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        required = [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        if required:
            raise UsageError(
                f"--app {spec} is a function that needs arguments ({', '.join(required)}); name a "
                "Sync, a list or dict of them, or a function without arguments returning one"
            )
    try:
        return factory()
    except Exception as exc:
        raise UsageError(f"--app {spec}: calling it failed: {type(exc).__name__}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Run one ``sync`` action on the job named; the exit status."""
    jobs = load_jobs(args.app)
    job = jobs.get(args.name)
    if job is None:
        raise UsageError(f"no sync job named {args.name!r} in --app {args.app}; known: {', '.join(sorted(jobs))}")
    if args.action == "reset" and not confirm(f"forget the checkpoint and ledger of {job.name}?", yes=args.yes):
        print("nothing reset")
        return 1
    return asyncio.run(_run(job, args))


def _clients_of(job: Sync) -> list[Client]:
    """The clients the job calls through: its source's and a write-back's."""
    found: list[Client] = [job.source.client]
    client = getattr(job.destination, "client", None)
    if isinstance(client, Client) and client is not job.source.client:
        found.append(client)
    return found


async def _run(job: Sync, args: argparse.Namespace) -> int:
    try:
        return await _act(job, args)
    finally:
        # The app module made these clients for this process, which ends with the command:
        # close them here, inside the loop their connections belong to.
        for client in _clients_of(job):
            with contextlib.suppress(Exception):
                await client.aclose()


async def _act(job: Sync, args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    await open_or_say_why(job, f"the stores of sync job {job.name}")
    try:
        async with job:
            action: str = args.action
            if action == "run":
                return await _poll(job, args, console)
            if action == "status":
                console.print_json(json.dumps(await job.status()))
                return 0
            if action == "ledger":
                entries = await job.store.entries(job.name, outcome=args.outcome, limit=args.limit)
                for e in entries:
                    when = datetime.fromtimestamp(e.at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
                    extra = f" tracking_id={e.tracking_id}" if e.tracking_id else ""
                    error = f" error={e.error}" if e.error else ""
                    console.print(
                        f"{when}  {e.record_id}  version={e.version}  {e.outcome}  attempts={e.attempts}{extra}{error}",
                        markup=False,
                        highlight=False,
                    )
                return 0
            if action == "replay":
                outcome = await job.replay_dead_letters(limit=args.limit)
                console.print(
                    f"replayed {job.name}: applied {outcome['applied']}, already applied {outcome['skipped']}, "
                    f"failed again {outcome['failed']}"
                )
                return 0 if outcome["failed"] == 0 else 1
            await job.reset()
            console.print(f"{job.name}: checkpoint and ledger forgotten")
            return 0
    except KeyboardInterrupt:
        return 130


async def _poll(job: Sync, args: argparse.Namespace, console: Any) -> int:
    try:
        report = await _poll_once(job, args, console)
    except CallError as exc:  # the upstream failed past the retries: say so, not a traceback
        print(f"interlock sync: the poll of {job.name} failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return _summary(job, report, args, console)


async def _poll_once(job: Sync, args: argparse.Namespace, console: Any) -> SyncReport:
    if args.no_progress or args.json:
        return await job.run_once(full=args.full, max_records=args.max_records)
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} done"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"sync {job.name}", total=args.max_records, detail="")

        def show(r: SyncReport) -> None:
            detail = f"applied {r.applied} · skipped {r.skipped} · dead {r.dead} · {r.rate:.0f}/s"
            bar.update(task, completed=r.done, detail=detail)

        return await job.run_once(full=args.full, max_records=args.max_records, progress=show)


def _summary(job: Sync, report: SyncReport, args: argparse.Namespace, console: Any) -> int:
    if args.json:
        payload = {
            "job": report.job,
            "since": report.since,
            "read": report.read,
            "applied": report.applied,
            "skipped": report.skipped,
            "dead": report.dead,
            "invalid": report.invalid,
            "pages": report.pages,
            "elapsed": round(report.elapsed, 3),
            "stop_reason": report.stop_reason,
            "checkpoint": checkpoint_json(report.checkpoint),
        }
        print(json.dumps(payload))
    else:
        console.print(str(report), markup=False, highlight=False)
        if report.dead:
            console.print(
                f"{report.dead} record(s) dead-lettered: interlock dlq list --source {job.dlq_source}"
            )
    return 0 if report.dead == 0 and report.invalid == 0 else 1
