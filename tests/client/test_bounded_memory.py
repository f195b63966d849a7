"""Memory a Client holds stays bounded however long it runs: the retry budget counts in a fixed
number of slots, and route names (metric labels) are capped per upstream."""

from __future__ import annotations

import logging
import tracemalloc
import uuid

import pytest

import interlock
from interlock import Client, Limits, Retry, RetryBudget
from interlock._metrics import render, upstream_stats
from interlock.client._routes import OTHER_ROUTE, RouteNamer
from interlock.core.retry import BudgetLedger
from interlock.testbed import Testbed, TestbedConfig


def test_the_retry_budget_holds_the_same_memory_after_200k_calls() -> None:
    ledger = BudgetLedger(RetryBudget(ratio=0.5, min_per_second=0, window=10.0))
    for i in range(1000):  # warm: every slot touched once
        ledger.record_call(i * 0.01)
    tracemalloc.start()
    try:
        for i in range(200_000):  # 200 s at 1000 calls/s, a healthy upstream: no retry ever
            ledger.record_call(10.0 + i * 0.001)
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert grown < 16 * 1024  # one timestamp per call would be ~6 MB here
    # ... and still a sliding window: the last 10 s of calls (give or take one slot) fund retries.
    assert 10_000 <= ledger.calls <= 10_500
    assert ledger.try_spend(210.0)
    assert ledger.retries == 1


def test_the_budget_window_slides_by_slots_and_forgets_old_calls() -> None:
    ledger = BudgetLedger(RetryBudget(ratio=1.0, min_per_second=0, window=10.0))
    for _ in range(10):
        ledger.record_call(0.0)
    assert ledger.try_spend(9.0)
    assert ledger.calls == 10
    ledger.record_call(10.0)  # exactly a window later: the calls of t=0 still count
    assert ledger.calls == 11
    ledger.record_call(10.6)  # a slot more: the slot of t=0 is left behind, its calls no longer count
    assert ledger.calls == 2
    assert ledger.retries == 1  # the retry at t=9 still does
    assert ledger.try_spend(10.6)  # 2 calls fund 2 retries, one spent
    assert not ledger.try_spend(10.6)
    ledger.record_call(100.0)  # far past the window: everything forgotten at once
    assert (ledger.calls, ledger.retries) == (1, 0)


async def test_slug_routes_collapse_into_one_label_past_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    name = f"slugs-{uuid.uuid4().hex[:8]}"
    async with Testbed(TestbedConfig()) as tb, Client(tb.url, name=name, retry=Retry(attempts=1)) as api:
        with caplog.at_level(logging.WARNING, logger="interlock.client"):
            for i in range(300):  # usernames: not ids, so each one is a route of its own
                await api.get(f"/users/someone-{i}")
            declared = await api.get("/customers/7")
    routes = upstream_stats(name).routes
    assert len(routes) == 201  # the default bound, 200, then "(other)" for all the rest
    assert routes[OTHER_ROUTE].count == 101
    assert declared.route == OTHER_ROUTE  # a new route past the bound, even an id-shaped one
    assert sum(r.count for r in routes.values()) == 301
    labels = {
        line.split('route="', 1)[1].split('"', 1)[0]
        for line in render().decode().splitlines()
        if line.startswith("interlock_client_requests_total") and f'upstream="{name}"' in line
    }
    assert len(labels) == 201 and OTHER_ROUTE in labels
    warnings = [r for r in caplog.records if "distinct routes" in r.getMessage()]
    assert len(warnings) == 1
    assert "Limits(max_routes=" in warnings[0].getMessage()


async def test_declared_templates_and_a_raised_bound_keep_their_routes() -> None:
    name = f"slugs-{uuid.uuid4().hex[:8]}"
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(
            tb.url, name=name, retry=Retry(attempts=1), routes=["/users/{name}"], limits=Limits(max_routes=3)
        ) as api,
    ):
        for i in range(20):
            assert (await api.get(f"/users/u{i}")).route == "/users/{name}"
        assert (await api.get("/a/b")).route == "/a/b"
        assert (await api.get("/c")).route == "/c"
        assert (await api.get("/d")).route == "/d"
        assert (await api.get("/e")).route == OTHER_ROUTE
        assert (await api.get("/x", route="/given/by/hand")).route == OTHER_ROUTE  # given names count too
    assert set(upstream_stats(name).routes) == {"/users/{name}", "/a/b", "/c", "/d", OTHER_ROUTE}


def test_a_route_name_too_long_for_a_label_is_other() -> None:
    namer = RouteNamer(max_routes=10)
    assert namer("/search/" + "q" * 300) == OTHER_ROUTE
    assert namer("/search/short") == "/search/short"
    assert namer.routes == 1


def test_limits_are_validated() -> None:
    with pytest.raises(interlock.errors.ConfigError, match="Limits.max_routes"):
        Limits(max_routes=0)
    with pytest.raises(interlock.errors.ConfigError, match="Limits.max_response_bytes"):
        Limits(max_response_bytes=-1)
    with pytest.raises(interlock.errors.ConfigError, match="Limits.routes"):
        Limits(routes={"no-slash": 10})
    limits = Limits(max_response_bytes=100, routes={"/exports/*": None, "/reports/{id}": 1000})
    assert limits.response_bytes_for("/exports/2024.csv") is None
    assert limits.response_bytes_for("/reports/7") == 1000
    assert limits.response_bytes_for("/other") == 100
