"""``SyncClient``: the Client's surface for synchronous code. One private event loop runs in a
daemon thread; each call is submitted to it and waited for, so policies (breaker, concurrency,
rate limit) are shared by every thread that uses the same SyncClient."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .._models import Response
from ..stores.interactions import Interaction
from ._client import Client, ParamValue

__all__ = ["SyncClient"]

T = TypeVar("T")


class SyncClient:
    """``Client`` for synchronous code: the same options (``SyncClient(base_url, **options)``
    takes ``Client``'s keywords) and verbs, answers returned directly. Thread-safe: every thread
    using one SyncClient shares its breaker, limits and connections. Close it with ``close()``
    or use it as ``with SyncClient(...) as api:``."""

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

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        idempotency_key: str | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
    ) -> Response:
        """Send one call with any method and wait for its answer (see ``Client.build_request``
        for the options)."""
        call = self._client.request(
            method,
            path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
        )
        return self._run(call)

    def get(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
    ) -> Response:
        """GET ``path`` (cached, coalesced and batched as ``Client.get`` is)."""
        call = self._client.get(
            path,
            params=params,
            headers=headers,
            route=route,
            timeout=timeout,
            fields=fields,
        )
        return self._run(call)

    def head(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
    ) -> Response:
        """HEAD ``path``."""
        call = self._client.head(
            path,
            params=params,
            headers=headers,
            route=route,
            timeout=timeout,
            fields=fields,
        )
        return self._run(call)

    def post(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        idempotency_key: str | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
    ) -> Response:
        """POST ``path``; retried only with an idempotency key, generated unless switched off
        (see ``Client.post``)."""
        call = self._client.post(
            path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
        )
        return self._run(call)

    def put(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        idempotency_key: str | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
    ) -> Response:
        """PUT ``path`` (idempotent: retried like a read)."""
        call = self._client.put(
            path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
        )
        return self._run(call)

    def patch(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        idempotency_key: str | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
    ) -> Response:
        """PATCH ``path``; like POST, retried only with its idempotency key, generated unless
        switched off."""
        call = self._client.patch(
            path,
            params=params,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
        )
        return self._run(call)

    def delete(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        route: str | None = None,
        timeout: float | None = None,
        fields: Iterable[str] | None = None,
    ) -> Response:
        """DELETE ``path`` (idempotent: retried like a read)."""
        call = self._client.delete(
            path,
            params=params,
            headers=headers,
            idempotency_key=idempotency_key,
            route=route,
            timeout=timeout,
            fields=fields,
        )
        return self._run(call)

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

    def interactions(
        self,
        *,
        tracking_id: str | None = None,
        correlation_id: str | None = None,
        trace_id: str | None = None,
        route: str | None = None,
        failed: bool | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[Interaction]:
        """The calls kept in the client's interaction log, newest first (``Client.interactions``)."""
        return self._run(
            self._client.interactions(
                tracking_id=tracking_id, correlation_id=correlation_id, trace_id=trace_id, route=route,
                failed=failed, since=since, until=until, limit=limit,
            )
        )  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """The async client's ``stats()``: breaker, in-flight, retries, latency."""
        return self._client.stats()

    def close(self) -> None:
        """Close the client and stop its event loop thread. Calls after this raise."""
        if not self._thread.is_alive():
            return
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncClient {self._client!r}>" if hasattr(self, "_client") else "<SyncClient>"
