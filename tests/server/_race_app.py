"""The app the 4-process race serves (``uvicorn --workers 4 --app-dir tests/server _race_app:app``):
one route behind RateLimit on Redis, configured from the environment."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from interlock.server import Limit, RateLimitMiddleware, RedisRateLimitBackend


async def hello(request: object) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[Route("/", hello)],
    middleware=[
        Middleware(
            RateLimitMiddleware,
            limits=[Limit("race", int(os.environ["RACE_LIMIT"]), 3600.0)],
            backend=RedisRateLimitBackend(
                os.environ["RACE_REDIS"], namespace=os.environ["RACE_PREFIX"], timeout=5.0
            ),
            timeout=5.0,
        )
    ],
)
