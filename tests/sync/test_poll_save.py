"""The poll's wait for its background checkpoint save: a save that has just finished, its done
callback not yet run, must not make the wait spin (a CI run hung the event loop there)."""

from __future__ import annotations

import asyncio
import threading

from interlock.sync._poll import PollRun


def run_in_thread(coro_fn: object) -> tuple[bool, list[object]]:
    """Run ``coro_fn()`` on its own loop in a daemon thread; whether it ended within 10 s (a
    spinning loop never yields, so no timeout inside the loop could stop it)."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(asyncio.run(coro_fn())), daemon=True)  # type: ignore[operator]
    thread.start()
    thread.join(10.0)
    return not thread.is_alive(), outcome


def test_waiting_for_a_save_whose_done_callback_is_pending_returns() -> None:
    async def scenario() -> list[BaseException]:
        run = PollRun.__new__(PollRun)  # only the save's bookkeeping is exercised
        run._failed = []

        async def save() -> None:
            return None

        run._saving = asyncio.ensure_future(save())
        run._saving.add_done_callback(run._on_saved)
        await asyncio.sleep(0)  # the save runs and finishes; its done callback is only queued
        assert run._saving is not None and run._saving.done()
        await run._saved()
        assert run._saving is None
        await asyncio.sleep(0)  # the queued callback then finds the save settled already
        return run._failed

    ended, outcome = run_in_thread(scenario)
    assert ended, "the wait for a finished save spun the event loop"
    assert outcome == [[]]


def test_a_failed_save_is_reported_once() -> None:
    async def scenario() -> list[BaseException]:
        run = PollRun.__new__(PollRun)
        run._failed = []

        async def save() -> None:
            raise OSError("disk full")

        run._saving = asyncio.ensure_future(save())
        run._saving.add_done_callback(run._on_saved)
        await run._saved()
        await asyncio.sleep(0)
        return run._failed

    ended, outcome = run_in_thread(scenario)
    assert ended
    (failed,) = outcome
    assert [str(e) for e in failed] == ["disk full"]  # type: ignore[attr-defined]
