"""``interlock serve`` / ``worker`` / ``check`` as processes: the bound URL first on stdout,
SIGTERM exits 0, every mistake one line on stderr and exit 2."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

INTERLOCK = str(Path(sys.executable).with_name("interlock"))
EXAMPLE = Path(__file__).parents[2] / "examples" / "interlock.toml"


def run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INTERLOCK, *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def one_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr


def start(*args: str, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([INTERLOCK, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
    return proc, url


def get(url: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def children(parent: int) -> set[int]:
    """The serving processes whose parent is ``parent`` (from /proc; multiprocessing's
    resource tracker left out)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == parent and b"resource_tracker" not in cmdline:
                found.add(int(entry.name))
    return found


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "interlock.toml"
    path.write_text(text)
    return path


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then the exit status and what it wrote on stderr (its pipes closed)."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_serve_runs_the_example_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    proc, url = start("serve", "-c", str(EXAMPLE), "--port", "0", cwd=tmp_path)
    try:
        assert get(f"{url}/healthz")["status"] == "ok"
        ready = get(f"{url}/readyz")
        assert ready["store"] == "ok" and ready["workers"] == "running"
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err
    assert (tmp_path / "interlock.db").exists()  # the example's store, relative to where it runs


def test_serve_mistakes_are_one_line(tmp_path: Path) -> None:
    one_line(run("serve", "-c", str(tmp_path / "missing.toml"), cwd=tmp_path), "missing.toml: no such file")
    bad = write(tmp_path, "[server]\nprot = 1\n")
    one_line(run("serve", "-c", str(bad), cwd=tmp_path), "server.prot: unknown key 'prot'; did you mean 'port'?")
    ok = write(tmp_path, "[store]\nurl = 'sqlite:///x.db'\n")
    one_line(run("serve", "-c", str(ok), "--workers", "2", cwd=tmp_path), "cannot share a SQLite store")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line(run("serve", "-c", str(ok), "--port", str(port), cwd=tmp_path), f"cannot listen on 127.0.0.1:{port}")
    one_line(run("serve", "-c", str(ok), "--port", "70000", cwd=tmp_path), "--port")
    down = write(tmp_path, "[store]\nurl = 'postgresql://postgres@127.0.0.1:1/test'\n")
    one_line(run("serve", "-c", str(down), cwd=tmp_path), "cannot open the store postgresql://postgres@127.0.0.1:1/test")
    one_line(run("worker", "-c", str(down), cwd=tmp_path), "cannot open the store")
    handler = write(tmp_path, "[sources.b]\nscheme = 'github'\nsecrets = ['s']\nhandler = 'nope_mod_x:f'\n")
    one_line(run("serve", "-c", str(handler), cwd=tmp_path), "sources.b.handler: cannot import module 'nope_mod_x'")


def test_worker_mistakes_and_a_clean_stop(tmp_path: Path) -> None:
    one_line(run("worker", "-c", str(tmp_path / "missing.toml"), cwd=tmp_path), "no such file")
    path = write(tmp_path, "[store]\nurl = 'sqlite:///w.db'\n[sources.b]\nscheme = 'github'\nsecrets = ['s']\nhandler = 'json:dumps'\n")
    proc = subprocess.Popen([INTERLOCK, "worker", "-c", str(path)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "interlock worker:" in line
    code, err = stop(proc)
    assert code == 0, err


@pytest.mark.postgres
def test_serve_with_several_processes_on_postgres(tmp_path: Path, postgres_dsn: str) -> None:
    path = write(tmp_path, f"[server]\nworkers = 2\n[store]\nurl = '{postgres_dsn}'\n")
    proc, url = start("serve", "-c", str(path), "--port", "0", cwd=tmp_path)
    try:
        pid = get(f"{url}/healthz")["pid"]
        assert pid != proc.pid  # answered by a worker process, not the supervisor
        assert get(f"{url}/readyz")["store"] == "ok"
        deadline = time.monotonic() + 30
        while len(children(proc.pid)) < 2:  # both serving processes are up
            assert time.monotonic() < deadline, children(proc.pid)
            time.sleep(0.1)
        assert pid in children(proc.pid)
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_stats_reads_a_running_service(tmp_path: Path) -> None:
    token = "stats-admin-token-0123456789"
    path = write(tmp_path, f"[server]\nadmin_token = '{token}'\n[store]\nurl = 'sqlite:///s.db'\n"
                 "[upstreams.crm]\nbase_url = 'http://127.0.0.1:9'\n"
                 "[sources.b]\nscheme = 'github'\nsecrets = ['s']\nhandler = 'json:dumps'\n")
    proc, url = start("serve", "-c", str(path), "--port", "0", cwd=tmp_path)
    try:
        get(f"{url}/healthz")
        shown = run("stats", "--url", url, "--token", token, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "crm" in shown.stdout and "closed" in shown.stdout and "github" in shown.stdout
        as_json = run("stats", "--url", url, "--token", token, "--json", cwd=tmp_path)
        assert json.loads(as_json.stdout)["upstreams"]["upstreams"][0]["name"] == "crm"
        one_line(run("stats", "--url", url, "--token", "wrong-token-000", cwd=tmp_path), "answered 401")
    finally:
        code, err = stop(proc)
    assert code == 0, err
    one_line(run("stats", "--url", url, "--token", token, cwd=tmp_path), f"cannot reach the service at {url}")
    one_line(run("stats", "-c", str(tmp_path / "none.toml"), cwd=tmp_path), "none.toml: no such file")


async def test_an_acknowledged_webhook_survives_sigkill(tmp_path: Path) -> None:
    import asyncio
    import hashlib
    import hmac

    from .conftest import Origin

    async with Origin() as origin:
        base = (
            "[store]\nurl = 'sqlite:///kill.db'\n"
            f"[sources.gh]\nscheme = 'github'\nsecrets = ['gh-secret']\nforward = '{origin.url}/hooks'\n"
        )
        # First process: ingress only, so the event is stored and acknowledged, not yet handled.
        first = write(tmp_path, "[server]\nrun_workers = false\n" + base)
        proc, url = start("serve", "-c", str(first), "--port", "0", cwd=tmp_path)
        try:
            body = b'{"action": "opened"}'
            signature = "sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
            headers = {"X-Hub-Signature-256": signature, "X-GitHub-Delivery": "d-1", "X-GitHub-Event": "push",
                       "Content-Type": "application/json"}
            req = urllib.request.Request(f"{url}/hooks/gh", data=body, headers=headers, method="POST")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            status = await asyncio.to_thread(lambda: opener.open(req, timeout=10).status)
            assert status in (200, 202)
        finally:
            proc.kill()  # SIGKILL: no shutdown at all
            proc.communicate(timeout=30)
        assert origin.requests == []
        # Second process, with workers: the acknowledged event is handled.
        second = tmp_path / "second.toml"
        second.write_text(base)
        proc, url = start("serve", "-c", str(second), "--port", "0", cwd=tmp_path)
        try:
            for _ in range(400):
                if origin.requests:
                    break
                await asyncio.sleep(0.05)
        finally:
            code, err = stop(proc)
        assert code == 0, err
        [(method, path, seen, got)] = origin.requests
        assert (method, path, got) == ("POST", "/hooks", body)
        assert {k.lower(): v for k, v in seen.items()}["x-interlock-event-id"] == "d-1"


def test_sigterm_lets_the_handler_in_flight_finish(tmp_path: Path) -> None:
    import hashlib
    import hmac
    import os

    (tmp_path / "slow_hooks.py").write_text(
        "import asyncio, pathlib\n"
        "async def on_event(event):\n"
        "    pathlib.Path('started').write_text(event.id)\n"
        "    await asyncio.sleep(1.5)\n"
        "    pathlib.Path('finished').write_text(event.id)\n"
    )
    path = write(tmp_path, "[server]\ngrace = 20\n[store]\nurl = 'sqlite:///grace.db'\n"
                 "[sources.gh]\nscheme = 'github'\nsecrets = ['gh-secret']\nhandler = 'slow_hooks:on_event'\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen([INTERLOCK, "serve", "-c", str(path), "--port", "0"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        body = b'{"action": "opened"}'
        signature = "sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": signature, "X-GitHub-Delivery": "d-grace", "X-GitHub-Event": "push",
                   "Content-Type": "application/json"}
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(urllib.request.Request(f"{url}/hooks/gh", data=body, headers=headers, method="POST"), timeout=10).close()
        deadline = time.monotonic() + 20
        while not (tmp_path / "started").exists():  # the handler is in flight
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not (tmp_path / "finished").exists()
    finally:
        code, err = stop(proc)  # SIGTERM while the handler sleeps
    assert code == 0, err
    assert (tmp_path / "finished").read_text() == "d-grace"  # it was let finish
    import asyncio

    from interlock.stores.queue_sqlite import SQLiteQueue

    async def pending() -> int:  # its event acknowledged, not left to redeliver
        async with SQLiteQueue(f"sqlite:///{tmp_path / 'grace.db'}") as queue:
            return (await queue.stats()).pending

    assert asyncio.run(pending()) == 0
