"""``examples/interlock.toml`` runs as is against ``interlock testbed`` on its default port:
a proxied read reaches the testbed, a signed webhook is forwarded to it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import standardwebhooks

from interlock.testbed import spawn_testbed

INTERLOCK = str(Path(sys.executable).with_name("interlock"))
EXAMPLE = Path(__file__).parents[2] / "examples" / "interlock.toml"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the example's default
TOKEN = "change-me-dev-admin-token"  # the example's default


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}


def test_the_example_runs_as_is_against_the_testbed(tmp_path: Path) -> None:
    if not (port_free(8080) and port_free(8000)):
        pytest.skip("ports 8080 (interlock testbed's default) and 8000 (the example's) must be free for this test")
    with spawn_testbed(port=8080) as tb:
        proc = subprocess.Popen([INTERLOCK, "serve", "-c", str(EXAMPLE)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert url == "http://127.0.0.1:8000"
            status, body, headers = request(f"{url}/proxy/crm/products/3")
            assert status == 200 and json.loads(body)["id"] == 3
            assert headers["x-interlock-cache"] == "miss"
            assert request(f"{url}/proxy/crm/products/3")[2]["x-interlock-cache"] == "hit"
            payload = json.dumps({"customer_id": 1, "total_cents": 500}).encode()
            signature = standardwebhooks.Webhook(SECRET).sign("msg_example", datetime.now(UTC), payload.decode())
            hook = {"webhook-id": "msg_example", "webhook-timestamp": str(int(time.time())),
                    "webhook-signature": signature, "Content-Type": "application/json"}
            status, _, _ = request(f"{url}/hooks/billing", payload, hook)
            assert status in (200, 202)
            deadline = time.monotonic() + 20
            while True:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{tb.url}/_testbed/requests") as resp:
                    seen = json.loads(resp.read())["requests"]
                if any(r["method"] == "POST" and r["path"] == "/orders" for r in seen):
                    break
                assert time.monotonic() < deadline, seen[-5:]
                time.sleep(0.1)
            status, body, _ = request(f"{url}/admin/api/v1/sources", headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 200 and json.loads(body)["sources"][0]["name"] == "billing"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
