"""Token bucket reservations and adaptive pacing, driven by hand-fed times."""

from __future__ import annotations

import pytest

from interlock.core.bucket import DEFAULT_429_PAUSE, Pacer, TokenBucket
from interlock.core.quota_headers import Quota


def test_burst_then_paced_reservations_in_order() -> None:
    b = TokenBucket(rate=10, capacity=3, now=0.0)
    waits = [b.reserve(0.0).wait for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])
    assert b.seq == 5


def test_refill_is_capped_at_capacity() -> None:
    b = TokenBucket(rate=10, capacity=2, now=0.0)
    b.reserve(0.0)
    b.reserve(0.0)
    assert b.available(100.0) == 2
    assert [b.reserve(100.0).wait for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_max_wait_refuses_without_reserving() -> None:
    b = TokenBucket(rate=1, capacity=1, now=0.0)
    assert b.reserve(0.0).granted
    refused = b.reserve(0.0, max_wait=0.5)
    assert not refused.granted and refused.wait == pytest.approx(1.0)
    assert b.reserve(0.0, max_wait=1.0).wait == pytest.approx(1.0)  # the refusal cost nothing


def test_observe_only_lowers_and_counts_later_reservations() -> None:
    b = TokenBucket(rate=1, capacity=10, now=0.0)
    first = b.reserve(0.0)  # tokens 9
    b.reserve(0.0)  # tokens 8, one reservation after `first`
    assert not b.observe(remaining=20, seq=first.seq, now=0.0)
    assert b.tokens == 8
    assert b.observe(remaining=3, seq=first.seq, now=0.0)  # upstream saw others: 3 - 1 later
    assert b.tokens == 2


def test_observe_adopt_sets_the_balance_both_ways() -> None:
    b = TokenBucket(rate=1, capacity=10, now=0.0)
    b.tokens = 0
    assert b.observe(remaining=7, seq=b.seq, now=0.0, adopt=True)
    assert b.tokens == 7
    b.observe(remaining=50, seq=b.seq, now=0.0, adopt=True)
    assert b.tokens == 10


def test_pause_blocks_until_then_lets_one_call_ask_then_paces() -> None:
    b = TokenBucket(rate=10, capacity=5, now=0.0)
    b.pause(until=2.0, now=0.0)
    assert b.reserve(0.5).wait == pytest.approx(1.5)  # the next in line goes at the pause's end
    assert b.paused_until == 2.0
    assert b.reserve(0.5).wait == pytest.approx(1.5 + 0.1)  # the others at the bucket's pace
    assert b.reserve(2.0).wait == pytest.approx(0.2)


def test_set_limits_keeps_balance_within_capacity() -> None:
    b = TokenBucket(rate=1, capacity=10, now=0.0)
    b.set_limits(rate=5, capacity=4, now=0.0)
    assert (b.rate, b.capacity, b.tokens) == (5, 4, 4)
    with pytest.raises(ValueError):
        b.set_limits(rate=0, capacity=4, now=0.0)


def test_pacer_keeps_headroom_and_reserve() -> None:
    p = Pacer(50)
    assert p.rate == pytest.approx(49.5)
    assert p.capacity == 45
    assert Pacer(50, burst=10).capacity == 9
    assert Pacer(0.5).capacity == 1


def test_pacer_learns_ietf_quota_and_adopts_remaining_once() -> None:
    p = Pacer(10)
    advice = p.on_response(200, Quota(limit=50, window=1, remaining=40, reset_after=1))
    assert advice.limits_changed and advice.adopt
    assert (advice.rate, advice.capacity) == (pytest.approx(49.5), 45)
    assert advice.remaining == 35  # 40 announced, 5 held in reserve
    again = p.on_response(200, Quota(limit=50, window=1, remaining=30, reset_after=1))
    assert not again.limits_changed and not again.adopt and again.remaining == 30


def test_pacer_x_ratelimit_assumes_the_configured_window() -> None:
    p = Pacer(None, assumed_window=60)
    assert p.probing and (p.rate, p.capacity) == (1.0, 1.0)
    p.on_response(200, Quota(limit=600, remaining=599, reset_after=1))
    assert not p.probing and p.rate == pytest.approx(9.9)


def test_pacer_429_pauses_for_retry_after_then_reset_then_default() -> None:
    p = Pacer(10)
    assert p.on_response(429, Quota(retry_after=3)).pause == 3
    assert p.on_response(429, Quota(remaining=0, reset_after=2)).pause == 2
    assert p.on_response(429, None).pause == DEFAULT_429_PAUSE


def test_pacer_pauses_when_the_upstream_says_empty() -> None:
    p = Pacer(10)
    assert p.on_response(200, Quota(limit=10, remaining=0, reset_after=0.7)).pause == 0.7
    assert p.on_response(200, Quota(limit=10, remaining=1, reset_after=0.7)).pause is None


def test_pacer_low_quota_flag() -> None:
    p = Pacer(None)
    assert p.on_response(200, Quota(limit=100, window=1, remaining=19)).low
    assert not p.on_response(200, Quota(limit=100, window=1, remaining=20)).low


def test_non_adaptive_pacer_ignores_headers_but_not_429() -> None:
    p = Pacer(10, adaptive=False)
    advice = p.on_response(200, Quota(limit=1000, window=1, remaining=0, reset_after=5))
    assert not advice.limits_changed and advice.remaining is None and advice.pause is None
    assert p.on_response(429, Quota(retry_after=4)).pause == 4
    with pytest.raises(ValueError):
        Pacer(None, adaptive=False)


# -- found by the mutation run (issue #19): rates other than 1 per second, clocks not at 0 ------


def test_refill_arithmetic_at_a_rate_of_two_and_a_half_from_a_clock_at_1000() -> None:
    bucket = TokenBucket(2.5, 10, 1000.0, tokens=0.0)
    assert bucket.available(1000.0) == 0.0
    assert bucket.available(1002.0) == 5.0  # 2 s x 2.5 per s
    assert bucket.available(1010.0) == 10.0  # capped
    grant = bucket.reserve(1001.0)  # 2.5 tokens by then: one taken at once
    assert (grant.wait, grant.seq, grant.granted) == (0.0, 1, True)
    assert bucket.tokens == 1.5 and bucket.updated == 1001.0
    queued = [bucket.reserve(1001.0) for _ in range(3)]
    assert [g.wait for g in queued] == [0.0, pytest.approx(0.2), pytest.approx(0.6)]  # 0.5, -0.5, -1.5 tokens


def test_a_new_bucket_keeps_the_tokens_it_is_given_up_to_its_capacity() -> None:
    assert TokenBucket(1.0, 5, 0.0, tokens=2.0).tokens == 2.0
    assert TokenBucket(1.0, 5, 0.0, tokens=9.0).tokens == 5.0
    assert TokenBucket(1.0, 5, 0.0).tokens == 5.0


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 5), (-1.0, 5), (1.0, 0.5)])
def test_impossible_limits_are_refused(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError, match=r"^TokenBucket needs rate > 0 and capacity >= 1, got "):
        TokenBucket(rate, capacity, 0.0)
    bucket = TokenBucket(1.0, 5, 0.0)
    with pytest.raises(ValueError, match=r"^TokenBucket needs rate > 0 and capacity >= 1, got "):
        bucket.set_limits(rate, capacity, 1.0)
    bucket.set_limits(0.5, 1, 1.0)  # the smallest accepted
    assert (bucket.rate, bucket.capacity) == (0.5, 1)


def test_max_wait_equal_to_the_wait_is_granted_and_a_refusal_keeps_the_sequence() -> None:
    bucket = TokenBucket(1.0, 1, 0.0)
    bucket.reserve(0.0)
    assert bucket.reserve(0.0, max_wait=1.0).granted  # waits exactly 1.0: allowed
    refused = bucket.reserve(0.0, max_wait=1.0)  # would wait 2.0
    assert (refused.granted, refused.seq, refused.wait) == (False, 2, 2.0)


def test_observe_equal_to_the_balance_changes_nothing() -> None:
    bucket = TokenBucket(1.0, 10, 0.0, tokens=4.0)
    assert bucket.observe(4, seq=0, now=0.0) is False
    assert bucket.observe(3, seq=0, now=0.0) is True and bucket.tokens == 3


def test_refund_gives_a_token_back_up_to_the_capacity() -> None:
    bucket = TokenBucket(1.0, 2, 0.0)
    bucket.reserve(0.0)
    bucket.reserve(0.0)
    bucket.reserve(0.0)  # queued: -1
    bucket.refund()
    assert bucket.tokens == 0.0
    bucket.refund(cost=5.0)
    assert bucket.tokens == 2  # never above capacity


def test_a_429_without_a_quota_teaches_the_rate_accepted_before_then_slower() -> None:
    # No quota headers: unpaced until the first 429, then the rate the upstream accepted.
    pacer = Pacer(None)
    assert not pacer.paces
    learned = pacer.on_throttled(accepted=40, over=1.0)
    assert learned is not None and learned.limits_changed
    assert pacer.paces and pacer.rate == pytest.approx(40 * 0.99) and pacer.capacity == 40
    slower = pacer.on_throttled(accepted=0, over=1.0)  # a further 429: slower again
    assert slower is not None and pacer.rate < 40 * 0.99
    assert Pacer(10.0).on_throttled(accepted=40, over=1.0) is None  # a configured rate stands
