"""The README's FastAPI example runs as written, the whole stack over real uvicorn and Redis."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import serve

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    section = README.read_text(encoding="utf-8").split("## Serving your own API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.redis
async def test_the_readme_stack_serves_a_fastapi_app(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    code = _example()
    limiter = 'RedisRateLimitBackend("redis://127.0.0.1:6379/0")'
    idem = 'RedisIdempotencyStore("redis://127.0.0.1:6379/0")'
    store = 'store="sqlite:///jobs.db"'
    for original in (limiter, idem, store):
        assert original in code
    code = code.replace(
        limiter, f"RedisRateLimitBackend({redis_url!r}, namespace={redis_prefix + 'rl:'!r}, timeout=5.0)"
    )
    code = code.replace(idem, f"RedisIdempotencyStore({redis_url!r}, namespace={redis_prefix + 'idem:'!r})")
    code = code.replace(store, f"store={str(tmp_path / 'jobs.db')!r}")
    assert "fail_open=True)" in code  # and a check may take long on a loaded machine, not fail open
    code = code.replace("fail_open=True)", "fail_open=True, timeout=5.0)")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    jobs = namespace["jobs"]
    async with serve(namespace["app"]) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get(
            "/users/7", params={"fields": "id,stats.total_bookings"}, headers={"x-api-key": "k1"}
        )
        assert r.status_code == 200
        assert r.json() == {"id": 7, "stats": {"total_bookings": 3}}
        assert r.headers["ratelimit-policy"] == '"per-ip";q=100;w=60, "daily";q=10000;w=86400'
        assert r.headers["x-content-type-options"] == "nosniff"
        assert len(r.headers["x-request-id"]) == 24
        etag = r.headers["etag"]
        again = await http.get(
            "/users/7", params={"fields": "id,stats.total_bookings"}, headers={"if-none-match": etag}
        )
        assert (again.status_code, again.content) == (304, b"")
        bad = await http.get("/users/7", params={"fields": "nope"})
        assert bad.status_code == 400

        # Pagination: follow the Link headers; a tampered cursor is a 400.
        ids: list[int] = []
        url: str | None = "/users?limit=20"
        while url:
            page = await http.get(url)
            ids += [u["id"] for u in page.json()["data"]]
            link = page.headers.get("link")
            url = link.split(">", 1)[0].lstrip("<") if link else None
        assert ids == list(range(1, 51))
        cursor = (await http.get("/users")).json()["next_cursor"]
        tampered = await http.get("/users", params={"cursor": "A" + cursor[1:]})
        assert tampered.status_code == 400 and tampered.json()["type"].endswith("/invalid-cursor")

        # 202 jobs behind an idempotency key: the repeat replays the same 202 and job id.
        key = {"idempotency-key": "export-1"}
        accepted = await http.post("/exports", json={"format": "csv"}, headers=key)
        repeat = await http.post("/exports", json={"format": "csv"}, headers=key)
        assert accepted.status_code == 202 and repeat.status_code == 202
        assert repeat.headers["idempotent-replayed"] == "true"
        assert repeat.json()["id"] == accepted.json()["id"]
        location = accepted.headers["location"]
        worker = jobs.worker().start()
        try:
            await jobs.wait(accepted.json()["id"], 30.0)
        finally:
            await worker.aclose()
        done = (await http.get(location)).json()
        assert (done["status"], done["result"], done["progress"]) == ("succeeded", {"users": 50}, 0.5)
    await jobs.aclose()
