"""SIGKILL mid-sync: the restarted job loses nothing and applies nothing twice.

The sync runs in a child process against a testbed in another process; the test kills it
(SIGKILL: no cleanup, no final checkpoint) twice while writes are in flight, then lets a third
run finish. The testbed's counters are the judge: every changed record applied exactly once at
its latest version, writes interrupted by the kill replayed with their idempotency key (and
not applied again), and at most the in-flight window re-sent per crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from interlock.testbed import Faults, Latency, TestbedConfig, spawn_testbed

CHILD = os.path.join(os.path.dirname(__file__), "_crash_child.py")
RECORDS = 600
WINDOW = 200


def start(url: str, store: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, CHILD, "--url", url, "--store", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_mid_sync_resumes_without_losing_or_double_applying(sqlite_path: str) -> None:
    store = f"sqlite:///{sqlite_path}"
    config = TestbedConfig(
        records=RECORDS,
        kinds=("customers", "mirror"),
        same_timestamp_every=3,
        faults=Faults(latency=Latency.fixed(5)),
    )
    with spawn_testbed(config) as tb:
        puts_at_kill: list[int] = []
        for kill_after in (150, 380):
            child = start(tb.url, store)
            try:
                wait_until(
                    lambda c=child, n=kill_after: tb.counters().writes_applied >= n or c.poll() is not None
                )
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                child.send_signal(signal.SIGKILL)
                child.wait(10)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                for pipe in (child.stdout, child.stderr):  # a killed child's pipes are ours to close
                    if pipe is not None:
                        pipe.close()
            assert child.returncode == -signal.SIGKILL
            puts_at_kill.append(tb.counters().route("PUT /mirror/{id}").get("200", 0))
        assert puts_at_kill[0] < RECORDS, "the first run finished before it could be killed"

        child = start(tb.url, store)
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
        assert b"done" in out

        counters = tb.counters()
        applied = {rid: n for (kind, rid), n in counters.applied_writes.items() if kind == "mirror"}
        # Every record applied, and exactly once: replays of writes cut by a kill were answered
        # from the upstream's idempotency store, not applied again.
        assert sorted(applied) == list(range(1, RECORDS + 1))
        assert set(applied.values()) == {1}
        assert counters.writes_applied == RECORDS
        puts = sum(counters.route("PUT /mirror/{id}").values())
        assert puts == RECORDS + counters.idempotent_replays
        # A crash re-sends at most the records that were in flight (the window), never more.
        print(f"puts at kills {puts_at_kill}, replays {counters.idempotent_replays}, puts {puts}")
        assert counters.idempotent_replays <= 2 * WINDOW
        # At its latest version: the destination holds what the source holds.
        for rid in (1, 77, 300, 599, RECORDS):
            source, mirror = tb.record("customers", rid), tb.record("mirror", rid)
            assert source is not None and mirror is not None
            assert (mirror["name"], mirror["email"]) == (source["name"], source["email"])

        # The ledger agrees, and a further poll finds nothing left to do.
        again = start(tb.url, store)
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err.decode()
        read, done_applied, skipped = (int(x) for x in out.decode().split("done ", 1)[1].split())
        assert done_applied == 0 and skipped == read
        assert tb.counters().writes_applied == RECORDS
