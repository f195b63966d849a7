"""``SyncClient``: the Client's surface for synchronous code. One private event loop runs in a
daemon thread; each call is submitted to it and waited for, so policies (breaker, concurrency,
rate limit) are shared by every thread that uses the same SyncClient."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from .._models import Response
from ._client import Client

T = TypeVar("T")


class SyncClient:
    """``Client`` for synchronous code: the same options and verbs, answers returned directly.
    Thread-safe: every thread using one SyncClient shares its breaker, limits and connections."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="interlock-sync", daemon=True)
        self._thread.start()
        self._client: Client = self._run(self._create(base_url, options))

    @staticmethod
    async def _create(base_url: str, options: dict[str, Any]) -> Client:
        return Client(base_url, **options)  # inside the loop: policies bind to it

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError(f"{self!r} is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def client(self) -> Client:
        """The async Client underneath (its methods must run on this SyncClient's loop)."""
        return self._client

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        return self._run(self._client.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Response:
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)

    def paginate(self, path: str, **options: Any) -> Iterator[Any]:
        """Every item of a listing (see ``Client.paginate``); the next page is fetched on the
        client's loop while this thread works on the current one."""
        paginator = self._client.paginate(path, **options)
        try:
            while True:
                try:
                    yield self._run(paginator.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if self._thread.is_alive():
                self._run(paginator.aclose())

    def stats(self) -> dict[str, Any]:
        return self._client.stats()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncClient {self._client!r}>" if hasattr(self, "_client") else "<SyncClient>"
