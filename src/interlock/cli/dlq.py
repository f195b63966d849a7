"""``interlock dlq``: list, inspect, replay and purge dead letters.

interlock dlq list    --store sqlite:///interlock.db [--source S] [--type T] [--since 1h]
interlock dlq inspect EVENT_ID [--source S]
interlock dlq replay  EVENT_ID...            # or --all / filters, with a progress bar
interlock dlq purge   [EVENT_ID...] [filters] --yes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

from ..stores import DeadLetterFilter, Queue, open_queue, sqlite_path_from_url
from ._argparse import option_anywhere

HELP = "list, inspect, replay and purge the inbox's dead letters"

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(value: str) -> float:
    """``90s``, ``15m``, ``2h``, ``7d`` ago, an ISO 8601 time, or a Unix timestamp."""
    m = _DURATION.match(value.strip())
    if m:
        amount, unit = float(m.group(1)), m.group(2)
        return time.time() - amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a duration (15m, 2h, 7d), an ISO time or a Unix timestamp"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``dlq`` actions and their arguments to the parser."""
    store = option_anywhere(
        parser,
        "--store",
        default=os.environ.get("INTERLOCK_STORE", "sqlite:///interlock.db"),
        help="queue URL (default: $INTERLOCK_STORE or sqlite:///interlock.db)",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--source")
        p.add_argument("--type")
        p.add_argument("--since", type=parse_since, help="dead-lettered since: 15m, 2h, 7d, ISO time")
        p.add_argument("--until", type=parse_since)
        p.add_argument("--error", help="substring of the error history")

    ls = sub.add_parser("list", help="list dead letters, oldest first", parents=[store])
    filters(ls)
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")

    ins = sub.add_parser(
        "inspect", help="show one dead letter: headers, body, error history", parents=[store]
    )
    ins.add_argument("id")
    ins.add_argument("--source")

    rp = sub.add_parser("replay", help="send dead letters back to the workers", parents=[store])
    rp.add_argument("ids", nargs="*")
    filters(rp)
    rp.add_argument("--all", action="store_true", help="replay every dead letter matching the filters")
    rp.add_argument("--batch", type=int, default=100)

    pg = sub.add_parser("purge", help="delete dead letters for good", parents=[store])
    pg.add_argument("ids", nargs="*")
    filters(pg)
    pg.add_argument("--all", action="store_true")
    pg.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _filter(args: argparse.Namespace, ids: list[str] | None = None) -> DeadLetterFilter:
    return DeadLetterFilter(
        source=getattr(args, "source", None),
        type=getattr(args, "type", None),
        ids=ids or [],
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        error_contains=getattr(args, "error", None),
    )


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def run(args: argparse.Namespace) -> int:
    """Run one ``dlq`` action; the exit status."""
    if args.store.startswith("sqlite:"):
        path = sqlite_path_from_url(args.store)
        if path != ":memory:" and not os.path.exists(path):
            # Inspecting a store must never create one: a typo would show an empty, healthy DLQ.
            print(f"no inbox store at {path!r} (from --store {args.store}); check the path")
            return 2
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    queue = open_queue(args.store)
    await queue.open()
    try:
        action: str = args.action
        if action == "list":
            return await _list(queue, args, console)
        if action == "inspect":
            return await _inspect(queue, args, console)
        if action == "replay":
            return await _bulk(queue, args, console, replay=True)
        return await _bulk(queue, args, console, replay=False)
    finally:
        await queue.aclose()


async def _list(queue: Queue, args: argparse.Namespace, console: Any) -> int:
    from rich.table import Table

    where = _filter(args)
    letters = await queue.dead_letters(where, limit=args.limit)
    total = await queue.count_dead(where)
    if args.json:
        for d in letters:
            print(
                json.dumps(
                    {
                        "id": d.message.id,
                        "source": d.message.source,
                        "type": d.message.type,
                        "attempts": d.attempts,
                        "dead_at": d.dead_at,
                        "last_error": d.last_error,
                    }
                )
            )
        return 0
    table = Table(title=f"dead letters: {len(letters)} of {total}")
    for col in ("id", "source", "type", "attempts", "dead at (UTC)", "last error"):
        table.add_column(col, overflow="fold")
    for d in letters:
        table.add_row(
            d.message.id,
            d.message.source,
            d.message.type,
            str(d.attempts),
            _when(d.dead_at),
            d.last_error[:120],
        )
    console.print(table)
    return 0


async def _inspect(queue: Queue, args: argparse.Namespace, console: Any) -> int:
    found = await queue.dead_letters(DeadLetterFilter(source=args.source, ids=[args.id]), limit=10)
    if not found:
        console.print(f"[red]no dead letter with id {args.id!r}[/red]")
        return 1
    for d in found:
        m = d.message
        console.rule(f"{m.source} / {m.id}")
        console.print(
            f"type: {m.type}\nattempts: {d.attempts}\nreceived: {_when(m.received_at)} UTC"
            f"\ndead since: {_when(d.dead_at)} UTC"
        )
        console.print("headers:", dict(m.headers))
        try:
            console.print_json(m.body.decode())
        except (ValueError, UnicodeDecodeError):
            console.print(repr(m.body[:4000]))
        for f in d.failures:
            console.print(f"[yellow]attempt {f.attempt}[/yellow] at {_when(f.at)}: {f.error}")
    return 0


async def _bulk(queue: Queue, args: argparse.Namespace, console: Any, *, replay: bool) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    verb = "replay" if replay else "purge"
    has_filter = any(getattr(args, k) is not None for k in ("source", "type", "since", "until", "error"))
    if not args.ids and not args.all and not has_filter:
        console.print(f"[red]name event ids, give filters, or pass --all to {verb} every dead letter[/red]")
        return 2
    where = _filter(args, args.ids)
    total = await queue.count_dead(where)
    if not replay and not args.yes:
        answer = await asyncio.to_thread(input, f"purge {total} dead letter(s) for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            console.print("nothing purged")
            return 1
    if not replay:
        n = await queue.purge(where)
        console.print(f"purged {n} dead letter(s)")
        return 0
    done = 0
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("replay", total=total)
        # Page through the matches in batches so a large DLQ shows progress and each
        # batch is a short transaction.
        while True:
            batch = await queue.dead_letters(where, limit=args.batch)
            if not batch:
                break
            ids = [d.message.id for d in batch]
            moved = 0
            for source in {d.message.source for d in batch}:
                sub_ids = [d.message.id for d in batch if d.message.source == source]
                moved += await queue.replay(
                    DeadLetterFilter(
                        source=source,
                        ids=sub_ids,
                        type=where.type,
                        since=where.since,
                        until=where.until,
                        error_contains=where.error_contains,
                    )
                )
            done += moved
            progress.update(task, completed=done)
            if moved == 0:
                break  # nothing matched any more (another process replayed them)
            if len(ids) < args.batch:
                break
    console.print(f"replayed {done} dead letter(s)")
    return 0
