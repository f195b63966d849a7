"""SIGKILL mid-sync: the restarted job loses nothing and applies nothing twice.

The sync runs in a child process against a testbed in another process; the test kills it
(SIGKILL: no cleanup, no final checkpoint) twice while writes are in flight, then lets a third
run finish. Writes finish out of order (a few slow ones among fast ones), so a watermark that
ran ahead of a record in flight would be caught: at each kill the checkpoint stored in the
SQLite file must sit below the first record the testbed has not applied, and close to it (a
checkpoint never saved mid-poll would re-read everything, which the ledger hides). The
testbed's counters are the final judge: every changed record applied exactly once at its
latest version, writes interrupted by a kill replayed with their idempotency key (and not
applied again), and only about the writes in flight re-sent per crash.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import interlock
from interlock.core.checkpoint import Position
from interlock.sync import parse_time
from interlock.testbed import Faults, Latency, SpawnedTestbed, TestbedConfig, spawn_testbed

CHILD = os.path.join(os.path.dirname(__file__), "_crash_child.py")
RECORDS = 600
CONCURRENCY = 5  # the write-back's default, as the child runs it
REREAD_BOUND = 60  # finished records a crash may re-read below the first unapplied one


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


def listing_order(tb: SpawnedTestbed) -> list[tuple[Position, int]]:
    """Every source record as the job lists it: by (updated_at, id)."""
    with interlock.SyncClient(tb.url) as client:
        items = list(client.paginate("/customers", params={"updated_since": "1970-01-01T00:00:00Z"}))
    return sorted((Position.of(parse_time(item["updated_at"]), item["id"]), item["id"]) for item in items)


def stored_state(path: str) -> tuple[Position | None, set[int]]:
    """The checkpoint in the job's SQLite file, read as a restarted job would, and the records
    its ledger holds as done."""
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT updated_at, record_id FROM interlock_sync_checkpoints WHERE job = 'crash'"
        ).fetchone()
        done = {int(r[0]) for r in conn.execute("SELECT record_id FROM interlock_sync_ledger WHERE job = 'crash'")}
    return (None if row is None else Position.of(int(row[0]), row[1])), done


def test_sigkill_mid_sync_resumes_without_losing_or_double_applying(sqlite_path: str) -> None:
    store = f"sqlite:///{sqlite_path}"
    config = TestbedConfig(
        records=RECORDS,
        kinds=("customers", "mirror"),
        same_timestamp_every=3,
        # 5 ms writes, and one request in 25 held 150 ms more: writes finish out of order.
        faults=Faults(latency=Latency.fixed(5), slow_rate=0.04, slow_ms=150),
    )
    with spawn_testbed(config) as tb:
        order = listing_order(tb)
        assert len(order) == RECORDS
        puts_at_kill: list[int] = []
        rereads: list[int] = []
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
            # The job is dead: its checkpoint and ledger cannot move any more. Read them, then
            # what the testbed applied (writes still in flight there can only add to that set).
            checkpoint, done = stored_state(sqlite_path)
            counters = tb.counters()
            applied = {rid for (kind, rid) in counters.applied_writes if kind == "mirror"}
            puts_at_kill.append(counters.route("PUT /mirror/{id}").get("200", 0))
            assert len(done) < RECORDS, "killed after the run was over"
            first_unapplied = next(position for position, rid in order if rid not in applied)
            first_not_done = next(position for position, rid in order if rid not in done)
            assert checkpoint is not None, f"no checkpoint saved after {len(done)} records were done"
            assert checkpoint < first_unapplied, (
                f"the checkpoint {checkpoint} is past record {first_unapplied}, not yet applied"
            )
            assert checkpoint < first_not_done
            # What the restart re-reads although it was done, below the first record that was
            # not: how far the saved checkpoint lagged (records done out of order above that
            # one are re-read by design, and skipped through the ledger).
            rereads.append(sum(1 for position, _ in order if checkpoint < position < first_not_done))
        assert puts_at_kill[0] < RECORDS, "the first run finished before it could be killed"
        print(f"re-read after each kill {rereads}")
        assert max(rereads) <= REREAD_BOUND

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
        # A crash re-sends only the writes in flight (CONCURRENCY at a time) and those whose
        # ledger entry was not yet durable: about 5 per kill, never the read-ahead window.
        print(f"puts at kills {puts_at_kill}, replays {counters.idempotent_replays}, puts {puts}")
        assert counters.idempotent_replays <= 5 * CONCURRENCY
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
        assert read < 2 * CONCURRENCY  # from the final checkpoint: only its timestamp's group
        assert done_applied == 0 and skipped == read
        assert tb.counters().writes_applied == RECORDS
