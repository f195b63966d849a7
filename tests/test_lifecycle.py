"""``opens_once``: callers racing into ``open()`` run it once; a failed open may be tried again."""

from __future__ import annotations

import asyncio

import pytest

from interlock._lifecycle import opens_once


class Opened:
    def __init__(self, fail_first: bool = False) -> None:
        self._opened = False
        self.runs = 0
        self.fail_first = fail_first

    @opens_once
    async def open(self) -> None:
        self.runs += 1
        await asyncio.sleep(0.01)  # the others arrive while this one is opening
        if self.fail_first and self.runs == 1:
            raise ConnectionError("refused")
        self._opened = True


async def test_racing_callers_run_open_once_and_all_wait_for_it() -> None:
    resource = Opened()
    await asyncio.gather(*(resource.open() for _ in range(5)))
    assert (resource.runs, resource._opened) == (1, True)
    await resource.open()
    assert resource.runs == 1
    resource._opened = False  # what aclose() does
    await resource.open()
    assert resource.runs == 2


async def test_an_open_that_failed_is_tried_again_by_the_next_caller() -> None:
    resource = Opened(fail_first=True)
    results = await asyncio.gather(*(resource.open() for _ in range(3)), return_exceptions=True)
    assert isinstance(results[0], ConnectionError) and results[1:] == [None, None]
    assert (resource.runs, resource._opened) == (2, True)
    with pytest.raises(ConnectionError):
        await Opened(fail_first=True).open()
