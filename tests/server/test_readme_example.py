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
async def test_the_readme_stack_serves_a_fastapi_app(redis_url: str, redis_prefix: str) -> None:
    original = 'RedisRateLimitBackend("redis://127.0.0.1:6379/0")'
    code = _example()
    assert original in code
    code = code.replace(
        original, f"RedisRateLimitBackend({redis_url!r}, namespace={redis_prefix!r}, timeout=5.0)"
    )
    assert "fail_open=True)" in code  # and a check may take long on a loaded machine, not fail open
    code = code.replace("fail_open=True)", "fail_open=True, timeout=5.0)")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
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
