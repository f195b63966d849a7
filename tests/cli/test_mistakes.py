"""The ``interlock`` command as a new user meets it: every mistake is one line on stderr and exit
status 2, never a traceback; what a command opens it closes; what it shows is readable and
consistent. Each case runs the real ``interlock`` entry point in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interlock.stores import Message
from interlock.stores.queue_sqlite import SQLiteQueue
from interlock.testbed import TestbedConfig, spawn_testbed

INTERLOCK = str(Path(sys.executable).with_name("interlock"))

APP = Path(__file__).parent.parent / "sync" / "_app.py"
"""The jobs module ``--app my_app:...`` names (and callables that are not jobs)."""


def interlock_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed ``interlock`` script with no terminal on stdin."""
    return subprocess.run(
        [INTERLOCK, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "80", "SYNC_TEST_URL": "http://127.0.0.1:9", **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0], lines[0]
    assert done.stdout == "", done.stdout


async def dead_letters(path: Path, sources: list[str]) -> None:
    async with SQLiteQueue(f"sqlite:///{path}") as queue:
        for i, source in enumerate(sources):
            await queue.put(Message(source, f"evt_{i}", "record", b'{"id": 1}', {}, time.time()))
        for lease in await queue.lease(len(sources), 30):
            await queue.dead_letter(lease, error=f"ValueError: broken {lease.message.id}")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(APP, tmp_path / "my_app.py")
    asyncio.run(dead_letters(tmp_path / "dead.db", ["stripe", "stripe"]))
    asyncio.run(dead_letters(tmp_path / "empty.db", []))
    return tmp_path


MISTAKES = [
    (["dlq", "list", "--store", "foo://x"], "unsupported URL scheme 'foo'"),
    (["dlq", "list", "--store", "postgresql://postgres@127.0.0.1:9/test"], "cannot open the store"),
    (["dlq", "list", "--store", "typo.db"], "no store at 'typo.db'"),
    (["dlq", "list", "--store", "sqlite:///typo.db"], "no store at 'typo.db'"),
    (["dlq", "list", "--store", "empty.db", "--since", "yesterday"], "argument --since"),
    (["dlq", "list", "--store", "empty.db", "--limit", "0"], "argument --limit"),
    (["dlq", "purge", "--all", "--store", "dead.db"], "no terminal to confirm on; pass --yes"),
    (["dlq", "purge", "--store", "dead.db"], "pass --all"),
    (["demo", "--outage", "-1"], "argument --outage"),
    (["demo", "--writes", "2000"], "argument --writes: expected an integer from 0 to 1000"),
    (["demo", "--reads", "-1"], "argument --reads"),
    (["demo", "--reads", "0", "--writes", "0"], "nothing to run"),
    (["demo", "--error-rate", "2"], "argument --error-rate"),
    (["demo", "--rate-limit", "0"], "argument --rate-limit"),
    (["demo", "--callers", "0"], "argument --callers"),
    (["testbed", "--port", "99999"], "argument --port: expected an integer from 0 to 65535"),
    (["testbed", "--error-rate", "503=2"], "error_rates[503]"),
    (["sync", "status", "customers"], "name the jobs with --app"),
    (["sync", "status", "customers", "--app", "no_such_module:jobs"], "cannot import 'no_such_module'"),
    (["sync", "status", "customers", "--app", "os:getcwd"], "holds no interlock.Sync job (it gave a str)"),
    (["sync", "status", "customers", "--app", "my_app:needs_args"], "needs arguments (settings)"),
    (["sync", "status", "customers", "--app", "my_app:returns_number"], "is not a Sync"),
    (["sync", "status", "customers", "--app", "my_app:explodes"], "RuntimeError: no settings file"),
    (["sync", "status", "orders", "--app", "my_app:jobs"], "no sync job named 'orders'"),
    (["sync", "reset", "customers", "--app", "my_app:jobs"], "no terminal to confirm on; pass --yes"),
    (["sync", "run", "customers", "--app", "my_app:jobs", "--max-records", "0"], "argument --max-records"),
    (["no-such-command"], "invalid choice: 'no-such-command'"),
]


@pytest.mark.parametrize(("args", "expected"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_is_one_line_and_exit_status_2(workdir: Path, args: list[str], expected: str) -> None:
    env = {"SYNC_TEST_STORE": f"sqlite:///{workdir / 'sync.db'}"}
    done = interlock_cli(*args, cwd=workdir, env=env)
    assert_one_line_error(done, expected)
    assert not (workdir / "typo.db").exists()  # a typo never creates an empty store


def test_a_missing_postgresql_database_is_one_line(workdir: Path, postgres_dsn: str) -> None:
    base = postgres_dsn.rsplit("/", 1)[0]
    done = interlock_cli("dlq", "list", "--store", f"{base}/interlock_no_such_database", cwd=workdir)
    assert_one_line_error(done, 'database "interlock_no_such_database" does not exist')
    jobs_env = {"SYNC_TEST_STORE": f"{base}/interlock_no_such_database"}
    done = interlock_cli("sync", "status", "customers", "--app", "my_app:jobs", cwd=workdir, env=jobs_env)
    assert_one_line_error(done, "cannot open the stores of sync job customers")


def test_purge_asks_only_when_there_is_something_to_purge(workdir: Path) -> None:
    nothing = interlock_cli("dlq", "purge", "--all", "--store", "empty.db", cwd=workdir)
    assert (nothing.returncode, nothing.stderr) == (0, "")
    assert "nothing to purge" in nothing.stdout
    purged = interlock_cli("dlq", "purge", "--all", "--yes", "--store", "dead.db", cwd=workdir)
    assert purged.returncode == 0 and "purged 2 dead letter(s)" in purged.stdout


def test_the_dead_letter_list_reads_at_80_columns(workdir: Path) -> None:
    long_error = "GET crm.example/customers/{id}: gave up: no attempts left; last answer 503 " * 3

    async def fill() -> None:
        async with SQLiteQueue(f"sqlite:///{workdir / 'long.db'}") as queue:
            await queue.put(Message("sync:crm-customers", "evt_1Pq8xYZ2eZvKYlo2C0", "invoice.payment_failed", b"{}", {}, time.time()))
            (lease,) = await queue.lease(1, 30)
            await queue.dead_letter(lease, error=long_error)

    asyncio.run(fill())
    done = interlock_cli("dlq", "list", "--store", "long.db", cwd=workdir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    # Each field whole on one line (no id, source or type folded into slivers).
    assert any("evt_1Pq8xYZ2eZvKYlo2C0" in line for line in lines)
    assert any("sync:crm-customers / invoice.payment_failed / 1 attempt" in line for line in lines)
    assert any(line.strip().startswith("GET crm.example/customers/{id}: gave up") for line in lines)
    wide = interlock_cli("dlq", "list", "--store", "long.db", cwd=workdir, env={"COLUMNS": "160"})
    assert all(len(line) <= 160 for line in wide.stdout.splitlines())
    assert any("evt_1Pq8xYZ2eZvKYlo2C0" in line and "sync:crm-customers" in line for line in wide.stdout.splitlines())


def test_sync_commands_close_what_they_open_and_agree_on_the_checkpoint(workdir: Path) -> None:
    env = {"SYNC_TEST_STORE": f"sqlite:///{workdir / 'sync.db'}", "SYNC_TEST_BROKEN": "7"}
    with spawn_testbed(TestbedConfig(records=30, kinds=("customers", "mirror"))) as tb:
        env["SYNC_TEST_URL"] = tb.url
        runs = [interlock_cli("sync", "run", "customers", "--app", "my_app:jobs", "--json", cwd=workdir, env=env) for _ in range(2)]
        status = interlock_cli("sync", "status", "customers", "--app", "my_app:jobs", cwd=workdir, env=env)
        ledger = interlock_cli("sync", "ledger", "customers", "--app", "my_app:jobs", cwd=workdir, env=env)
    for done in (*runs, status, ledger):
        assert "Unclosed" not in done.stderr and "never closed" not in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
    first = json.loads(runs[0].stdout.strip().splitlines()[-1])
    assert (first["read"], first["applied"], first["dead"]) == (30, 29, 1)
    shown = json.loads(status.stdout)
    # One format for the checkpoint in both places: RFC 3339 times and the record id.
    run_checkpoint = json.loads(runs[1].stdout.strip().splitlines()[-1])["checkpoint"]
    assert shown["checkpoint"]["updated_at"] == run_checkpoint["updated_at"]
    assert shown["checkpoint"]["updated_at"].endswith("Z") and shown["checkpoint"]["saved_at"].endswith("Z")
    assert shown["checkpoint"].keys() == run_checkpoint.keys() == {"updated_at", "record_id", "saved_at"}
    # Nothing shown that a fresh process cannot know (a per-process poll count read 0 here).
    assert "polls" not in shown
    assert shown["ledger"] == {"applied": 29, "dead": 1} and shown["dead_letters"] == 1


def test_dlq_replay_does_not_strand_the_records_of_a_sync_without_an_inbox(workdir: Path) -> None:
    store = workdir / "sync.db"
    env = {"SYNC_TEST_STORE": f"sqlite:///{store}", "SYNC_TEST_BROKEN": "7"}
    with spawn_testbed(TestbedConfig(records=20, kinds=("customers", "mirror"))) as tb:
        env["SYNC_TEST_URL"] = tb.url
        ran = interlock_cli("sync", "run", "customers", "--app", "my_app:jobs", "--json", cwd=workdir, env=env)
        assert json.loads(ran.stdout.strip().splitlines()[-1])["dead"] == 1
        replay = interlock_cli("dlq", "replay", "--source", "sync:customers", "--store", str(store), cwd=workdir)
        assert replay.returncode == 0, replay.stderr
        assert "replayed 0 dead letter(s)" in replay.stdout
        assert "interlock sync replay customers" in " ".join(replay.stdout.split())
        listed = interlock_cli("dlq", "list", "--json", "--store", str(store), cwd=workdir)
        assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == ["7@" + json.loads(listed.stdout)["id"].split("@")[1]]
        del env["SYNC_TEST_BROKEN"]  # the destination is fixed: the job's own replay applies it
        fixed = interlock_cli("sync", "replay", "customers", "--app", "my_app:jobs", cwd=workdir, env=env)
        assert fixed.returncode == 0 and "applied 1" in fixed.stdout, fixed.stdout + fixed.stderr
        assert {rid for (kind, rid) in tb.counters().applied_writes if kind == "mirror"} == set(range(1, 21))
