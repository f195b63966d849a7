"""``interlock interactions``: the calls kept in the interaction log, for a tracking id, a
correlation id (a webhook's event id), a trace, an upstream or failures only.

interlock interactions --store sqlite:///interlock.db --tracking-id req_8f2
interlock interactions --correlation-id evt_123 --failed --json
interlock interactions --id 3f9c0d...          # one interaction, headers and bodies in full

A SQLite store that does not exist is an error, as for ``interlock dlq`` (a typo must not
show an empty log). Bodies and headers are shown as kept: already redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from datetime import UTC, datetime
from typing import Any

from ..stores import Interaction, InteractionFilter, InteractionStore, open_interactions, redact_url
from ._argparse import count, open_or_say_why
from .dlq import check_store, parse_since

HELP = "show the API calls kept in the interaction log (by tracking id, correlation id, trace)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Where the log is and which interactions to show."""
    parser.add_argument(
        "--store",
        default=os.environ.get("INTERLOCK_STORE", "sqlite:///interlock.db"),
        help="interaction log URL (default: $INTERLOCK_STORE or sqlite:///interlock.db)",
    )
    parser.add_argument("--table", default=None, help="its table (default interlock_interactions)")
    parser.add_argument("--tracking-id", help="the upstream's tracking id (X-Request-Id, CF-Ray...)")
    parser.add_argument("--correlation-id", help="the call's correlation id: a webhook's event id")
    parser.add_argument("--trace-id", help="the OpenTelemetry trace id (32 hex digits)")
    parser.add_argument("--upstream")
    parser.add_argument("--route", help="the route template, e.g. /customers/{id}")
    parser.add_argument("--id", dest="ids", action="append", default=[], help="one interaction (repeatable)")
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument("--failed", dest="failed", action="store_const", const=True, help="failures only")
    kept.add_argument("--succeeded", dest="failed", action="store_const", const=False, help="successes only")
    parser.add_argument("--since", type=parse_since, help="begun since: 15m, 2h, 7d, an ISO time")
    parser.add_argument("--until", type=parse_since)
    parser.add_argument(
        "--limit", type=count(1, 1000), default=50, help="show at most this many (default 50)"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line, headers and bodies included"
    )


def run(args: argparse.Namespace) -> int:
    """Show the matching interactions; exit status 1 when there are none."""
    check_store(args.store)
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    store = open_interactions(args.store, table=args.table, owner="interlock interactions", field="--store")
    await open_or_say_why(store, f"the interaction log {redact_url(args.store)}")
    try:
        return await _show(store, args, Console())
    finally:
        await store.aclose()


async def _show(store: InteractionStore, args: argparse.Namespace, console: Any) -> int:
    where = InteractionFilter(
        tracking_id=args.tracking_id, correlation_id=args.correlation_id, trace_id=args.trace_id,
        upstream=args.upstream, route=args.route, ids=args.ids, failed=args.failed,
        since=args.since, until=args.until,
    )  # fmt: skip
    found = await store.find(where, limit=args.limit)
    if args.json:
        for item in found:
            print(json.dumps(item.to_json(), ensure_ascii=False))
        return 0 if found else 1
    if not found:
        console.print("no interaction matches")
        return 1
    detail = bool(args.ids) or len(found) == 1
    for item in found:
        _print(console, item, detail)
    return 0


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print(console: Any, item: Interaction, detail: bool) -> None:
    status = item.status if item.status is not None else "-"
    mark = "FAILED" if item.failed else "ok"
    console.print(
        f"{_when(item.at)} {item.id} {mark} {item.method} {item.url} -> {status} "
        f"in {item.duration * 1000:.1f} ms, {len(item.attempts)} attempt(s)"
        f" tracking_id={item.tracking_id or '-'} correlation_id={item.correlation_id or '-'}",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    if item.error:
        console.print(f"  error: {item.error}", markup=False, highlight=False, soft_wrap=True)
    if not detail:
        return
    for a in item.attempts:
        what = a.status if a.status is not None else a.error
        console.print(
            f"  attempt {a.attempt}: {what} at +{a.started * 1000:.1f} ms, {a.duration * 1000:.1f} ms",
            markup=False, highlight=False,
        )  # fmt: skip
    for title, headers, body, cut in (
        ("request", item.request_headers, item.request_body, item.request_truncated),
        ("response", item.response_headers, item.response_body, item.response_truncated),
    ):
        console.print(f"  {title} headers:", markup=False)
        for name, value in headers:
            console.print(f"    {name}: {value}", markup=False, highlight=False, soft_wrap=True)
        if body:
            text = body.decode("utf-8", errors="replace") + (" [cut]" if cut else "")
            console.print(f"  {title} body: {text}", markup=False, highlight=False, soft_wrap=True)
    if item.trace_id:
        console.print(f"  trace_id: {item.trace_id}", markup=False)
