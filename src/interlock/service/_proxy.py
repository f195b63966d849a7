"""``/proxy/{upstream}/{path...}``: any method, forwarded through the upstream's ``Client``.

A raw ASGI app: the whole Client pipeline (cache, coalescing, batching, rate limit,
concurrency, breaker, retries, deadline) applies to each call, so a service in any language
gets the policies by pointing its base URL here.

- Where a request may go is ``_target.decide_target``'s decision (never an open proxy).
- Query string, body and end-to-end headers pass through; hop-by-hop headers (RFC 9110
  section 7.6.1: ``Connection`` and what it names, ``Keep-Alive``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``, ``Proxy-*``) and ``Host`` do not, nor the caller's
  ``Authorization`` when the upstream has caller tokens or credentials of its own: the
  upstream's credentials come from the config, callers never hold them.
- The answer carries the upstream's headers (its tracking id among them) and
  ``X-Interlock-Attempts`` / ``X-Interlock-Cache`` (``hit``, ``miss``, ``revalidated``,
  ``stale``; ``bypass`` for a route with no cache rule).
- What Interlock decides itself is an RFC 9457 problem: breaker open 503, deadline 504, rate
  limit 429, retries exhausted or the network failing 502, each with ``Retry-After`` where it
  applies.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ..client import Client
from ..errors import (
    CallError,
    CircuitOpen,
    ConnectError,
    DeadlineExceeded,
    RateLimited,
    ResponseTooLarge,
    RetriesExhausted,
    TimedOut,
    TransportError,
)
from ._problem import Problem, problem
from ._target import Refused, decide_target

__all__ = ["HOP_BY_HOP", "ProxyApp", "ProxyUpstream", "cache_status", "problem_for"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""RFC 9110 section 7.6.1: meaningful for one connection only, never forwarded."""
# Not forwarded either way for other reasons: the Client sets Host and Content-Length, and
# negotiates (and decodes) content codings itself; the answer is sent decoded.
_REQUEST_DROPPED = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "expect"}
_RESPONSE_DROPPED = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}


@dataclass(frozen=True)
class ProxyUpstream:
    """One proxied upstream: its ``client``, the caller ``tokens`` it accepts (empty: any
    caller) and the header names its config sets (a caller's value never replaces them)."""

    client: Client
    tokens: Sequence[bytes] = ()
    configured_headers: frozenset[str] = frozenset()

    def admits(self, authorization: bytes | None) -> bool:
        """Whether ``Authorization: Bearer <token>`` names one of the tokens (constant time)."""
        if not self.tokens:
            return True
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return False
        given = authorization[7:].strip()
        found = False
        for token in self.tokens:  # every token compared: the time says nothing of which matched
            found |= hmac.compare_digest(given, token)
        return found


def cache_status(client: Client, method: str, path: str, from_cache: bool, stale: bool, attempts: int) -> str:
    """``X-Interlock-Cache`` of one answer: ``hit`` (served from the cache, no upstream call),
    ``revalidated`` (the cached copy confirmed by the upstream), ``stale`` (an expired copy
    served, while refreshing or because the upstream failed), ``miss`` (a cached route fetched
    from the upstream), ``bypass`` (a route or method the cache does not serve)."""
    cache = client.cache
    if cache is None or method != "GET" or cache.config.rule_for(path) is None:
        return "bypass"
    if stale:
        return "stale"
    if from_cache:
        return "revalidated" if attempts > 0 else "hit"
    return "miss"


def problem_for(exc: CallError, upstream: str, request_id: str | None) -> Problem:
    """The problem a failed call is answered with (its status says who failed)."""
    common: dict[str, Any] = {"upstream": upstream, "attempts": exc.attempts or None, "request_id": request_id}
    if isinstance(exc, CircuitOpen):
        return problem(
            503, "circuit-open", "Upstream circuit open",
            f"{upstream} failed too often recently; calls are refused without being sent",
            retry_after=exc.retry_in, **common,
        )
    if isinstance(exc, RateLimited):
        return problem(
            429, "rate-limited", "Upstream rate limit",
            f"the call would exceed {upstream}'s rate limit; nothing was sent",
            retry_after=exc.retry_in or 1.0, **common,
        )
    if isinstance(exc, DeadlineExceeded | TimedOut):
        return problem(
            504, "deadline-exceeded", "Upstream deadline exceeded", f"{upstream} did not answer in time", **common
        )
    if isinstance(exc, RetriesExhausted) and exc.status == 429:
        return problem(
            429, "rate-limited", "Upstream rate limit",
            f"{upstream} kept answering 429 after {exc.attempts} attempts", retry_after=1.0,
            upstream_status=429, **common,
        )
    if isinstance(exc, RetriesExhausted):
        last = f"last answer {exc.status}" if exc.status else "last attempt failed on the network"
        return problem(
            502, "retries-exhausted", "Upstream retries exhausted",
            f"{upstream} kept failing ({last})", upstream_status=exc.status, tracking_id=exc.tracking_id, **common,
        )
    if isinstance(exc, ResponseTooLarge):
        return problem(502, "response-too-large", "Upstream answer too large", f"{upstream}'s answer passed the size bound", **common)
    if isinstance(exc, ConnectError | TransportError):
        return problem(502, "upstream-unreachable", "Upstream unreachable", f"{upstream} could not be reached", **common)
    return problem(502, "upstream-error", "Upstream call failed", f"the call to {upstream} failed", **common)


class ProxyApp:
    """The ``/proxy/`` ASGI app over ``upstreams`` (name -> ``ProxyUpstream``). Request bodies
    over ``max_body`` bytes are refused with 413 before anything is sent."""

    def __init__(self, upstreams: Mapping[str, ProxyUpstream], *, max_body: int = 10 * 1024 * 1024) -> None:
        self.upstreams = dict(upstreams)
        self.max_body = max_body
        self.proxied: dict[str, int] = {}
        """Requests forwarded per upstream (whatever their answer), for the admin API."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        raw_path = raw_path.partition(b"?")[0]
        decision = decide_target(method, raw_path, self.upstreams)
        if isinstance(decision, Refused):
            await _send_problem(send, problem(decision.status, decision.slug, _TITLES[decision.status], decision.detail))
            return
        upstream = self.upstreams[decision.upstream]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        authorization = next((v for k, v in headers if k == b"authorization"), None)
        if not upstream.admits(authorization):
            await _send_problem(
                send,
                problem(
                    401, "caller-unauthorized", "Caller token required",
                    f"calls to {decision.upstream} need Authorization: Bearer <caller token>",
                    headers=[(b"www-authenticate", b'Bearer realm="interlock"')],
                ),
            )
            return
        body = await _read_body(receive, self.max_body)
        if body is None:
            await _send_problem(
                send, problem(413, "body-too-large", "Request body too large", f"bodies over {self.max_body} bytes are not proxied")
            )
            return
        forwarded = _forwarded_headers(headers, upstream)
        query = scope.get("query_string", b"").decode("latin-1")
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else None
        client = upstream.client
        self.proxied[decision.upstream] = self.proxied.get(decision.upstream, 0) + 1
        try:
            response = await client.request(
                method, decision.path, params=params, headers=forwarded, content=body or None
            )
        except CallError as exc:
            await _send_problem(send, problem_for(exc, decision.upstream, exc.request_id))
            return
        # aiohttp decoded the upstream's header bytes as UTF-8 with surrogateescape: encoding
        # them back the same way gives the bytes as received, whatever they were.
        out = [
            (k.lower().encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
            for k, v in response.headers.items()
            if k.lower() not in _RESPONSE_DROPPED
        ]
        content = b"" if method == "HEAD" else response.content
        status = cache_status(client, method, decision.path, response.from_cache, response.stale, response.attempts)
        out.append((b"x-interlock-attempts", str(response.attempts).encode()))
        out.append((b"x-interlock-cache", status.encode()))
        if response.request_id and not any(k == b"x-request-id" for k, _ in out):
            out.append((b"x-request-id", response.request_id.encode("latin-1", "replace")))
        out.append((b"content-length", str(len(response.content)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": content})


_TITLES = {400: "Unsafe proxy path", 404: "Not found", 405: "Method not allowed"}


def _forwarded_headers(headers: Sequence[tuple[bytes, bytes]], upstream: ProxyUpstream) -> dict[str, str]:
    named: set[str] = set()
    for key, value in headers:
        if key == b"connection":
            named.update(t.strip().lower() for t in value.decode("latin-1").split(","))
    out: dict[str, str] = {}
    for key, value in headers:
        name = key.decode("latin-1").lower()
        if name in _REQUEST_DROPPED or name in named or name in upstream.configured_headers:
            continue
        if name == "authorization" and upstream.tokens:
            continue  # the caller's token is for Interlock, not for the upstream
        if name.startswith("x-interlock-"):
            continue
        text = value.decode("latin-1")
        out[name] = f"{out[name]}, {text}" if name in out else text
    return out


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_problem(send: Send, answer: Problem) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
