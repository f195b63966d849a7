"""``DataLoader``: the N+1 problem inside one request, solved by coalescing and batching.

::

    async def users_by_id(ids: list[int]) -> dict[int, User]:
        rows = await db.fetch("SELECT ... WHERE id = ANY($1)", ids)
        return {row["id"]: User(**row) for row in rows}

    async def endpoint(request):
        users = request_loader(request.scope, users_by_id)
        orders = await fetch_orders()
        owners = await asyncio.gather(*(users.load(o.user_id) for o in orders))  # one query

Every ``load(key)`` made in the same event-loop tick goes to one ``batch_fn(keys)`` call (at
most ``max_batch`` keys per call; more make several calls); the same key twice shares one
result. ``batch_fn`` returns a mapping ``key -> value`` (a key it leaves out raises ``KeyError``
at its ``load``) or a sequence in the order of ``keys``; if it raises, every ``load`` of that
batch raises the same error. Results are memoized for the loader's life, at most ``max_keys``
of them (at the bound the memo is cleared): make one loader per request, as
``request_loader(scope, batch_fn)`` does, so no request sees another's data or stale values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from .._validate import check_count
from ._asgi import Scope

__all__ = ["DataLoader", "request_loader"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

BatchFunction = Callable[[list[K]], Awaitable["Mapping[K, V] | Sequence[V]"]]


class DataLoader(Generic[K, V]):
    """Coalesces and batches ``load(key)`` calls into ``batch_fn(keys)``; see the module
    docstring. ``max_batch``: keys per call; ``max_keys``: the bound of the memo."""

    def __init__(
        self, batch_fn: BatchFunction[K, V], *, max_batch: int = 100, max_keys: int = 10_000
    ) -> None:
        check_count("DataLoader", "max_batch", max_batch)
        check_count("DataLoader", "max_keys", max_keys)
        self.batch_fn = batch_fn
        self.max_batch = max_batch
        self.max_keys = max_keys
        self._memo: dict[K, asyncio.Future[V]] = {}
        self._pending: list[K] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()  # held so a running batch is not collected
        self.batches = 0
        """How many times ``batch_fn`` was called."""

    async def load(self, key: K) -> V:
        """The value for ``key``, from the batch of this tick."""
        future = self._memo.get(key)
        if future is None:
            if len(self._memo) >= self.max_keys:
                self._memo.clear()
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._memo[key] = future
            self._pending.append(key)
            if len(self._pending) >= self.max_batch:
                self._dispatch()
            elif not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._dispatch)
        return await asyncio.shield(future)

    async def load_many(self, keys: Iterable[K]) -> list[V]:
        """The values for ``keys``, in order, in as few batches as ``max_batch`` allows."""
        return list(await asyncio.gather(*(self.load(k) for k in keys)))

    def _dispatch(self) -> None:
        self._scheduled = False
        keys, self._pending = self._pending, []
        if keys:
            self.batches += 1
            futures = [self._memo[k] for k in keys]
            task = asyncio.get_running_loop().create_task(self._run(keys, futures))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, keys: list[K], futures: list[asyncio.Future[V]]) -> None:
        try:
            result = await self.batch_fn(list(keys))
        except Exception as exc:
            for key, future in zip(keys, futures, strict=True):
                self._memo.pop(key, None)  # a failure is not memoized: a later load retries
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (key, future) in enumerate(zip(keys, futures, strict=True)):
            if future.done():
                continue
            if isinstance(result, Mapping):
                if key in result:
                    future.set_result(result[key])
                else:
                    future.set_exception(KeyError(key))
            elif i < len(result):
                future.set_result(result[i])
            else:
                future.set_exception(
                    ValueError(f"batch_fn returned {len(result)} values for {len(keys)} keys")
                )

    def __repr__(self) -> str:
        name = getattr(self.batch_fn, "__qualname__", repr(self.batch_fn))
        return f"<DataLoader {name} memo={len(self._memo)}/{self.max_keys} batches={self.batches}>"


def request_loader(scope: Scope, batch_fn: BatchFunction[Any, Any], **options: int) -> DataLoader[Any, Any]:
    """The loader of ``batch_fn`` for this request (created on first use, kept in the ASGI
    scope, gone with it). ``options``: ``max_batch`` / ``max_keys`` for ``DataLoader``."""
    loaders: dict[Any, DataLoader[Any, Any]] = scope.setdefault("interlock.loaders", {})
    loader = loaders.get(batch_fn)
    if loader is None:
        loader = loaders[batch_fn] = DataLoader(batch_fn, **options)
    return loader
