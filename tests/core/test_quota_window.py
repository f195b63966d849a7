"""The window clock, driven with hand-fed times: where a fixed window ends, from epoch resets on a
skewed clock and delays rounded either way, and a simulated caller that follows its decisions
against the testbed's own quota arithmetic: no call ever over the quota, and the quota used."""

from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import formatdate

import pytest

from interlock.core.quota_headers import Quota, parse_quota
from interlock.core.quota_window import Answer, Span, Verdict, WindowClock
from interlock.testbed import RateLimitConfig
from interlock.testbed._ratelimit import RateLimiter

WALL = 1_767_225_600.0  # the client's wall clock at monotonic 0 (2026-01-01, on a whole second)


def epoch_answer(sent: float, received: float, *, reset: float, remaining: float, date: float) -> Answer:
    quota = Quota(limit=20, remaining=remaining, reset_after=0.0, reset_epoch=reset, server_date=date)
    return Answer(sent, received, WALL, quota)


def delay_answer(sent: float, received: float, *, delay: float, remaining: float) -> Answer:
    return Answer(sent, received, WALL, Quota(limit=20, remaining=remaining, reset_after=delay))


def test_an_epoch_reset_is_placed_on_our_clock_through_the_date_header() -> None:
    # The server runs 2.5 s ahead; its window ends at server second 10 (our 7.5). Its Date
    # (whole seconds) bounds the skew; the end is within a second of rounding either way.
    clock = WindowClock()
    skew = 2.5
    for sent in (0.30, 0.55, 0.80):
        server = WALL + sent + 0.001 + skew
        clock.on_answer(
            epoch_answer(sent, sent + 0.002, reset=WALL + 10, remaining=5, date=math.floor(server))
        )
    assert clock.end is not None
    assert clock.end.lo <= 7.5 <= clock.end.hi
    assert clock.end.hi - 7.5 <= 1.0 + 0.3  # a second of rounding, and what the skew bounds left
    naive = 10.0  # reading the epoch on our own clock would say 2.5 s later
    assert clock.end.hi < naive


def test_epoch_resets_say_which_window_an_answer_was_counted_in() -> None:
    clock = WindowClock()
    date = WALL + 1
    assert clock.on_answer(epoch_answer(1.0, 1.01, reset=WALL + 2, remaining=5, date=date)) is Verdict.NEW
    assert clock.on_answer(epoch_answer(1.1, 1.11, reset=WALL + 2, remaining=4, date=date)) is Verdict.SAME
    assert (
        clock.on_answer(epoch_answer(2.0, 2.01, reset=WALL + 3, remaining=19, date=date + 1)) is Verdict.NEW
    )
    assert clock.window == 1.0 and clock.window_source == "epoch"
    late = epoch_answer(1.2, 2.02, reset=WALL + 2, remaining=3, date=date)  # an old window's answer
    assert clock.on_answer(late) is Verdict.STALE


def test_a_delay_of_zero_says_resets_are_truncated() -> None:
    clock = WindowClock()
    clock.on_answer(delay_answer(0.0, 0.01, delay=4, remaining=9))
    assert clock.end == Span(3.0, 5.01)  # rounded either way: a second each side
    assert clock.window == 4.0
    clock.on_answer(delay_answer(3.5, 3.51, delay=0, remaining=1))  # truncated: 0.5 s really left
    assert clock.window == 5.0  # the longest delay, one short of the window when truncated
    assert clock.end is not None and clock.end.lo >= 3.5


@dataclass
class Shape:
    dialect: str
    window: float
    rounding: str = "up"
    skew: float = 0.0
    limit: int = 20


SHAPES = [
    Shape("x-ratelimit-epoch", 1.0),
    Shape("x-ratelimit-epoch", 1.0, skew=2.0),
    Shape("x-ratelimit-epoch", 1.0, skew=-2.0),
    Shape("x-ratelimit-epoch", 1.0, rounding="down", skew=1.3),
    Shape("x-ratelimit-epoch", 5.0, skew=-1.7),
    Shape("x-ratelimit-delta", 1.0),
    Shape("x-ratelimit-delta", 1.0, rounding="down"),
    Shape("x-ratelimit-delta", 5.0, rounding="down"),
    Shape("ietf", 1.0),
    Shape("ietf", 1.0, rounding="down", skew=0.4),
    Shape("ietf", 60.0, limit=300),
]


def simulate(shape: Shape, seconds: float, rtt: float = 0.004) -> tuple[int, int, int, WindowClock]:
    """One caller with always more work than quota, following the clock's decisions, against the
    testbed's fixed-window arithmetic: (accepted, 429s, the quota of every window touched, clock)."""
    config = RateLimitConfig(
        algorithm="fixed_window",
        limit=shape.limit,
        window=shape.window,
        dialect=shape.dialect,  # type: ignore[arg-type]
        reset_rounding=shape.rounding,  # type: ignore[arg-type]
        clock_skew=shape.skew,
    )
    server = RateLimiter(config)
    clock = WindowClock()
    start = 0.37
    now, balance = start, 1.0  # the first call finds out what the quota is
    accepted = throttled = 0
    windows_touched: set[int] = set()
    while now < start + seconds:
        probe, resume = clock.probe_at(), clock.resume_at()
        if balance >= 1:
            balance -= 1
        elif probe is not None and now >= probe:
            clock.probe_sent(now)
        elif resume is not None and now >= resume:
            balance = config.limit - clock.keep_next  # the next window's count, assumed
            continue
        else:
            now = min(t for t in (probe, resume, now + 1.0) if t is not None and t > now)
            continue
        served = now + rtt / 2  # our clock
        server_now = WALL + served + shape.skew
        decision = server.check("k", server_now)
        windows_touched.add(math.floor(server_now / shape.window))
        headers = server.headers(decision, server_now)
        headers["Date"] = formatdate(server_now, usegmt=True)
        if decision.allowed:
            accepted += 1
        else:
            throttled += 1
            headers["Retry-After"] = server.retry_after(decision, server_now)
        received = now + rtt
        quota = parse_quota(headers, WALL + received)
        assert quota is not None
        verdict = clock.on_answer(Answer(now, received, WALL, quota, throttled=not decision.allowed))
        left = (quota.remaining or 0) - clock.keep_back
        if verdict is Verdict.NEW:
            balance = left
        elif verdict is Verdict.SAME:
            balance = min(balance, left)
        now = received
    return accepted, throttled, len(windows_touched) * config.limit, clock


@pytest.mark.parametrize(
    "shape", SHAPES, ids=lambda s: f"{s.dialect}-{s.window:g}s-{s.rounding}-skew{s.skew:+g}"
)
def test_a_caller_following_the_clock_never_meets_a_429_and_uses_the_quota(shape: Shape) -> None:
    seconds = 40 * shape.window if shape.window <= 5 else 3 * shape.window
    accepted, throttled, quota, clock = simulate(shape, seconds)
    assert throttled == 0
    assert accepted / quota >= 0.95  # learning included
    if shape.window <= 5:
        assert clock.trusted  # and then it bursts at the right moment without probing


def test_probes_go_one_at_a_time_within_the_end() -> None:
    clock = WindowClock()
    clock.on_answer(epoch_answer(0.5, 0.51, reset=WALL + 1, remaining=2, date=WALL))
    assert clock.keep_back == 2  # the end is a 2 s interval: two calls kept back for probes
    probe = clock.probe_at()
    assert probe is not None and clock.end is not None and clock.end.lo <= probe <= clock.end.hi
    clock.probe_sent(probe)
    assert clock.keep_back == 1
    assert clock.probe_at() is None  # one at a time: its answer places the next


def test_a_trusted_guess_is_dropped_when_the_window_outlives_it() -> None:
    _, _, _, clock = simulate(Shape("x-ratelimit-epoch", 1.0), 40.0)
    assert clock.trusted and clock.keep_back == 0 and clock.probe_at() is None
    resume = clock.resume_at()
    guess = clock.guess()
    assert resume is not None and guess is not None and resume == guess.hi
    # An answer counted in the window in force, sent after it should have ended.
    current = clock._id
    assert current is not None
    late = epoch_answer(resume + 0.001, resume + 0.003, reset=current, remaining=0, date=current - 1)
    assert clock.on_answer(late) is Verdict.SAME
    assert not clock.trusted and clock.guess() is None
    assert clock.end is not None and clock.resume_at() == clock.end.hi


def test_no_probe_when_nothing_was_kept_back() -> None:
    # Calls sent before the quota was known spent it all: a probe would meet a 429.
    clock = WindowClock()
    clock.on_answer(epoch_answer(0.5, 0.51, reset=WALL + 1, remaining=0, date=WALL))
    assert clock.keep_back == 2 and clock.probe_at() is None
    assert clock.resume_at() is not None


def test_without_probes_nothing_is_kept_back_and_the_end_is_waited_out() -> None:
    clock = WindowClock(probe=False)
    clock.on_answer(delay_answer(0.0, 0.01, delay=3, remaining=0))
    assert clock.keep_back == 0 and clock.probe_at() is None
    assert clock.resume_at() == pytest.approx(4.01)
