"""``interlock dlq``: list, inspect, replay and purge dead letters.

interlock dlq list    --store sqlite:///interlock.db [--source S] [--type T] [--since 1h]
interlock dlq inspect EVENT_ID [--source S]
interlock dlq replay  EVENT_ID...            # or --all / filters, with a progress bar
interlock dlq purge   [EVENT_ID...] [filters] [--yes]

A SQLite store that does not exist is an error (a typo must not show an empty, healthy DLQ);
purge asks first unless ``--yes`` (and says there is nothing to purge without asking).
A sync job's dead records are replayed here only when the job has an inbox, whose workers
apply them; the others are left in the DLQ with a pointer to ``interlock sync replay``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.markup import escape

from ..stores import DeadLetterFilter, Queue, open_queue, redact_url, sqlite_path_from_url
from ..sync import replayable_by_workers
from ._argparse import UsageError, confirm, count, open_or_say_why, option_anywhere

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
    """The ``dlq`` actions (list, inspect, replay, purge), each with ``--store`` and filters."""
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
    ls.add_argument("--limit", type=count(1, 10_000), default=50, help="show at most this many (default 50)")
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
    rp.add_argument("--batch", type=count(1, 10_000), default=100, help="letters moved per transaction")

    pg = sub.add_parser("purge", help="delete dead letters for good", parents=[store])
    pg.add_argument("ids", nargs="*")
    filters(pg)
    pg.add_argument("--all", action="store_true", help="purge every dead letter matching the filters")
    pg.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")


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


def check_store(url: str) -> None:
    """A ``UsageError`` when ``url`` names a SQLite file (``sqlite:///...`` or a plain path)
    that does not exist: inspecting a store must never create one, or a typo would show an
    empty, healthy DLQ."""
    head, colon, _ = url.partition(":")
    if colon and len(head) > 1 and head.lower() != "sqlite":
        return  # another backend (a drive letter such as C: is a path)
    path = sqlite_path_from_url(url)
    if path != ":memory:" and not os.path.exists(path):
        raise UsageError(f"no store at {path!r} (from --store {redact_url(url)}); check the path or the URL")


async def open_store(url: str) -> Queue:
    """The queue at ``url``, opened; a ``UsageError`` saying why when it cannot be (a server
    that is down, a database that does not exist, a missing extra is an ImportError)."""
    queue = open_queue(url, owner="interlock dlq", field="--store")
    await open_or_say_why(queue, f"the store {redact_url(url)}")
    return queue


def run(args: argparse.Namespace) -> int:
    """Run one ``dlq`` action; the exit status."""
    check_store(args.store)
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    queue = await open_store(args.store)
    try:
        action: str = args.action
        if action == "list":
            return await _list(queue, args, console)
        if action == "inspect":
            return await _inspect(queue, args, console)
        if action == "replay":
            return await _replay(queue, args, console)
        return await _purge(queue, args, console)
    finally:
        await queue.aclose()


async def _list(queue: Queue, args: argparse.Namespace, console: Any) -> int:
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
                        "interaction_ids": list(d.interaction_ids),
                    }
                )
            )
        return 0
    title = f"dead letters: {len(letters)} of {total}, longest dead first"
    rows = [
        (d.message.id, d.message.source, d.message.type, str(d.attempts), _when(d.dead_at), " ".join(d.last_error.split()))
        for d in letters
    ]
    natural = [max([len(HEADER[i]), *(len(r[i]) for r in rows)]) for i in range(5)]
    room = console.width - sum(natural) - 3 * len(HEADER) - 1
    if room >= MIN_ERROR:
        console.print(_table(rows, title, room))
        return 0
    # Narrow terminals: one short block per letter (id and time, then where from, then the
    # error on one line cut to the width) rather than six columns folded into slivers; an id
    # is never cut, so it can be copied into ``inspect``.
    console.print(title, markup=False, highlight=False)
    for d in letters:
        m = d.message
        plural = "s" if d.attempts != 1 else ""
        console.print(f"[bold]{escape(m.id)}[/bold]  dead since {_when(d.dead_at)} UTC", highlight=False)
        console.print(
            f"  {m.source} / {m.type or '-'} / {d.attempts} attempt{plural}", markup=False, highlight=False
        )
        error = " ".join(d.last_error.split())
        cut = max(20, console.width - 4)
        console.print(f"  {error if len(error) <= cut else error[: cut - 1] + '…'}", markup=False, highlight=False)
    return 0


HEADER = ("id", "source", "type", "attempts", "dead at (UTC)", "last error")
MIN_ERROR = 40
"""``dlq list`` shows a table when every column but the error fits whole and the error gets at
least this many columns; a block per letter otherwise."""


def _table(rows: Sequence[tuple[str, ...]], title: str, room: int) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for name in HEADER[:5]:
        table.add_column(name, no_wrap=True)
    table.add_column(HEADER[5], no_wrap=True, overflow="ellipsis", max_width=room)
    for row in rows:
        table.add_row(*row)
    return table


async def _inspect(queue: Queue, args: argparse.Namespace, console: Any) -> int:
    found = await queue.dead_letters(DeadLetterFilter(source=args.source, ids=[args.id]), limit=10)
    if not found:
        console.print(f"[red]no dead letter with id {escape(args.id)!r}[/red]")
        return 1
    for d in found:
        m = d.message
        console.rule(f"{m.source} / {m.id}")
        console.print(
            f"type: {m.type}\nattempts: {d.attempts}\nreceived: {_when(m.received_at)} UTC"
            f"\ndead since: {_when(d.dead_at)} UTC",
            markup=False,
        )
        console.print("headers:", dict(m.headers))
        try:
            console.print_json(m.body.decode())
        except (ValueError, UnicodeDecodeError):
            console.print(repr(m.body[:4000]))
        for f in d.failures:
            console.print(f"[yellow]attempt {f.attempt}[/yellow] at {_when(f.at)}: {escape(f.error)}")
        if d.interaction_ids:
            shown = " ".join(d.interaction_ids)
            hint = f"failed calls: {shown} (see: interlock interactions --id {d.interaction_ids[-1]})"
            console.print(hint, markup=False, highlight=False, soft_wrap=True)
    return 0


def _needs_selection(args: argparse.Namespace, verb: str) -> None:
    has_filter = any(getattr(args, k) is not None for k in ("source", "type", "since", "until", "error"))
    if not args.ids and not args.all and not has_filter:
        raise UsageError(f"name event ids, give filters, or pass --all to {verb} every dead letter")


async def _purge(queue: Queue, args: argparse.Namespace, console: Any) -> int:
    _needs_selection(args, "purge")
    where = _filter(args, args.ids)
    total = await queue.count_dead(where)
    if total == 0:
        console.print("nothing to purge: no dead letter matches")
        return 0
    if not await asyncio.to_thread(confirm, f"purge {total} dead letter(s) for good?", yes=args.yes):
        console.print("nothing purged")
        return 1
    n = await queue.purge(where)
    console.print(f"purged {n} dead letter(s)")
    return 0


async def _replay(queue: Queue, args: argparse.Namespace, console: Any) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    _needs_selection(args, "replay")
    where = _filter(args, args.ids)
    total = await queue.count_dead(where)
    done = 0
    left: dict[str, int] = {}  # sync jobs' letters nobody would consume, by source
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("replay", total=total)
        # Page through the matches in batches so a large DLQ shows progress and each batch is
        # a short transaction. The letters left behind stay first in the order: skip them.
        while True:
            batch = await queue.dead_letters(where, limit=args.batch, offset=sum(left.values()))
            if not batch:
                break
            moved = 0
            by_source: dict[str, list[str]] = {}
            for d in batch:
                if replayable_by_workers(d.message):
                    by_source.setdefault(d.message.source, []).append(d.message.id)
                else:
                    left[d.message.source] = left.get(d.message.source, 0) + 1
            for source, ids in by_source.items():
                moved += await queue.replay(
                    DeadLetterFilter(
                        source=source,
                        ids=ids,
                        type=where.type,
                        since=where.since,
                        until=where.until,
                        error_contains=where.error_contains,
                    )
                )
            done += moved
            progress.update(task, completed=done + sum(left.values()))
            if len(batch) < args.batch or (by_source and moved == 0):
                break  # the last page, or another process replayed them meanwhile
    console.print(f"replayed {done} dead letter(s)")
    for source, n in sorted(left.items()):
        job = source.partition(":")[2]
        console.print(
            f"left {n} dead letter(s) of {source} in the DLQ: that job has no inbox whose workers "
            f"would apply them; replay them with: interlock sync replay {job} --app MODULE:ATTRIBUTE",
            markup=False,
            highlight=False,
        )
    return 0
