"""Worker processes: load the application's Inbox (or Outbox) by name, run its workers, and
supervise N such processes on one shared backend.

The backend does the sharing (leases: one consumer at a time per event; a process that dies
leaves leases that expire and redeliver), so the processes need no coordination of their own;
the supervisor only starts them, restarts one that dies (after a pause that grows while it keeps
dying at once, so a broken app does not spin) and stops them all on SIGTERM / SIGINT, each
given ``grace`` seconds to finish the events it holds. ``interlock worker`` is the command;
``interlock serve --workers N`` calls the same ``WorkerProcesses`` with ``worker_command``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError

__all__ = ["WorkerProcesses", "load_app", "run_app_workers", "worker_command"]

RESTART_PAUSE = (0.5, 30.0)
"""The pause before restarting a process that died: first, and at most (it doubles while the
process keeps dying within a minute of its start)."""


def load_app(spec: str, *, cwd: str | None = None) -> Any:
    """The object named by ``module:attribute`` (``attribute`` may be dotted; a callable is
    called with no arguments, so ``module:make_inbox`` builds it in each process). The current
    directory (or ``cwd``) is importable first, as with uvicorn. Anything wrong is a
    ``ConfigError`` naming the spec: not ``module:attribute``, a module that fails to import,
    an attribute that is not there, an object with no ``run_workers``."""
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ConfigError(
            "worker", "app", f"expected module:attribute (like myapp.events:inbox), got {spec!r}"
        )
    where = cwd or os.getcwd()
    if where not in sys.path:
        sys.path.insert(0, where)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError("worker", "app", f"no module named {module_name!r} (from {where})") from exc
        raise ConfigError("worker", "app", f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ConfigError(
            "worker", "app", f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError("worker", "app", f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if callable(obj) and not hasattr(obj, "run_workers"):
        obj = obj()
    if not callable(getattr(obj, "run_workers", None)):
        raise ConfigError(
            "worker",
            "app",
            f"{spec!r} is a {type(obj).__name__}, expected an interlock Inbox or Outbox (or a function returning one)",
        )
    return obj


def run_app_workers(app: Any, *, concurrency: int, visibility: float | None = None) -> None:
    """Run ``app.run_workers`` in this process until SIGTERM / SIGINT; then in-flight events
    get the pool's grace and the app is closed."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        runner = asyncio.ensure_future(app.run_workers(concurrency, visibility=visibility))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.cancel)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        finally:
            await app.aclose()

    asyncio.run(main())


def worker_command(app: str, *, concurrency: int, visibility: float | None = None) -> list[str]:
    """The command line of one worker process of ``app`` (``interlock worker APP --processes 1``)."""
    cmd = [
        sys.executable,
        "-m",
        "interlock",
        "worker",
        app,
        "--processes",
        "1",
        "--concurrency",
        str(concurrency),
    ]
    if visibility is not None:
        cmd += ["--visibility", repr(visibility)]
    return cmd


class WorkerProcesses:
    """Runs ``processes`` copies of ``command`` and keeps them running until stopped.

    ``run()`` blocks: it returns 0 once SIGTERM or SIGINT stopped every process (each gets
    ``grace`` seconds after the SIGTERM it is sent, then SIGKILL). A process that dies is
    restarted (``restart=False``: not), and each start and exit is reported through ``say``
    (default: a line on stderr), so operators and tests see the pids.
    """

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        grace: float = 30.0,
        restart: bool = True,
        say: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if processes < 1:
            raise ConfigError("WorkerProcesses", "processes", f"must be >= 1, got {processes!r}")
        if grace < 0:
            raise ConfigError("WorkerProcesses", "grace", f"must be >= 0 seconds, got {grace!r}")
        self.command = list(command)
        self.processes = processes
        self.grace = grace
        self.restart = restart
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.env = env
        self.children: list[subprocess.Popen[bytes] | None] = [None] * processes
        self._started_at = [0.0] * processes
        self._pause = [RESTART_PAUSE[0]] * processes
        self._due = [0.0] * processes
        self._stop = False

    def _start(self, slot: int) -> None:
        proc = subprocess.Popen(self.command, env=self.env)
        self.children[slot] = proc
        self._started_at[slot] = time.monotonic()
        self.say(f"interlock worker: process {slot + 1}/{self.processes} started (pid {proc.pid})")

    def _stop_signal(self, *_: object) -> None:
        self._stop = True

    def run(self) -> int:
        """Start the processes, supervise them until SIGTERM / SIGINT, stop them; exit status 0."""
        previous = {sig: signal.signal(sig, self._stop_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.processes):
                self._start(slot)
            while not self._stop:
                self._supervise()
                time.sleep(0.1)
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _supervise(self) -> None:
        now = time.monotonic()
        for slot, proc in enumerate(self.children):
            if proc is None:
                if self.restart and now >= self._due[slot]:
                    self._start(slot)
                continue
            status = proc.poll()
            if status is None:
                continue
            self.children[slot] = None
            lived = now - self._started_at[slot]
            self._pause[slot] = (
                min(self._pause[slot] * 2, RESTART_PAUSE[1]) if lived < 60 else RESTART_PAUSE[0]
            )
            self._due[slot] = now + self._pause[slot]
            again = f"; restarting in {self._pause[slot]:.1f} s" if self.restart else ""
            self.say(
                f"interlock worker: process {slot + 1}/{self.processes} (pid {proc.pid}) exited with {status}{again}"
            )

    def _stop_all(self) -> None:
        live = [p for p in self.children if p is not None and p.poll() is None]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        end = time.monotonic() + self.grace
        for p in live:
            try:
                p.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.say(f"interlock worker: {len(live)} process(es) stopped")

    def __repr__(self) -> str:
        pids = [p.pid for p in self.children if p is not None]
        return f"WorkerProcesses(processes={self.processes}, pids={pids})"
