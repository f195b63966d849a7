"""Stream supervision decisions, pure: reconnect delays, stalls, outages."""

from __future__ import annotations

import random

import pytest

from interlock.core.backoff import Backoff
from interlock.core.reconnect import StreamPolicy, StreamSupervisor
from interlock.errors import ConfigError

POLICY = StreamPolicy(backoff=Backoff(base=1.0, multiplier=2.0, cap=8.0, jitter="none"), stall_timeout=30, reconcile_after=60)


def test_backoff_grows_over_failures_and_resets_after_delivery() -> None:
    sup = StreamSupervisor(POLICY, now=0.0)
    delays = []
    for _ in range(5):
        sup.dropped(0.0)  # refused: never opened
        delays.append(sup.delay())
    assert delays == [1, 2, 4, 8, 8]
    sup.opened(10.0, first=True)
    sup.dropped(11.0)  # opened but silent: still a failure
    assert sup.failures == 6
    sup.opened(20.0, first=False)
    sup.activity(21.0)
    sup.dropped(22.0)  # delivered: the count starts again
    assert sup.failures == 0 and sup.delay() == 1.0
    assert sup.reconnects == 1


def test_retry_hint_is_a_floor_and_is_capped() -> None:
    sup = StreamSupervisor(POLICY, now=0.0)
    sup.retry_hint(5000)
    assert sup.delay() == 5.0
    sup.retry_hint(10**12)
    assert sup.hint == POLICY.max_retry_hint
    jittered = StreamSupervisor(StreamPolicy(), now=0.0, rng=random.Random(1))
    jittered.retry_hint(2000)
    assert all(jittered.delay() >= 2.0 for _ in range(20))


def test_stall_and_outage_reconcile_once() -> None:
    sup = StreamSupervisor(POLICY, now=0.0)
    sup.opened(0.0, first=True)
    sup.activity(5.0)
    assert sup.stall_deadline() == 35.0
    assert not sup.stalled(34.9) and sup.stalled(35.0)
    assert sup.down_for(20.0) == 0.0
    assert sup.down_for(40.0) == 35.0  # stalled: down since its last byte
    sup.dropped(40.0)
    assert not sup.should_reconcile(64.9)
    assert sup.should_reconcile(65.0)
    assert not sup.should_reconcile(100.0)  # once per outage
    assert sup.lag(100.0) == 95.0
    sup.opened(101.0, first=False)
    sup.activity(101.0)
    sup.dropped(102.0)
    assert sup.should_reconcile(162.0)  # a new outage


def test_policy_bounds() -> None:
    with pytest.raises(ConfigError):
        StreamPolicy(stall_timeout=0)
    with pytest.raises(ConfigError):
        StreamPolicy(reconcile_after=-1)
    assert StreamPolicy(reconcile_after=None).reconcile_after is None
