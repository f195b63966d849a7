"""Batch windows: open, fill, close on time, share duplicate ids."""

from __future__ import annotations

from interlock.core.batching import Batcher, Flush, Opened


def test_first_member_opens_a_window_and_time_closes_it() -> None:
    b: Batcher[str] = Batcher(max_size=10, window=0.005)
    assert b.add("g", "1", "a", now=0.0) == Opened(close_at=0.005)
    assert b.add("g", "2", "b", now=0.001) is None
    assert b.due("g", now=0.004) is None
    flush = b.due("g", now=0.005)
    assert isinstance(flush, Flush)
    assert list(flush.ids) == ["1", "2"]
    assert flush.members == {"1": ["a"], "2": ["b"]}
    assert b.open_windows == 0


def test_max_size_flushes_at_once() -> None:
    b: Batcher[int] = Batcher(max_size=3, window=10)
    b.add("g", "1", 1, 0.0)
    b.add("g", "2", 2, 0.0)
    flush = b.add("g", "3", 3, 0.0)
    assert isinstance(flush, Flush) and list(flush.ids) == ["1", "2", "3"]
    assert b.due("g", now=10.0) is None  # the stale timer finds nothing
    assert isinstance(b.add("g", "4", 4, 0.1), Opened)  # next window


def test_duplicate_ids_share_one_slot() -> None:
    b: Batcher[str] = Batcher(max_size=2, window=1)
    b.add("g", "7", "a", 0.0)
    assert b.add("g", "7", "b", 0.0) is None
    flush = b.add("g", "8", "c", 0.0)
    assert isinstance(flush, Flush)
    assert flush.members == {"7": ["a", "b"], "8": ["c"]}


def test_groups_are_independent() -> None:
    b: Batcher[str] = Batcher(max_size=5, window=1)
    assert isinstance(b.add(("fields", "id"), "1", "a", 0.0), Opened)
    assert isinstance(b.add(("fields", "name"), "1", "b", 0.0), Opened)
    assert b.open_windows == 2
    flushes = b.flush_all()
    assert sorted(len(f.members) for f in flushes) == [1, 1]


def test_zero_window_flushes_every_member_alone() -> None:
    b: Batcher[str] = Batcher(max_size=5, window=0)
    flush = b.add("g", "1", "a", 0.0)
    assert isinstance(flush, Flush) and list(flush.ids) == ["1"]


def test_every_flush_names_its_group_and_ids() -> None:
    """From the mutation run (issue #19): the driver keys its list call by the flush's group."""
    b: Batcher[str] = Batcher(max_size=2, window=1.0)
    b.add(("g", 1), "1", "a", now=0.0)
    full = b.add(("g", 1), "2", "b", now=0.0)
    assert isinstance(full, Flush) and full.group == ("g", 1) and list(full.ids) == ["1", "2"]
    b.add("timed", "3", "c", now=0.0)
    timed = b.due("timed", now=1.0)
    assert isinstance(timed, Flush) and timed.group == "timed"
    b.add("left", "4", "d", now=0.0)
    (rest,) = b.flush_all()
    assert (rest.group, list(rest.ids), rest.members) == ("left", ["4"], {"4": ["d"]})
