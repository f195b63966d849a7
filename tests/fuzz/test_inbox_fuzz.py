"""Hypothesis-driven malformed deliveries against the real ASGI app of a real Inbox (SQLite file).

Whatever arrives (any method, path, header set, Content-Length, chunking, body; signed with the
right secret or not; JSON nested deep, holding NULs, lone surrogates, huge numbers), the app
answers exactly once, with a JSON body and a 4xx or a 200, never a 5xx; only a store that fails
or does not answer in time turns into 503.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import interlock
from interlock.inbox import InboxApp
from interlock.stores import Message
from interlock.stores.queue_sqlite import SQLiteQueue

SECRET = "fuzz-secret"
STRIPE_SECRET = "whsec_fuzz"
MAX_BODY = 4096
CLIENT_ERRORS = {400, 401, 404, 405, 408, 413}
EXAMPLES = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@dataclass
class Delivery:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes]
    disconnect_after: int | None = None
    """Send ``http.disconnect`` after this many chunks (the sender went away mid-body)."""


@dataclass
class Reply:
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])


# -- what a sender may send ----------------------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=30),
    st.sampled_from(["\x00", "\ud800", "a\udfffb", "\u0000id", "x" * 600, "[{", "\\", '"']),
)
json_docs = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A JSON body: an event-shaped object with hostile values, or something else entirely."""
    shape = draw(st.sampled_from(["event", "any", "deep", "raw"]))
    if shape == "raw":
        return draw(st.binary(max_size=600))
    if shape == "deep":
        depth = draw(st.sampled_from([50, 99, 100, 101, 150, 999, 1000, 1500]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode()
    doc: Any = draw(json_docs)
    if shape == "event":
        doc = {"id": draw(json_scalars), "type": draw(json_scalars), "customer": draw(json_scalars), "data": doc}
    try:
        text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    except (ValueError, RecursionError):
        return b"{}"
    return text.encode("utf-8", errors=draw(st.sampled_from(["surrogatepass", "replace"])))


def sign(source: str, body: bytes, now: int) -> list[tuple[bytes, bytes]]:
    """The headers that make ``body`` validly signed for ``source``."""
    if source == "github":
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return [(b"x-hub-signature-256", f"sha256={digest}".encode())]
    if source == "shop":
        return [(b"x-sig", hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().encode())]
    signed = f"{now}.".encode() + body
    digest = hmac.new(STRIPE_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return [(b"stripe-signature", f"t={now},v1={digest}".encode())]


@st.composite
def deliveries(draw: st.DrawFn) -> Delivery:
    source = draw(st.sampled_from(["github", "shop", "stripe"]))
    # Mostly well addressed and signed, so the bodies reach the parser and the store.
    path = f"/hooks/{source}"
    if draw(st.integers(0, 9)) == 0:
        path = draw(
            st.one_of(
                st.sampled_from([f"/hooks/{source}/", "/hooks/", "/hooks", "/", "/hooks//github", "/other"]),
                st.builds(lambda s: "/hooks/" + s, st.text(max_size=300)),
            )
        )
    method = "POST"
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "post"]))
    body = draw(documents())
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.integers(0, 4)) > 0:
        headers += sign(source, body, int(time.time()) - draw(st.sampled_from([0, 0, 0, 299, 301, -400, 10**6])))
    else:
        name = draw(st.sampled_from([b"x-hub-signature-256", b"x-sig", b"stripe-signature", b"x-other"]))
        headers.append((name, draw(header_text).encode("latin-1")))
    headers.append((b"x-github-delivery", draw(st.one_of(header_text, st.just("d-1"))).encode("latin-1")))
    headers.append((b"x-github-event", draw(header_text).encode("latin-1")))
    for name, value in draw(st.lists(st.tuples(header_text, header_text), max_size=5)):
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    length = draw(st.sampled_from(["exact"] * 6 + ["none", "garbage", "short", "long", "huge", "negative"]))
    declared = {
        "exact": str(len(body)), "garbage": draw(header_text), "short": str(max(0, len(body) - 3)),
        "long": str(len(body) + 7), "huge": str(10**20), "negative": "-5",
    }.get(length)
    if declared is not None:
        headers.append((b"content-length", declared.encode("latin-1")))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=4)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    disconnect = None
    if draw(st.integers(0, 9)) == 0:
        disconnect = draw(st.integers(min_value=0, max_value=len(chunks)))
    return Delivery(method, path, headers, chunks, disconnect)


# -- running them --------------------------------------------------------------------------------


async def deliver(app: InboxApp, d: Delivery) -> Reply:
    scope = {"type": "http", "method": d.method, "path": d.path, "root_path": "", "headers": d.headers}
    reads = 0
    reply = Reply()

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if d.disconnect_after is not None and reads > d.disconnect_after:
            return {"type": "http.disconnect"}
        if reads <= len(d.chunks):
            return {"type": "http.request", "body": d.chunks[reads - 1], "more_body": reads < len(d.chunks)}
        await asyncio.sleep(3600)  # a sender that never finishes: the body deadline answers
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        reply.messages.append(message)

    await asyncio.wait_for(app(scope, receive, send), 30)
    return reply


def check(reply: Reply, allowed: set[int]) -> None:
    if not reply.messages:
        return  # the sender went away before the body was read: nobody to answer
    starts = [m for m in reply.messages if m["type"] == "http.response.start"]
    assert len(starts) == 1, reply.messages
    assert reply.status in allowed, reply.messages
    body = b"".join(m.get("body", b"") for m in reply.messages if m["type"] == "http.response.body")
    assert isinstance(json.loads(body), dict)


def configure(box: interlock.Inbox) -> None:
    box.source("github", interlock.signatures.GitHub(SECRET), max_body=MAX_BODY)
    box.source(
        "shop", interlock.signatures.HMAC(SECRET, header="X-Sig"), dedupe="$.id", event_type="$.type",
        ordering_key="$.customer", max_body=MAX_BODY,
    )
    box.source("stripe", interlock.signatures.Stripe(STRIPE_SECRET), max_body=MAX_BODY, ordering_key="$.customer")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One loop for a whole hypothesis run (each example is one request on it)."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def run_examples(
    loop: asyncio.AbstractEventLoop, box: interlock.Inbox, allowed: set[int]
) -> Callable[[], None]:
    app = box.asgi()

    @EXAMPLES
    @given(d=deliveries())
    def one(d: Delivery) -> None:
        reply = loop.run_until_complete(deliver(app, d))
        event(f"HTTP {reply.status}" if reply.messages else "no answer (sender gone)")
        check(reply, allowed)

    return one


def test_malformed_deliveries_are_never_a_5xx(loop: asyncio.AbstractEventLoop, sqlite_path: str) -> None:
    box = interlock.Inbox(store=f"sqlite:///{sqlite_path}", body_timeout=0.05)
    configure(box)
    try:
        run_examples(loop, box, CLIENT_ERRORS | {200})()
        stored = loop.run_until_complete(box.queue.lease(10_000, 30.0))
        for lease in stored:  # what was accepted can be handed to a handler
            interlock.Event.from_lease(lease)
    finally:
        loop.run_until_complete(box.aclose())


class FailingQueue(SQLiteQueue):
    async def put(self, message: Message) -> bool:
        raise OSError("disk I/O error")


class HangingQueue(SQLiteQueue):
    async def put(self, message: Message) -> bool:
        await asyncio.sleep(3600)
        return True


@pytest.mark.parametrize("store", [FailingQueue, HangingQueue])
def test_a_store_failure_is_the_only_503(
    loop: asyncio.AbstractEventLoop, sqlite_path: str, store: type[SQLiteQueue]
) -> None:
    box = interlock.Inbox(store=store(f"sqlite:///{sqlite_path}"), body_timeout=0.05, put_timeout=0.05)
    configure(box)
    try:
        run_examples(loop, box, CLIENT_ERRORS | {503})()
    finally:
        loop.run_until_complete(box.aclose())
