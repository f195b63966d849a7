"""The checkpoint watermark, its save schedule and the ledger decision: pure, fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.core.checkpoint import (
    APPLIED,
    DEAD,
    FlushSchedule,
    LedgerState,
    Position,
    Watermark,
    ledger_decision,
)
from interlock.errors import ConfigError
from interlock.testing import FakeClock


def test_watermark_waits_for_the_lowest_in_flight_key() -> None:
    w: Watermark[tuple[int, int]] = Watermark()
    for key in [(1, 1), (1, 2), (2, 3), (3, 4)]:
        assert w.emit(key)
    assert not w.complete((2, 3))
    assert w.position is None  # (1, 1) and (1, 2) still running
    assert w.complete((1, 1))
    assert w.position == (1, 1)
    assert w.complete((1, 2))
    assert w.position == (2, 3)  # jumps over the already-done (2, 3)
    assert w.in_flight == 1
    assert w.complete((3, 4))
    assert w.position == (3, 4)
    assert w.in_flight == 0


def test_equal_timestamps_hold_the_position_inside_the_group() -> None:
    # Five records share timestamp 10; the position stays at the last done one below the
    # first still running, and the resume query (>= 10) re-reads the whole group.
    w: Watermark[Position] = Watermark()
    keys = [Position.of(10, i) for i in range(1, 6)]
    for k in keys:
        w.emit(k)
    for k in (keys[0], keys[1], keys[3]):
        w.complete(k)
    assert w.position == keys[1]
    assert w.position is not None and w.position.updated_at == 10


def test_late_keys_are_processed_but_never_hold_or_lower_the_position() -> None:
    w: Watermark[tuple[int, int]] = Watermark(start=(5, 5))
    assert not w.emit((5, 5))  # the boundary record, re-read by the inclusive query
    assert not w.emit((3, 1))  # a lookback re-read
    assert w.emit((6, 1))
    assert w.late == 2
    assert not w.complete((3, 1))
    assert w.position == (5, 5)
    assert w.complete((6, 1))
    assert w.position == (6, 1)


def test_a_key_emitted_twice_must_complete_twice() -> None:
    w: Watermark[tuple[int, int]] = Watermark()
    w.emit((1, 1))
    w.emit((1, 1))
    w.emit((2, 2))
    assert not w.complete((1, 1))
    w.complete((2, 2))
    assert w.position is None
    assert w.complete((1, 1))
    assert w.position == (2, 2)


def test_completing_an_unknown_key_changes_nothing() -> None:
    w: Watermark[tuple[int, int]] = Watermark()
    w.emit((1, 1))
    assert not w.complete((9, 9))
    assert w.position is None and w.in_flight == 1


def test_position_orders_integer_ids_as_numbers() -> None:
    assert Position.of(1, 9) < Position.of(1, 10)
    assert Position.of(1, "9") < Position.of(1, "10")  # numeric text ids too
    assert Position.of(1, 10) < Position.of(1, "abc")  # integers before text, never compared
    assert Position.of(1, "007").record_id == "007"  # a leading zero is text, kept verbatim
    assert Position.of(1, 42).record_id == "42"
    assert Position.of(0, "zz") < Position.of(1, 1)


@settings(max_examples=300, deadline=None)
@given(
    groups=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=40),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    stop_after=st.integers(min_value=0, max_value=200),
)
def test_shuffled_completions_never_pass_an_unfinished_key(
    groups: list[int], seed: int, stop_after: int
) -> None:
    """Records listed in (updated_at, id) order (``groups`` gives how many share each
    timestamp) complete in random order; after every completion, everything at or below the
    position is done, and the position is the highest such key. Stopping at any point (a
    crash) and resuming from ``updated_at >= position.updated_at`` re-reads every unfinished
    record and, of finished ones, only those above the position or sharing its timestamp."""
    keys = [
        Position.of(ts, rid)
        for ts, size in enumerate(groups, start=100)
        for rid in range(ts * 10, ts * 10 + size)
    ]
    rng = random.Random(seed)
    w: Watermark[Position] = Watermark()
    order = keys[:]
    rng.shuffle(order)
    done: set[Position] = set()
    emitted: list[Position] = []
    pending = list(keys)
    steps = 0
    while (pending or len(done) < len(emitted)) and steps < stop_after:
        steps += 1
        # Emit in listing order, complete in random order: interleave both.
        if pending and (rng.random() < 0.5 or len(done) == len(emitted)):
            key = pending.pop(0)
            assert w.emit(key)
            emitted.append(key)
            continue
        running = [k for k in emitted if k not in done]
        key = rng.choice(running)
        w.complete(key)
        done.add(key)
        position = w.position
        if position is None:
            assert emitted[0] not in done  # the lowest key is still running
            continue
        assert all(k in done for k in emitted if k <= position)
        first_running = min((k for k in emitted if k not in done), default=None)
        below = [k for k in emitted if first_running is None or k < first_running]
        assert position == max(below)
    # The crash: resume from the position (inclusive on its timestamp).
    position = w.position
    reread = {k for k in keys if position is None or k.updated_at >= position.updated_at}
    lost = [k for k in keys if k not in done and k not in reread]
    assert lost == []
    redone = {k for k in done if k in reread}
    assert all(k > position or k.updated_at == position.updated_at for k in redone) if position else True
    assert w.in_flight == len(emitted) - len(done)


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=60),
    seed=st.integers(0, 10**9),
)
def test_any_emission_order_keeps_the_invariant(keys: list[tuple[int, int]], seed: int) -> None:
    """Even listed out of order (a buggy API), the position never covers an unfinished key
    emitted before it was reached, and never moves backwards."""
    rng = random.Random(seed)
    w: Watermark[tuple[int, int]] = Watermark()
    tracked: list[tuple[int, int]] = []
    done_count: dict[tuple[int, int], int] = {}
    last = None
    for key in keys:
        if w.emit(key):
            tracked.append(key)
        if tracked and rng.random() < 0.6:
            k = tracked.pop(rng.randrange(len(tracked)))
            w.complete(k)
            done_count[k] = done_count.get(k, 0) + 1
        if w.position is not None:
            assert all(k > w.position for k in tracked)
            assert last is None or w.position >= last
            last = w.position
    for k in tracked:
        w.complete(k)
    assert w.in_flight == 0
    assert w.position == max(keys)


def test_flush_schedule_saves_first_move_then_every_interval() -> None:
    clock = FakeClock()
    s = FlushSchedule(every=1.0, records=100)
    assert not s.due(clock.monotonic())  # nothing moved
    s.moved()
    assert s.due(clock.monotonic())  # the first move is saved at once
    s.saved(clock.monotonic())
    s.moved()
    assert not s.due(clock.monotonic())
    assert s.next_at() == clock.monotonic() + 1.0
    clock.advance(0.5)
    assert not s.due(clock.monotonic())
    clock.advance(0.5)
    assert s.due(clock.monotonic())
    s.saved(clock.monotonic())
    assert s.next_at() is None


def test_flush_schedule_saves_early_after_many_records() -> None:
    clock = FakeClock()
    s = FlushSchedule(every=60.0, records=3)
    s.moved()
    s.saved(clock.monotonic())
    s.moved(2)
    assert not s.due(clock.monotonic())
    s.moved(1)
    assert s.due(clock.monotonic())


@pytest.mark.parametrize(("kwargs", "field"), [({"every": -1}, "every"), ({"records": 0}, "records")])
def test_flush_schedule_validates(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FlushSchedule(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "version", "replay", "expected"),
    [
        (None, 5, False, "apply"),
        (LedgerState(5, APPLIED, 5), 5, False, "skip"),  # same version: a re-read or a late webhook
        (LedgerState(6, APPLIED, 6), 5, False, "skip"),  # older version arriving late
        (LedgerState(5, APPLIED, 5), 6, False, "apply"),  # a newer change
        (LedgerState(5, DEAD, None), 5, False, "skip"),  # waits in the DLQ; not failed again
        (LedgerState(5, DEAD, None), 6, False, "apply"),  # a newer version may succeed
        (LedgerState(5, DEAD, None), 5, True, "apply"),  # the replay applies it
        (LedgerState(5, APPLIED, 5), 5, True, "skip"),  # replayed twice: applied once
        (LedgerState(6, DEAD, 4), 5, True, "apply"),  # only older versions were applied
        (LedgerState(6, DEAD, 6), 5, True, "skip"),  # a newer version was applied meanwhile
    ],
)
def test_ledger_decision(state: LedgerState | None, version: int, replay: bool, expected: str) -> None:
    assert ledger_decision(state, version, replay=replay) == expected


# -- found by the mutation run (issue #19): each test kills mutants that survived the ones above --


def test_position_of_ranks_each_kind_of_id_exactly() -> None:
    assert Position.of(5, 42) == Position(5, 0, 42, "")
    assert Position.of(5, "42") == Position(5, 0, 42, "")
    assert Position.of(5, "0") == Position(5, 0, 0, "")
    assert Position.of(5, "007") == Position(5, 1, 0, "007")  # a leading zero is text
    assert Position.of(5, "9" * 18) == Position(5, 0, int("9" * 18), "")
    assert Position.of(5, "1" + "0" * 18) == Position(5, 1, 0, "1" + "0" * 18)  # 19 digits: text
    assert Position.of(5, True) == Position(5, 1, 0, "True")  # a bool is not an integer id
    assert Position.of(5, "cus_1") == Position(5, 1, 0, "cus_1")
    assert Position.of(5, "cus_1").record_id == "cus_1" and Position.of(5, 42).record_id == "42"


def test_watermark_counts_what_it_saw() -> None:
    w: Watermark[tuple[int]] = Watermark((10,))
    assert (w.emitted, w.completed, w.late) == (0, 0, 0)
    assert w.emit((5,)) is False  # late
    assert w.emit((11,)) and w.emit((12,)) and w.emit((12,))
    assert (w.emitted, w.late, w.in_flight) == (4, 1, 3)
    assert w.complete((12,)) is False  # once of twice: still in flight
    assert w.in_flight == 2 and w.completed == 1
    assert w.complete((11,)) is True and w.position == (11,)
    assert w.complete((12,)) is True and w.position == (12,)
    assert (w.emitted, w.completed, w.late, w.in_flight) == (4, 3, 1, 0)
    assert "position=(12,)" in repr(w) and "emitted=4" in repr(w)


def test_a_key_emitted_three_times_needs_three_completions() -> None:
    w: Watermark[tuple[int]] = Watermark()
    for _ in range(3):
        w.emit((1,))
    assert w.complete((1,)) is False and w.complete((1,)) is False
    assert w.position is None and w.in_flight == 1
    assert w.complete((1,)) is True and w.position == (1,)


def test_a_key_done_then_emitted_again_holds_the_position_below_it() -> None:
    """(2,) completes while (1,) runs, then (2,) is handed out again (listed a second time):
    when (1,) completes, the position may reach (1,) but not (2,), which is in flight again."""
    w: Watermark[tuple[int]] = Watermark()
    w.emit((1,))
    w.emit((2,))
    assert w.complete((2,)) is False
    assert w.emit((2,)) is True  # above the position (none yet): tracked again
    assert w.complete((1,)) is True
    assert w.position == (1,)
    assert w.complete((2,)) is True and w.position == (2,)


def test_flush_schedule_counts_one_completion_per_move_by_default() -> None:
    schedule = FlushSchedule(every=60.0, records=2)
    schedule.moved()
    assert schedule.due(0.0)  # never saved: the first move saves at once
    schedule.saved(0.0)
    schedule.moved()
    assert not schedule.due(1.0)  # one completion of the two
    schedule.moved()
    assert schedule.due(1.0)
    assert schedule.next_at() == 60.0
    schedule.saved(1.0)
    assert schedule.next_at() is None and not schedule.due(1000.0)


def test_a_dead_version_is_skipped_outside_a_replay_by_default() -> None:
    dead = LedgerState(3, DEAD, None)
    assert ledger_decision(dead, 3) == "skip"
    assert ledger_decision(dead, 3, replay=True) == "apply"
