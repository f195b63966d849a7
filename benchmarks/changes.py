"""One upstream change stream, learnt three ways: fixed 60 s polling (the baseline), adaptive
polling, and an SSE stream with two forced disconnects.

The same seeded schedule of changes (two busy stretches, a change every ~6 s, in quiet time
with a few lone changes, over ``--minutes`` of simulated time) is replayed against a fresh in-process testbed for each contender:

- ``fixed-60s`` and ``adaptive``: ``interlock.Sync`` polling ``/customers`` on a fake clock
  (every sleep between polls applies the changes due meanwhile, then the clock jumps): no real
  waiting, so 10 minutes take a second. ``adaptive`` is ``every=60, adaptive=True, min_every=5,
  max_every=900``; both send ``If-None-Match`` (an unchanged listing is a 304).
- ``sse-stream``: ``inbox.subscribe(..., EventStream.sse(client, "/events"))`` in real time, the
  schedule compressed ``--speedup`` times (the stream's delay is network time: it does not
  scale with the clock), cut mid-event twice (at 1/3 and 2/3 of the run).

Printed per contender: upstream requests (listing pages, 304s among them; stream connections),
median and p99 delay from a change to its handling (a change superseded before a poll counts as
handled when a later version of the record is; a change late in the window is handled by the
poll due next, at its scheduled time, whose request is not counted), changes lost (never
handled, nor a later version) and duplicated (one version handled twice). Ratios: requests and median delay against
fixed 60 s polling, measured in the same run; rounds alternate in rotated order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import Load, emit, med, percentile, rotations, spread, table

import interlock
from interlock.testbed import Testbed, TestbedConfig
from interlock.testing import FakeClock

RECORDS = 200
WALL0 = 1_700_000_000.0  # the fake wall clock at the start of the run (2023-11-14)


@dataclass(frozen=True)
class Change:
    at: float  # seconds from the start of the run
    rid: int


def schedule(minutes: float, seed: int) -> list[Change]:
    """Two busy stretches (people at work in the CRM: a change every ~6 s, for 20 % and 15 % of
    the run) in quiet time with a few lone changes, over ``minutes`` of simulated time."""
    rng = random.Random(seed)
    span = minutes * 60
    changes: list[Change] = []
    for start, length in ((0.10 * span, 0.20 * span), (0.60 * span, 0.15 * span)):
        at = start
        while at < start + length:
            changes.append(Change(at, rng.randint(1, RECORDS)))
            at += rng.uniform(2, 10)
    for _ in range(max(1, int(minutes / 3))):
        changes.append(Change(rng.uniform(0, span), rng.randint(1, RECORDS)))
    return sorted(changes, key=lambda c: c.at)


@dataclass
class Outcome:
    requests: int = 0
    not_modified: int = 0
    delays: list[float] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0


def judge(changes: list[tuple[float, int, int]], handled: list[tuple[int, int, float]]) -> Outcome:
    """``changes``: (when, record id, version made); ``handled``: (record id, version, when)."""
    out = Outcome()
    seen: dict[tuple[int, int], int] = defaultdict(int)
    by_record: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for rid, version, when in handled:
        seen[(rid, version)] += 1
        by_record[rid].append((version, when))
    out.duplicated = sum(n - 1 for n in seen.values() if n > 1)
    for when, rid, version in changes:
        later = [t for v, t in by_record[rid] if v >= version and t >= when]
        if later:
            out.delays.append(min(later) - when)
        else:
            out.lost += 1
    return out


class ReplayClock(FakeClock):
    """A fake clock whose sleeps apply the changes due meanwhile, then stop the run at its end."""

    def __init__(self, tb: Testbed, changes: list[Change], span: float, made: list[tuple[float, int, int]]) -> None:
        super().__init__(start=0.0, wall=WALL0)
        self.tb, self.pending, self.span, self.made = tb, list(changes), span, made
        self.next_poll = span

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            target = self.monotonic() + seconds
            while self.pending and self.pending[0].at <= min(target, self.span):
                c = self.pending.pop(0)
                self.advance(max(0.0, c.at - self.monotonic()))
                [record] = self.tb.touch("customers", [c.rid], updated_at=self.time())
                self.made.append((c.at, c.rid, record["version"]))
            if target > self.span:
                self.next_poll = target
                raise asyncio.CancelledError  # the simulated minutes are over
            self.advance(max(0.0, target - self.monotonic()))
        await asyncio.sleep(0)


def _config() -> TestbedConfig:
    return TestbedConfig(records=RECORDS, kinds=("customers",), epoch="2020-01-01T00:00:00Z")


async def run_poll(changes: list[Change], span: float, adaptive: bool, tmp: Path) -> Outcome:
    made: list[tuple[float, int, int]] = []
    handled: list[tuple[int, int, float]] = []
    async with Testbed(_config()) as tb:
        clock = ReplayClock(tb, changes, span, made)

        async def apply(record: interlock.SyncRecord) -> None:
            handled.append((int(record.data["id"]), int(record.data["version"]), clock.monotonic()))

        db = tmp / f"poll-{adaptive}-{time.monotonic_ns()}.db"
        async with interlock.Client(tb.url, clock=clock) as client:
            options: dict[str, Any] = {"every": 60}
            if adaptive:
                options.update(adaptive=True, min_every=5, max_every=900)
            sync = interlock.Sync(
                "crm", source=interlock.SyncSource(client, "/customers", page_size=100),
                destination=apply, store=f"sqlite:///{db}", clock=clock, **options,
            )
            async with sync:
                await sync.run_once()  # the initial sync, before the clock starts: not counted
                handled.clear()
                tb.reset_counters()
                with contextlib.suppress(asyncio.CancelledError):
                    await sync.run_forever()
                counts = dict(tb.counters.by_route.get("GET /customers", {}))
                # The poll that was due next, at its time, so a change late in the window is
                # counted with its real delay instead of as lost (its request is not counted).
                clock.advance(max(0.0, clock.next_poll - clock.monotonic()))
                await sync.run_once()
    out = judge(made, handled)
    out.requests = sum(counts.values())
    out.not_modified = counts.get("304", 0)
    return out


async def run_stream(changes: list[Change], span: float, speedup: float, tmp: Path) -> Outcome:
    made: list[tuple[float, int, int]] = []
    handled: list[tuple[int, int, float]] = []
    db = tmp / f"stream-{time.monotonic_ns()}.db"
    async with Testbed(_config()) as tb:
        inbox = interlock.Inbox(store=f"sqlite:///{db}")
        loop = asyncio.get_running_loop()
        start = 0.0

        async def on_event(event: interlock.Event) -> None:
            doc = event.json()
            handled.append((doc["data"]["id"], doc["data"]["version"], loop.time() - start))

        async with interlock.Client(tb.url) as client:
            policy = interlock.StreamPolicy(backoff=interlock.Backoff(base=0.2, multiplier=2.0, cap=5.0))
            sub = inbox.subscribe("crm", interlock.EventStream.sse(client, "/events", policy=policy))
            inbox.add_handler("crm", "*", on_event)
            inbox.start_workers(concurrency=4)
            while tb.streams.open_streams == 0:
                await asyncio.sleep(0.01)
            start = loop.time()
            drops = [span / 3, 2 * span / 3]
            for c in changes:
                while drops and drops[0] <= c.at:
                    await asyncio.sleep(max(0.0, start + drops.pop(0) / speedup - loop.time()))
                    tb.streams.drop()
                await asyncio.sleep(max(0.0, start + c.at / speedup - loop.time()))
                [record] = tb.touch("customers", [c.rid])
                made.append((loop.time() - start, c.rid, record["version"]))
            deadline = loop.time() + 30
            while len(handled) < len(made) and loop.time() < deadline:
                await asyncio.sleep(0.01)
            connections = tb.streams.connections
            await inbox.aclose()
            assert sub.position is not None
    out = judge(made, handled)
    out.requests = connections
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes (default 10)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speedup", type=float, default=50.0, help="how much faster than real time the stream run goes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--quiet-minutes", type=float, default=0.0,
        help="quiet simulated minutes (no change) after the schedule, for the polls; the stream's "
        "requests do not grow while it is quiet (one open connection), so it is not run longer",
    )
    args = parser.parse_args()
    load = Load()
    span = args.minutes * 60
    changes = schedule(args.minutes, args.seed)
    quiet = f", then {args.quiet_minutes:g} quiet minutes (polls)" if args.quiet_minutes else ""
    print(f"{len(changes)} changes over {args.minutes:g} simulated minutes{quiet}; {args.rounds} rounds, rotated")
    names = ["fixed-60s", "adaptive", "sse-stream"]
    results: dict[str, list[Outcome]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for order in rotations(names, args.rounds):
            for name in order:
                if name == "sse-stream":
                    outcome = await run_stream(changes, span, args.speedup, tmp)
                else:
                    outcome = await run_poll(changes, span + args.quiet_minutes * 60, name == "adaptive", tmp)
                results[name].append(outcome)
                print(f"  {name}: {outcome.requests} requests, lost {outcome.lost}, duplicated {outcome.duplicated}", flush=True)
    rows = []
    summary: dict[str, Any] = {}
    for name in names:
        runs = results[name]
        p50 = [percentile(r.delays, 50) for r in runs]
        p99 = [percentile(r.delays, 99) for r in runs]
        rows.append([
            name,
            spread([r.requests for r in runs], "{:.0f}"),
            spread([r.not_modified for r in runs], "{:.0f}") if name != "sse-stream" else "-",
            spread(p50, "{:.2f}", " s"),
            spread(p99, "{:.2f}", " s"),
            spread([r.lost for r in runs], "{:.0f}"),
            spread([r.duplicated for r in runs], "{:.0f}"),
        ])
        summary[name] = {
            "requests": med([r.requests for r in runs]),
            "not_modified": med([r.not_modified for r in runs]),
            "delay_p50_s": med(p50),
            "delay_p99_s": med(p99),
            "lost": max(r.lost for r in runs),
            "duplicated": max(r.duplicated for r in runs),
        }
    print(table(["contender", "requests", "304s", "delay p50", "delay p99", "lost", "duplicated"], rows))
    base = summary["fixed-60s"]
    for name in ("adaptive", "sse-stream"):
        s = summary[name]
        print(
            f"{name} vs fixed-60s: requests {s['requests']:.0f}/{base['requests']:.0f} = "
            f"{s['requests'] / base['requests']:.2f}x; median delay {s['delay_p50_s']:.2f}s vs "
            f"{base['delay_p50_s']:.2f}s = {base['delay_p50_s'] / max(s['delay_p50_s'], 1e-9):.1f}x sooner"
        )
    stream = summary["sse-stream"]
    print(f"sse-stream lost {stream['lost']} and duplicated {stream['duplicated']} across 2 forced disconnects (must be 0 and 0)")
    print("(delays: simulated seconds for the polls, real seconds for the stream, whose delay is network time)")
    load.end()
    emit("changes", {
        "changes": len(changes), "minutes": args.minutes, "quiet_minutes": args.quiet_minutes, **summary,
        "load": load.as_dict(),
    })


if __name__ == "__main__":
    asyncio.run(main())
