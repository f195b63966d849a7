"""``spawn_testbed``: the simulated API in a child process, driven over its admin HTTP API.

Benchmarks need it: a testbed sharing the client's event loop (and core) would slow the
client down and blur the figures. The child is ``python -m interlock testbed``; it prints
its URL on the first stdout line and exits when its stdin closes, so it dies with its parent
even when the parent is killed.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

from ..errors import ConfigError
from ._config import Faults, RateLimitConfig, TestbedConfig
from ._counters import Counters, RecentRequest
from ._data import Record
from ._server import UNSET, _Unset

__all__ = ["SpawnedTestbed", "spawn_testbed"]


class SpawnedTestbed:
    """A handle on a testbed child process.

    Synchronous (stdlib ``urllib``), so it works from any code; every method is one admin
    request to the child.
    """

    __test__ = False

    def __init__(self, process: subprocess.Popen[bytes], url: str, timeout: float = 10.0) -> None:
        self._process = process
        self.url = url
        self.timeout = timeout

    @property
    def pid(self) -> int:
        """The child process's id."""
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the child process is still alive."""
        return self._process.poll() is None

    def _call(self, method: str, name: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_testbed/{name}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                message = json.loads(detail).get("error", detail)
            except (ValueError, AttributeError):
                message = detail
            if exc.code == 400:
                raise ConfigError("SpawnedTestbed", name, str(message)) from None
            raise RuntimeError(f"testbed admin {method} /_testbed/{name}: {exc.code} {message}") from None

    def counters(self) -> Counters:
        """A snapshot of the child's counters (``GET /_testbed/counters``)."""
        return Counters.from_dict(self._call("GET", "counters"))

    def reset_counters(self) -> None:
        """Start the child's counters again from zero."""
        self._call("POST", "reset")

    def recent(self, limit: int | None = None) -> list[RecentRequest]:
        """The child's last requests (up to 1000), oldest first."""
        suffix = "" if limit is None else f"?limit={int(limit)}"
        return [RecentRequest.from_dict(r) for r in self._call("GET", f"requests{suffix}")["requests"]]

    def config(self) -> TestbedConfig:
        """The child's current configuration, live changes included."""
        return TestbedConfig.from_dict(self._call("GET", "config"))

    def configure(
        self,
        *,
        faults: Faults | _Unset | None = UNSET,
        rate_limit: RateLimitConfig | _Unset | None = UNSET,
        **live: Any,
    ) -> TestbedConfig:
        """As ``Testbed.configure``; values are validated here before they are sent."""
        body: dict[str, Any] = dict(live)
        if not isinstance(faults, _Unset):
            body["faults"] = None if faults is None else faults.to_dict()
        if not isinstance(rate_limit, _Unset):
            body["rate_limit"] = None if rate_limit is None else rate_limit.to_dict()
        return TestbedConfig.from_dict(self._call("POST", "config", body))

    def start_outage(self, duration: float) -> None:
        """Every resource request of the child fails with ``faults.outage_status`` for ``duration`` s."""
        self._call("POST", "outage", {"duration": duration})

    def touch(self, kind: str, ids: list[int], updated_at: str | None = None) -> list[Record]:
        """Change records in the child as the upstream would (see ``Testbed.touch``); the touched records."""
        body: dict[str, Any] = {"kind": kind, "ids": list(ids)}
        if updated_at is not None:
            body["updated_at"] = updated_at
        touched: list[Record] = self._call("POST", "touch", body)["data"]
        return touched

    def record(self, kind: str, rid: int) -> Record | None:
        """Record ``rid`` of ``kind`` as the child holds it, or None when absent."""
        try:
            found: Record = self._call("GET", f"records/{kind}/{rid}")
        except RuntimeError:
            return None
        return found

    def close(self, timeout: float = 3.0) -> None:
        """Stop the child: close its stdin (a clean exit), then terminate, then kill."""
        process = self._process
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> SpawnedTestbed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited({self._process.returncode})"
        return f"<SpawnedTestbed {state} {self.url} pid={self.pid}>"


def spawn_testbed(
    config: TestbedConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 20.0,
    python: str | None = None,
) -> SpawnedTestbed:
    """Start a testbed in a child process and wait until it serves.

    Use as a context manager (``with spawn_testbed(cfg) as handle:``) or call
    ``handle.close()``.
    """
    config = config or TestbedConfig()
    if not isinstance(config, TestbedConfig):
        raise ConfigError("spawn_testbed", "config", f"must be a TestbedConfig, got {config!r}")
    command = [
        python or sys.executable,
        "-m",
        "interlock",
        "testbed",
        "--host",
        host,
        "--port",
        str(port),
        "--config",
        json.dumps(config.to_dict()),
        "--exit-with-parent",
    ]
    # The child's stderr goes to a file, not a pipe nobody drains: shown if startup fails.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=os.environ.copy()
    )
    assert process.stdout is not None
    deadline = time.monotonic() + startup_timeout
    line = b""
    try:
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                break
            ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.2))
            if ready:
                chunk = os.read(process.stdout.fileno(), 1)
                if not chunk:
                    break
                line += chunk
        url = line.decode().strip()
        if not url.startswith("http"):
            handle = SpawnedTestbed(process, url)
            handle.close(timeout=1.0)
            stderr.seek(0)
            detail = stderr.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"the testbed child did not start within {startup_timeout}s: {detail}")
    finally:
        stderr.close()
    return SpawnedTestbed(process, url)
