"""Named presets for the two kinds of caller (``Client(profile=...)``), per-call profiles, and
the warning a client that is never closed gives."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import interlock
from interlock import CircuitBreaker, Client, Retry, Timeout
from interlock.client import PROFILES, Profile
from interlock.errors import CircuitOpen, ConfigError, RetriesExhausted
from interlock.testbed import Testbed, TestbedConfig

# The breaker opens after two failures and stays open briefly, so waiting it out is quick.
QUICK_BREAKER = CircuitBreaker(failure_ratio=0.5, min_calls=2, window=10.0, open_for=0.2)


def test_profiles_fill_in_what_is_not_given_explicitly() -> None:
    background = Client("http://api.example", profile="background")
    assert background.profile is PROFILES["background"]
    assert background.retry is PROFILES["background"].retry
    assert background.retry is not None and background.retry.circuit_open
    assert background.timeout.total == 300.0

    interactive = Client("http://api.example", profile="interactive")
    assert interactive.retry is not None and not interactive.retry.circuit_open
    assert interactive.timeout.total == PROFILES["interactive"].timeout.total < Timeout().total  # type: ignore[operator]

    mine = Retry(attempts=2)
    explicit = Client("http://api.example", profile="background", retry=mine, timeout=Timeout(total=5.0))
    assert explicit.retry is mine and explicit.timeout.total == 5.0

    plain = Client("http://api.example")
    assert plain.profile is None and plain.retry == Retry() and plain.timeout == Timeout()
    assert "profile=background" in repr(background)


def test_an_unknown_profile_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        Client("http://api.example", profile="fast")
    assert caught.value.field == "profile" and "'interactive', 'background'" in str(caught.value)
    with pytest.raises(ConfigError):
        Profile("x", retry="no", timeout=Timeout(), summary="")  # type: ignore[arg-type]
    assert interlock.Profile is Profile


async def _call_during_outage(client: Client, tb: Testbed, **options: Any) -> interlock.Response:
    # The outage outlasts several quick retries, opens the breaker, and then ends.
    tb.start_outage(0.6)
    return await client.get("/customers/1", **options)


async def test_interactive_fails_fast_where_background_waits_the_outage_out() -> None:
    async with Testbed(TestbedConfig(records=10)) as tb:
        async with Client(tb.url, profile="interactive", breaker=QUICK_BREAKER) as interactive:
            with pytest.raises((CircuitOpen, RetriesExhausted)):
                await _call_during_outage(interactive, tb)
        while tb.outage_active:
            await asyncio.sleep(0.05)
        async with Client(tb.url, profile="background", breaker=QUICK_BREAKER) as background:
            response = await _call_during_outage(background, tb)
        assert response.status == 200
        assert response.attempts > 1  # it failed during the outage, and retried past it


async def test_a_call_may_name_the_background_profile_unless_retry_was_explicit() -> None:
    async with Testbed(TestbedConfig(records=10)) as tb:
        async with Client(tb.url, breaker=QUICK_BREAKER) as plain:
            response = await _call_during_outage(plain, tb, profile="background")
            assert response.status == 200 and response.attempts > 1
        while tb.outage_active:
            await asyncio.sleep(0.05)
        # Retry given explicitly: the call's profile does not replace it (no retries here).
        async with Client(tb.url, breaker=QUICK_BREAKER, retry=Retry(attempts=1)) as explicit:
            with pytest.raises(RetriesExhausted) as caught:
                await _call_during_outage(explicit, tb, profile="background")
            assert caught.value.status == 503 and caught.value.attempts == 1
        with pytest.raises(ConfigError):
            explicit.build_request("GET", "/x", profile="nightly")


async def test_a_client_never_closed_warns_naming_the_fix() -> None:
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with Testbed(TestbedConfig(records=5)) as tb:
            client = Client(tb.url, name="leaky")
            assert (await client.get("/customers/1")).status == 200
            session = client._transport._session  # type: ignore[attr-defined]
            del client
            with pytest.warns(ResourceWarning, match=r"'leaky' was never closed.*async with interlock\.Client"):
                gc.collect()
            await session.close()  # the test's own cleanup of what the client leaked
    finally:
        loop.set_exception_handler(previous)
    ours = [c for c in reported if "interlock.Client" in c.get("message", "")]
    assert len(ours) <= 1  # the stderr hint is given once per process
    # A client closed properly, or never used, says nothing.
    async with Testbed(TestbedConfig(records=5)) as tb:
        async with Client(tb.url) as closed:
            await closed.get("/customers/1")
    unused = Client("http://api.example")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del closed, unused
        gc.collect()
