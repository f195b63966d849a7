"""``interlock dlq``: list, inspect, replay (with a progress bar), purge."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from interlock.cli import main
from interlock.stores import Message
from interlock.stores.queue_sqlite import SQLiteQueue


async def fill(path: str, n: int) -> None:
    async with SQLiteQueue(f"sqlite:///{path}") as queue:
        for i in range(n):
            body = json.dumps({"id": f"evt_{i}", "amount": i}).encode()
            await queue.put(Message("stripe" if i % 2 else "github", f"evt_{i}", f"type{i % 3}", body, {"x": "1"}, time.time()))
        for lease in await queue.lease(n, 30):
            await queue.dead_letter(lease, error=f"ValueError: broken {lease.message.id}")


async def counts(path: str) -> tuple[int, int]:
    async with SQLiteQueue(f"sqlite:///{path}") as queue:
        stats = await queue.stats()
        return stats.dead, stats.pending


def cli(path: str, *args: str) -> int:
    return main(["dlq", "--store", f"sqlite:///{path}", *args])


def test_list_and_inspect(sqlite_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(fill(sqlite_path, 4))
    assert cli(sqlite_path, "list", "--json", "--source", "stripe") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["evt_1", "evt_3"]
    assert rows[0]["last_error"] == "ValueError: broken evt_1"
    assert cli(sqlite_path, "list") == 0
    table = capsys.readouterr().out
    assert "dead letters: 4 of 4" in table
    assert "evt_2" in table
    assert cli(sqlite_path, "inspect", "evt_3") == 0
    shown = capsys.readouterr().out
    assert '"amount": 3' in shown
    assert "ValueError: broken evt_3" in shown
    assert cli(sqlite_path, "inspect", "nope") == 1


def test_replay_one_by_filter_and_all(sqlite_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(fill(sqlite_path, 250))
    assert cli(sqlite_path, "replay") == 2  # refuses to replay everything without --all
    assert cli(sqlite_path, "replay", "evt_0") == 0
    assert asyncio.run(counts(sqlite_path)) == (249, 1)
    assert cli(sqlite_path, "replay", "--type", "type1", "--since", "1h") == 0
    out = capsys.readouterr().out
    assert "replayed 83 dead letter(s)" in out
    assert cli(sqlite_path, "replay", "--all", "--batch", "50") == 0
    out = capsys.readouterr().out
    assert "replayed 166 dead letter(s)" in out
    assert "166/166" in out  # the progress bar's final state
    assert asyncio.run(counts(sqlite_path)) == (0, 250)


def test_purge(sqlite_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(fill(sqlite_path, 6))
    assert cli(sqlite_path, "purge", "evt_1", "--yes") == 0
    assert cli(sqlite_path, "purge", "--source", "github", "--yes") == 0
    assert asyncio.run(counts(sqlite_path)) == (2, 0)
    assert cli(sqlite_path, "purge", "--all", "--yes") == 0
    assert "purged 2" in capsys.readouterr().out
    assert asyncio.run(counts(sqlite_path)) == (0, 0)


def test_since_parsing() -> None:
    from interlock.cli.dlq import parse_since

    assert abs(parse_since("2h") - (time.time() - 7200)) < 5
    assert parse_since("2024-01-01T00:00:00+00:00") == 1704067200.0
    assert parse_since("1700000000") == 1700000000.0


@pytest.mark.parametrize("store_first", [True, False])
def test_missing_store_is_an_error_not_a_new_empty_one(
    tmp_path: object, store_first: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"{tmp_path}/typo.db"
    store = ["--store", f"sqlite:///{missing}"]
    argv = ["dlq", *store, "list"] if store_first else ["dlq", "list", *store]
    assert main(argv) == 2
    assert "no store at" in capsys.readouterr().err
    assert not os.path.exists(missing)


def test_store_after_the_action_is_honoured(sqlite_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(fill(sqlite_path, 3))
    assert main(["dlq", "list", "--store", f"sqlite:///{sqlite_path}", "--json"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
