"""``interlock sync``: run a sync job on demand (with a progress bar), show its state, replay its
dead records, reset it.

    interlock sync run     NAME --app myproject.syncs:jobs [--full] [--max-records N]
    interlock sync status  NAME --app ...
    interlock sync ledger  NAME --app ... [--outcome dead] [--limit 20]
    interlock sync replay  NAME --app ...        # re-apply its dead letters (no workers needed)
    interlock sync reset   NAME --app ... --yes  # forget checkpoint and ledger

``--app module:attribute`` names where the jobs are defined (``$INTERLOCK_SYNC_APP`` by
default): a ``Sync``, a list or dict of them, or a function returning one of those.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..sync import Sync, SyncReport
from ._argparse import option_anywhere

HELP = "run a sync job now, show its checkpoint and ledger, replay its dead records"

def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``sync`` actions and their arguments to the parser."""
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
    run.add_argument("--max-records", type=int, default=None, help="stop after reading this many records")
    run.add_argument("--no-progress", action="store_true", help="print only the summary")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    status = sub.add_parser("status", help="checkpoint, ledger counts, dead letters", parents=[app])
    status.add_argument("name")
    ledger = sub.add_parser("ledger", help="the last outcomes per record, most recent first", parents=[app])
    ledger.add_argument("name")
    ledger.add_argument("--outcome", choices=["applied", "dead"])
    ledger.add_argument("--limit", type=int, default=20)
    replay = sub.add_parser(
        "replay", help="re-apply the job's dead letters; those applied leave the DLQ", parents=[app]
    )
    replay.add_argument("name")
    replay.add_argument("--limit", type=int, default=1000)
    reset = sub.add_parser("reset", help="forget the job's checkpoint and ledger", parents=[app])
    reset.add_argument("name")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def load_jobs(spec: str | None) -> dict[str, Sync]:
    """Import ``module:attribute`` and collect the ``Sync`` jobs it holds."""
    if not spec or ":" not in spec:
        raise SystemExit("name the jobs with --app module:attribute (or set INTERLOCK_SYNC_APP)")
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SystemExit(f"{module_name!r} has no attribute {attribute!r}") from None
    if callable(target) and not isinstance(target, Sync):
        target = target()
    jobs: Iterable[Any]
    if isinstance(target, Sync):
        jobs = [target]
    elif isinstance(target, Mapping):
        jobs = target.values()
    elif isinstance(target, Iterable):
        jobs = list(target)
    else:
        raise SystemExit(f"{spec} is not a Sync, a list or dict of them, or a function returning one")
    found = {job.name: job for job in jobs if isinstance(job, Sync)}
    if not found:
        raise SystemExit(f"{spec} holds no interlock.Sync job")
    return found


def run(args: argparse.Namespace) -> int:
    """Run one ``sync`` action; the exit status."""
    jobs = load_jobs(args.app)
    job = jobs.get(args.name)
    if job is None:
        print(f"no sync job named {args.name!r}; known: {', '.join(sorted(jobs))}", file=sys.stderr)
        return 2
    if args.action == "reset" and not args.yes:
        answer = input(f"forget the checkpoint and ledger of {job.name}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    return asyncio.run(_run(job, args))


async def _run(job: Sync, args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
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
    report: SyncReport
    if args.no_progress or args.json:
        report = await job.run_once(full=args.full, max_records=args.max_records)
    else:
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

            report = await job.run_once(full=args.full, max_records=args.max_records, progress=show)
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
            "checkpoint": None
            if report.checkpoint is None
            else {"updated_at": report.checkpoint.updated_at, "record_id": report.checkpoint.record_id},
        }
        print(json.dumps(payload))
    else:
        console.print(str(report), markup=False, highlight=False)
        if report.dead:
            console.print(
                f"{report.dead} record(s) dead-lettered: interlock dlq list --source {job.dlq_source}"
            )
    return 0 if report.dead == 0 and report.invalid == 0 else 1
