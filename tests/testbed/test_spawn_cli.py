"""The child-process testbed driven over its admin API, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from interlock.cli import build_parser
from interlock.cli.testbed import build_config
from interlock.errors import ConfigError
from interlock.testbed import Faults, RateLimitConfig, TestbedConfig, spawn_testbed


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_spawn_round_trip_over_admin_api() -> None:
    config = TestbedConfig(records=10, seed=4, rate_limit=RateLimitConfig(limit=1000))
    with spawn_testbed(config) as handle:
        assert handle.running and handle.url.startswith("http://127.0.0.1:")
        assert handle.config() == config
        for i in range(1, 4):
            status, body = fetch(f"{handle.url}/customers/{i}")
            assert status == 200 and json.loads(body)["id"] == i
        counters = handle.counters()
        assert counters.requests == 3
        assert counters.route("GET /customers/{id}") == {"200": 3}
        assert [r.path for r in handle.recent()] == [f"/customers/{i}" for i in range(1, 4)]

        handle.reset_counters()
        assert handle.counters().requests == 0
        handle.configure(faults=Faults(error_rates={503: 1.0}))
        assert fetch(f"{handle.url}/customers/1")[0] == 503
        assert handle.counters().errors_injected == 1
        handle.configure(faults=None, rate_limit=None)
        assert fetch(f"{handle.url}/customers/1")[0] == 200
        handle.start_outage(5.0)
        assert fetch(f"{handle.url}/customers/1")[0] == 503
        handle.configure(faults=None)  # new faults end the manual outage
        touched = handle.touch("orders", [2], updated_at="2030-01-01T00:00:00Z")
        assert touched[0]["version"] == 2
        assert handle.record("orders", 2) == touched[0]
        assert handle.record("orders", 999) is None
        with pytest.raises(ConfigError):
            handle.configure(seed=5)
        process = handle._process
    # Closing stdin ends the child cleanly (the same path a dying parent triggers).
    assert process.returncode == 0


def test_spawn_reports_a_child_that_cannot_start() -> None:
    with spawn_testbed(TestbedConfig(records=1)) as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="did not start"):
            spawn_testbed(TestbedConfig(records=1), port=port, startup_timeout=10)


def test_cli_arguments_build_the_config(tmp_path: Path) -> None:
    config_file = tmp_path / "tb.json"
    config_file.write_text(json.dumps({"records": 7, "faults": {"error_rates": {"500": 0.1}}}))
    argv = [
        "testbed",
        "--port",
        "0",
        "--config",
        f"@{config_file}",
        "--latency-ms",
        "20",
        "--error-rate",
        "503=0.2",
        "--rate-limit",
        "50/2",
        "--dialect",
        "ietf",
        "--seed",
        "9",
    ]
    args = build_parser().parse_args(argv)
    assert args.port == 0
    config = build_config(args)
    assert config.records == 7 and config.seed == 9
    assert config.faults.latency is not None and config.faults.latency.ms == 20
    assert config.faults.error_rates == {500: 0.1, 503: 0.2}
    assert config.rate_limit == RateLimitConfig(limit=50, window=2.0, dialect="ietf")

    inline = ["testbed", "--config", '{"records": 3}', "--records", "4"]
    assert build_config(build_parser().parse_args(inline)).records == 4


@pytest.mark.parametrize(
    "argv",
    [
        ["testbed", "--error-rate", "503"],
        ["testbed", "--rate-limit", "fast"],
        ["testbed", "--dialect", "x-made-up"],
    ],
)
def test_cli_rejects_malformed_flags(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_cli_reports_invalid_values() -> None:
    argv = ["testbed", "--error-rate", "503=1.5"]
    with pytest.raises(ConfigError, match="error_rates"):
        build_config(build_parser().parse_args(argv))
    argv = ["testbed", "--dialect", "ietf"]
    with pytest.raises(ConfigError, match="--rate-limit"):
        build_config(build_parser().parse_args(argv))


def test_interlock_testbed_command_serves_and_prints_url() -> None:
    command = [sys.executable, "-m", "interlock", "testbed", "--port", "0", "--records", "2"]
    command.append("--exit-with-parent")
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        url = process.stdout.readline().decode().strip()
        try:
            assert url.startswith("http://127.0.0.1:")
            status, body = fetch(f"{url}/customers")
            assert status == 200 and [d["id"] for d in json.loads(body)["data"]] == [1, 2]
        finally:
            process.stdin.close()
            assert process.wait(10) == 0
