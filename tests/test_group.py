"""GroupCall: concurrent calls become batches; calls made while one is in flight form the next."""

from __future__ import annotations

import asyncio

import pytest

from interlock._group import GroupCall


class Recorder:
    """A batch function that records its batches and can be held in flight."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ValueError(f"batch {items} failed")
        return [i * 10 for i in items]


async def test_calls_of_one_loop_iteration_share_a_batch_and_get_their_own_result() -> None:
    fn = Recorder()
    group: GroupCall[int, int] = GroupCall(fn)
    results = await asyncio.gather(*(group(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert fn.batches == [[0, 1, 2, 3, 4]]
    assert (group.batches, group.calls) == (1, 5)


async def test_calls_made_while_a_batch_is_in_flight_form_the_next_one() -> None:
    fn = Recorder()
    fn.gate.clear()
    group: GroupCall[int, int] = GroupCall(fn)
    first = group(1)
    await asyncio.sleep(0)  # the batch [1] is now in flight, held at the gate
    assert fn.batches == [[1]]
    later = [group(i) for i in (2, 3, 4)]
    assert group.pending == 3
    fn.gate.set()
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 40]
    assert fn.batches == [[1], [2, 3, 4]]


async def test_max_batch_splits_a_burst() -> None:
    fn = Recorder()
    group: GroupCall[int, int] = GroupCall(fn, max_batch=2)
    await asyncio.gather(*(group(i) for i in range(5)))
    assert fn.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_batch_fails_its_callers_only() -> None:
    fn = Recorder()
    fn.gate.clear()
    fn.fail_next = True
    group: GroupCall[int, int] = GroupCall(fn)
    doomed = group(1)
    await asyncio.sleep(0)
    survivor = group(2)
    fn.gate.set()
    with pytest.raises(ValueError, match=r"batch \[1\] failed"):
        await doomed
    assert await survivor == 20


async def test_added_items_wait_for_a_start_and_drain_writes_them() -> None:
    fn = Recorder()
    group: GroupCall[int, int] = GroupCall(fn)
    group.add(1)
    group.add(2)
    await asyncio.sleep(0)
    assert fn.batches == []  # add() starts nothing
    assert group.pending == 2
    await group.drain()
    assert fn.batches == [[1, 2]]
    assert group.pending == 0


async def test_added_items_join_the_next_call_and_their_errors_are_dropped() -> None:
    fn = Recorder()
    fn.fail_next = True
    group: GroupCall[int, int] = GroupCall(fn)
    group.add(1)
    with pytest.raises(ValueError):
        await group(2)  # the caller hears of the failure; the added item has nobody to tell
    assert fn.batches == [[1, 2]]
    assert await group(3) == 30


async def test_drain_waits_for_items_added_during_the_last_batch() -> None:
    fn = Recorder()
    fn.gate.clear()
    group: GroupCall[int, int] = GroupCall(fn)
    call = group(1)
    await asyncio.sleep(0)
    drained = asyncio.ensure_future(group.drain())
    await asyncio.sleep(0)
    group.add(2)
    fn.gate.set()
    await drained
    assert await call == 10
    assert fn.batches == [[1], [2]]


async def test_a_batch_function_answering_the_wrong_number_of_items_fails_every_caller() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:1]

    group: GroupCall[int, int] = GroupCall(short)
    outcomes = await asyncio.gather(group(1), group(2), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) and "answered 1 of 2" in str(o) for o in outcomes)
    assert await group(3) == 3  # the group still works
