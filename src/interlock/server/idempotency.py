"""``IdempotencyMiddleware``: the ``Idempotency-Key`` request header on your API
(draft-ietf-httpapi-idempotency-key-header), plain ASGI.

A request with a key (on ``methods``, POST and PATCH by default) runs once. A repeat of the same
key with the same request (method, path, query and body fingerprinted with SHA-256) replays the
stored response, status, headers and body, with ``Idempotent-Replayed: true``; the same key with
a different request is ``422``; a repeat while the first is still running is ``409`` (both RFC
9457 problem details). A response that is a 5xx, that failed, or whose body is larger than
``max_response`` is not stored: the key is released and a retry runs again. Keys expire
``ttl`` seconds after the response is stored; a key whose first request never finished (its
process died) is free again after ``lock_ttl``. ``namespace(scope)`` scopes keys (say per API
key or user) so two clients never share one.

Stores: ``MemoryIdempotencyStore`` (one process, bounded), ``RedisIdempotencyStore`` (many
processes; each step is one command or one Lua script), and ``SQLiteIdempotencyStore`` /
``PostgresIdempotencyStore`` (``interlock.server``; one transaction or statement per step).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import check_count, check_seconds
from ._asgi import ASGIApp, Message, Receive, Scope, Send, header, send_problem
from ._redis import open_redis

__all__ = [
    "IdempotencyMiddleware",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "RedisIdempotencyStore",
    "StoredResponse",
]

_KEY_CHARS = frozenset(map(chr, range(0x21, 0x7F)))


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for replay."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def to_json(self) -> str:
        """The response as JSON text (headers and body base64)."""
        return json.dumps(
            {
                "status": self.status,
                "headers": [
                    [base64.b64encode(k).decode(), base64.b64encode(v).decode()] for k, v in self.headers
                ],
                "body": base64.b64encode(self.body).decode(),
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> StoredResponse:
        """The response ``to_json`` wrote."""
        data = json.loads(text)
        return cls(
            int(data["status"]),
            [(base64.b64decode(k), base64.b64decode(v)) for k, v in data["headers"]],
            base64.b64decode(data["body"]),
        )


@dataclass(frozen=True)
class Begun:
    """What ``begin`` found: ``state`` is ``"started"`` (the caller owns the key, ``token`` proves
    it), ``"running"`` (another request holds it), ``"mismatch"`` (a different request used it) or
    ``"done"`` (``response`` to replay)."""

    state: str
    token: str = ""
    response: StoredResponse | None = None


class IdempotencyStore(Protocol):
    """Where keys and their responses live."""

    async def begin(self, key: str, fingerprint: str, lock_ttl: float) -> Begun:
        """Claim ``key`` for a request with ``fingerprint``, or say who has it."""
        ...

    async def complete(
        self, key: str, token: str, fingerprint: str, response: StoredResponse, ttl: float
    ) -> None:
        """Store the response of the request that claimed ``key``."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Free ``key`` (its request failed) if ``token`` still owns it."""
        ...


class MemoryIdempotencyStore:
    """Keys in this process: at most ``max_keys``, the oldest dropped at the bound."""

    def __init__(self, *, max_keys: int = 10_000, clock: Clock = SYSTEM_CLOCK) -> None:
        check_count("MemoryIdempotencyStore", "max_keys", max_keys)
        self.max_keys = max_keys
        self._clock = clock
        # key -> (fingerprint, token or "", expires at, response or None)
        self._items: OrderedDict[str, tuple[str, str, float, StoredResponse | None]] = OrderedDict()

    async def begin(self, key: str, fingerprint: str, lock_ttl: float) -> Begun:
        """Claim or report, as the Protocol says."""
        now = self._clock.monotonic()
        item = self._items.get(key)
        if item is not None and item[2] > now:
            if item[0] != fingerprint:
                return Begun("mismatch")
            return Begun("done", response=item[3]) if item[3] is not None else Begun("running")
        token = uuid.uuid4().hex
        self._items[key] = (fingerprint, token, now + lock_ttl, None)
        self._items.move_to_end(key)
        while len(self._items) > self.max_keys:
            self._items.popitem(last=False)
        return Begun("started", token)

    async def complete(
        self, key: str, token: str, fingerprint: str, response: StoredResponse, ttl: float
    ) -> None:
        """Keep ``response`` for ``ttl`` seconds."""
        item = self._items.get(key)
        if item is not None and item[1] == token:
            self._items[key] = (fingerprint, "", self._clock.monotonic() + ttl, response)

    async def release(self, key: str, token: str) -> None:
        """Forget the key if ``token`` owns it."""
        item = self._items.get(key)
        if item is not None and item[1] == token:
            del self._items[key]

    def __repr__(self) -> str:
        return f"<MemoryIdempotencyStore keys={len(self._items)}/{self.max_keys}>"


# KEYS[1]; ARGV: fingerprint, token, lock_ttl_ms. Claims the key or returns what holds it.
_BEGIN = """
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], cjson.encode({fp = ARGV[1], token = ARGV[2]}), 'PX', ARGV[3])
return false
"""
# KEYS[1]; ARGV: token, value, ttl_ms (complete) or token only (release, when value is '').
_FINISH = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, item = pcall(cjson.decode, v)
if not ok or item.token ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"""


class RedisIdempotencyStore:
    """Keys in Redis under ``namespace``, shared by every process. ``client`` is borrowed when
    given; otherwise one is opened for ``url``, each command bounded by ``timeout`` and at
    most ``max_connections`` connections (requests beyond wait for one, up to ``timeout``)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "interlock:idem:",
        client: Any = None,
        timeout: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        check_seconds("RedisIdempotencyStore", "timeout", timeout, positive=True)
        check_count("RedisIdempotencyStore", "max_connections", max_connections)
        self.url = url
        self.namespace = namespace
        self._own = client is None
        if client is None:
            client = open_redis(
                url, timeout=timeout, max_connections=max_connections, owner="RedisIdempotencyStore"
            )
        self._redis: Any = client
        self._begin = self._redis.register_script(_BEGIN)
        self._finish = self._redis.register_script(_FINISH)

    async def begin(self, key: str, fingerprint: str, lock_ttl: float) -> Begun:
        """One script: claim the key with a lease of ``lock_ttl``, or return what holds it."""
        token = uuid.uuid4().hex
        held = await self._begin(
            keys=[self.namespace + key], args=[fingerprint, token, max(1, int(lock_ttl * 1000))]
        )
        if held is None:
            return Begun("started", token)
        item = json.loads(held)
        if item["fp"] != fingerprint:
            return Begun("mismatch")
        if "response" in item:
            return Begun("done", response=StoredResponse.from_json(item["response"]))
        return Begun("running")

    async def complete(
        self, key: str, token: str, fingerprint: str, response: StoredResponse, ttl: float
    ) -> None:
        """Store the response in place of the lease, for ``ttl`` seconds."""
        value = json.dumps({"fp": fingerprint, "token": "", "response": response.to_json()})
        await self._finish(keys=[self.namespace + key], args=[token, value, max(1, int(ttl * 1000))])

    async def release(self, key: str, token: str) -> None:
        """Delete the lease if ``token`` still owns it."""
        await self._finish(keys=[self.namespace + key], args=[token, "", 0])

    async def aclose(self) -> None:
        """Close the client if this store opened it."""
        if self._own:
            await self._redis.aclose()

    def __repr__(self) -> str:
        return f"<RedisIdempotencyStore namespace={self.namespace!r}>"


class IdempotencyMiddleware:
    """ASGI middleware honouring ``Idempotency-Key`` (``header``) on ``methods``; see the module
    docstring. ``store``: ``MemoryIdempotencyStore()`` by default. ``max_body``: the largest
    request body read to fingerprint (413 above). ``required=True`` answers 400 to a request on
    ``methods`` without a key."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: IdempotencyStore | None = None,
        methods: Sequence[str] = ("POST", "PATCH"),
        header: str = "Idempotency-Key",
        ttl: float = 86_400.0,
        lock_ttl: float = 60.0,
        max_body: int = 1024 * 1024,
        max_response: int = 1024 * 1024,
        namespace: Callable[[Scope], str] | None = None,
        required: bool = False,
    ) -> None:
        check_seconds("IdempotencyMiddleware", "ttl", ttl, positive=True)
        check_seconds("IdempotencyMiddleware", "lock_ttl", lock_ttl, positive=True)
        check_count("IdempotencyMiddleware", "max_body", max_body)
        check_count("IdempotencyMiddleware", "max_response", max_response, minimum=0)
        self.app = app
        self.store: IdempotencyStore = store if store is not None else MemoryIdempotencyStore()
        self.methods = tuple(m.upper() for m in methods)
        self.header = header
        self._header = header.lower().encode("latin-1")
        self.ttl = ttl
        self.lock_ttl = lock_ttl
        self.max_body = max_body
        self.max_response = max_response
        self.namespace = namespace
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request once per key; replay, 409 or 422 for repeats."""
        if scope["type"] != "http" or scope.get("method") not in self.methods:
            await self.app(scope, receive, send)
            return
        raw = header(scope.get("headers", []), self._header)
        if raw is None:
            if self.required:
                await send_problem(
                    send,
                    400,
                    "idempotency-key-missing",
                    "Idempotency-Key required",
                    f"Send a {self.header} header.",
                )
                return
            await self.app(scope, receive, send)
            return
        key = raw.decode("latin-1")
        if not 1 <= len(key) <= 255 or not set(key) <= _KEY_CHARS:
            await send_problem(
                send,
                400,
                "idempotency-key-invalid",
                "Invalid Idempotency-Key",
                f"{self.header} must be 1-255 visible ASCII characters.",
            )
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await send_problem(
                    send,
                    413,
                    "payload-too-large",
                    "Content Too Large",
                    f"The body is larger than {self.max_body} bytes.",
                )
                return
            if not message.get("more_body", False):
                break
        digest = hashlib.sha256()
        for part in (scope.get("method", ""), scope.get("path", ""), scope.get("query_string", b"")):
            digest.update(part.encode() if isinstance(part, str) else bytes(part))
            digest.update(b"\0")
        digest.update(bytes(body))
        fingerprint = digest.hexdigest()
        full_key = (self.namespace(scope) + ":" if self.namespace else "") + key
        begun = await self.store.begin(full_key, fingerprint, self.lock_ttl)
        if begun.state == "mismatch":
            await send_problem(
                send,
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                f"This {self.header} was used for a different request; use a new key for a new request.",
            )
            return
        if begun.state == "running":
            await send_problem(
                send,
                409,
                "idempotency-key-in-use",
                "Request in progress",
                f"A request with this {self.header} is still running; retry later.",
                [(b"retry-after", b"1")],
            )
            return
        if begun.state == "done" and begun.response is not None:
            stored = begun.response
            await send(
                {
                    "type": "http.response.start",
                    "status": stored.status,
                    "headers": [*stored.headers, (b"idempotent-replayed", b"true")],
                }
            )
            await send({"type": "http.response.body", "body": stored.body, "more_body": False})
            return
        await self._run(scope, send, bytes(body), full_key, begun.token, fingerprint)

    async def _run(
        self, scope: Scope, send: Send, body: bytes, key: str, token: str, fingerprint: str
    ) -> None:
        delivered = False
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray(), "complete": False}

        async def replay_body() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send_captured(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = int(message["status"])
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                if len(captured["body"]) <= self.max_response:
                    captured["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    captured["complete"] = True
            await send(message)

        stored = False
        try:
            await self.app(scope, replay_body, send_captured)
            if (
                captured["complete"]
                and captured["status"] < 500
                and len(captured["body"]) <= self.max_response
            ):
                response = StoredResponse(captured["status"], captured["headers"], bytes(captured["body"]))
                await self.store.complete(key, token, fingerprint, response, self.ttl)
                stored = True
        finally:
            if not stored:
                await self.store.release(key, token)

    def __repr__(self) -> str:
        return f"<IdempotencyMiddleware header={self.header!r} store={self.store!r} ttl={self.ttl:g}>"
