"""``interlock sync``: run a job on demand, show its state and ledger, replay, reset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.testbed import TestbedConfig, spawn_testbed

APP = Path(__file__).with_name("_app.py")


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_path: str) -> str:
    shutil.copy(APP, tmp_path / "my_sync_jobs.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNC_TEST_STORE", f"sqlite:///{sqlite_path}")
    return "my_sync_jobs:jobs"


def test_run_status_ledger_replay_reset(
    app: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with spawn_testbed(TestbedConfig(records=50, kinds=("customers", "mirror"))) as tb:
        monkeypatch.setenv("SYNC_TEST_URL", tb.url)
        monkeypatch.setenv("SYNC_TEST_BROKEN", "7")
        assert main(["sync", "--app", app, "run", "customers", "--json"]) == 1  # one record dead
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (report["read"], report["applied"], report["dead"]) == (50, 49, 1)

        assert main(["sync", "--app", app, "status", "customers"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["ledger"] == {"applied": 49, "dead": 1} and status["dead_letters"] == 1

        assert main(["sync", "--app", app, "ledger", "customers", "--outcome", "dead"]) == 0
        out = capsys.readouterr().out
        assert " 7 " in out and "destination refused 7" in out

        monkeypatch.delenv("SYNC_TEST_BROKEN")
        assert main(["sync", "--app", app, "replay", "customers"]) == 0
        assert "applied 1" in capsys.readouterr().out
        assert {rid for (kind, rid) in tb.counters().applied_writes if kind == "mirror"} == set(range(1, 51))

        # With the progress bar (the default): nothing changed, nothing written.
        assert main(["sync", "--app", app, "run", "customers"]) == 0
        assert "applied 0" in capsys.readouterr().out

        assert main(["sync", "--app", app, "reset", "customers", "--yes"]) == 0
        capsys.readouterr()
        assert main(["sync", "--app", app, "run", "customers", "--max-records", "10", "--json"]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (report["read"], report["applied"], report["stop_reason"]) == (10, 10, "max_records")


def test_unknown_job_and_bad_app(
    app: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNC_TEST_URL", "http://127.0.0.1:9")
    assert main(["sync", "--app", app, "status", "nope"]) == 2
    assert "known: customers" in capsys.readouterr().err
    assert main(["sync", "status", "nope", "--app", app]) == 2  # as the usage shows it: after the action
    assert "known: customers" in capsys.readouterr().err
    assert main(["sync", "--app", "no_such_module_here:jobs", "status", "x"]) == 2
    assert "cannot import" in capsys.readouterr().err
    monkeypatch.delenv("INTERLOCK_SYNC_APP", raising=False)
    assert main(["sync", "status", "x"]) == 2
    assert "--app" in capsys.readouterr().err
    assert os.environ.get("SYNC_TEST_URL")
