"""``interlock demo`` is honest: every contender faces the same fault script on a fresh testbed,
the Interlock configuration is printed, and every figure reconciles."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.cli import demo

INTERLOCK = str(Path(sys.executable).with_name("interlock"))


def _args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "reads": 60, "writes": 10, "callers": 5, "error_rate": 0.2, "outage": 0.0, "outage_at": 0.0,
        "rate_limit": 1000, "seed": 3,
    }  # fmt: skip
    values.update(overrides)
    return argparse.Namespace(**values)


async def test_each_contender_meets_the_same_script_on_a_fresh_testbed() -> None:
    """Played twice in a row, the same sequential contender meets exactly the same faults: each
    run gets a testbed of its own, its seeded fault draws starting over (on one shared testbed
    the second run would meet the draws after the first's, and any outage left over)."""
    args = _args()
    calls = demo.workload(args.seed, args.reads, args.writes, stampede=args.callers)
    config = demo.fault_script(args)

    async def sequential(url: str, result: demo.Result) -> None:
        await demo.naive(url, calls, 1, result)

    first = await demo.contend(config, "first", sequential)
    second = await demo.contend(config, "second", sequential)
    assert first.failed  # 20 % 503s: there are faults to meet
    assert (first.succeeded, dict(first.failed), first.requests) == (
        second.succeeded,
        dict(second.failed),
        second.requests,
    )


def _numbers(pattern: str, text: str) -> list[int]:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the output"
    return [int(g) for g in found.groups()]


@pytest.mark.slow
def test_the_demo_prints_its_configuration_and_every_figure_reconciles(tmp_path: Path) -> None:
    done = subprocess.run(
        [INTERLOCK, "demo", "--reads", "120", "--writes", "10", "--callers", "10", "--outage", "1",
         "--outage-at", "0.3", "--rate-limit", "20"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
    out = done.stdout
    # The configuration that runs, as code, and what the profiles and defaults amount to.
    assert "interlock.Client(" in out and "profile=profile" in out and "interlock.Batch(" in out
    assert "profile='interactive':" in out and "profile='background':" in out and "defaults: CircuitBreaker" in out
    table = {line.split("  ")[0]: line.split()[-4:] for line in out.splitlines() if "  " in line}
    requests_row = [int(n) for n in table["requests the upstream received"]]
    retries_row = [int(n) for n in table["retries"]]
    throttled = [int(n) for n in table["429s received"]]
    assert "do not reconcile" not in out
    flat = " ".join(out.split())
    for column, profile in ((2, "interactive"), (3, "background")):
        ops, cache, shared, batched, lists, own, refused, failures = _numbers(
            rf"{profile}: (\d+) operations = (\d+) answered from the cache \+ (\d+) shared an identical read"
            r" in flight \+ (\d+) answered by (\d+) list calls \+ (\d+) sent as their own call \+ (\d+)"
            r" failed before sending anything \(of its (\d+) failures\)",
            flat,
        )
        assert ops == 130 == cache + shared + batched + own + refused
        assert 0 <= refused <= failures
        requests, own_again, lists_again, retries = _numbers(
            rf"{profile}: .*?The (\d+) requests the upstream received = (\d+) own calls \+ (\d+) list calls"
            r" \+ (\d+) retries",
            flat,
        )
        assert requests == own + lists + retries and (own_again, lists_again) == (own, lists)
        assert (requests, retries) == (requests_row[column], retries_row[column])
        # Each work-avoiding policy earned its place: the cache, coalescing and batching each
        # answered operations the upstream never saw as calls of their own.
        assert cache > 0 and shared > 0 and batched > lists > 0
    assert requests_row[0] == requests_row[1] == 130  # plain aiohttp: one request per operation
    assert throttled[1] > 0 and max(throttled[2:]) < throttled[1]  # the quota: paced, not hammered


def test_demo_serve_keeps_the_service_and_dashboard_up_with_traffic(tmp_path: Path) -> None:
    """``--serve``: after the tables, the URL and a token are printed; the dashboard's API (after
    logging in with that token) shows the demo's traffic reaching the upstream through the
    proxy; Ctrl-C (SIGINT) stops it."""
    import json
    import signal
    import time
    import urllib.parse
    import urllib.request

    proc = subprocess.Popen(
        [INTERLOCK, "demo", "--serve", "--reads", "40", "--writes", "4", "--outage", "0", "--callers", "4"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        line = ""
        while "dashboard:" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "the demo ended"
        found = re.search(r"dashboard:\s+(http://127\.0\.0\.1:\d+)/ui\s+\(admin token: (\S+)\)", line)
        assert found, line
        url, token = found.groups()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(), urllib.request.ProxyHandler({}))
        form = urllib.parse.urlencode({"token": token, "next": "/ui"}).encode()
        opener.open(urllib.request.Request(f"{url}/ui/login", data=form), timeout=10).read()
        calls = 0.0
        while calls <= 0 and time.monotonic() < deadline:
            time.sleep(1)
            with opener.open(f"{url}/ui/api/overview", timeout=10) as response:
                overview = json.loads(response.read())
            (crm,) = overview["upstreams"]
            calls = crm["calls"]
        assert calls > 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode in (0, 130)
