"""The proxy is not an open proxy: a corpus of origin-escape attempts, sent as raw bytes (HTTP
clients normalise paths; attackers do not), none of which may reach a second origin.

The upstream is the testbed; a second loopback server (``origin``) records every request it
gets and must end with none. Each vector is also checked for how it was answered: refused
(400 / 404 / 405, or the connection closed by the HTTP server) or, for the few that are
legitimate requests with spoofed headers, served by the configured upstream only.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import hypothesis
import pytest
import yarl
from aiohttp import web
from hypothesis import strategies as st

from interlock.service._target import Refused, Target, decide_target
from interlock.testbed import Testbed

from .conftest import Origin, raw_http, serving

# {o} is the second origin's host:port. Each: (request line target or full request line, kind).
# kind "refused": must be answered 400/404/405 (or the connection closed without an answer);
# "upstream": a request the proxy may serve, but only from the configured upstream.
VECTORS: list[tuple[str, str]] = [
    ("GET /proxy/crm/../../etc/passwd", "refused"),
    ("GET /proxy/crm/%2e%2e/customers", "refused"),
    ("GET /proxy/crm/%2E%2E/customers", "refused"),
    ("GET /proxy/crm/.%2e/customers", "refused"),
    ("GET /proxy/crm/%2e./customers", "refused"),
    ("GET /proxy/crm/..%2fcustomers", "refused"),
    ("GET /proxy/crm/%2e%2e%2f%2e%2e%2fx", "refused"),
    ("GET /proxy/crm/%252e%252e/x", "refused"),
    ("GET /proxy/crm/..;/x", "refused"),
    ("GET /proxy/crm/./customers", "refused"),
    ("GET /proxy/crm/.", "refused"),
    ("GET /proxy/crm/%2f%2f{o}/x", "refused"),
    ("GET /proxy/crm//{o}/x", "refused"),
    ("GET /proxy/crm///{o}", "refused"),
    ("GET /proxy/crm/http://{o}/x", "refused"),
    ("GET /proxy/crm/https:%2f%2f{o}", "refused"),
    ("GET /proxy/crm/@{o}/x", "refused"),
    ("GET /proxy/crm/x@{o}", "refused"),
    ("GET /proxy/crm/%40{o}/x", "refused"),
    ("GET /proxy/crm@{o}/x", "refused"),
    ("GET /proxy/crm:{port}/x", "refused"),
    ("GET /proxy/{o}/x", "refused"),
    ("GET /proxy/crm/..\\x", "refused"),
    ("GET /proxy/crm/\\\\{o}/x", "refused"),
    ("GET /proxy/crm/%5c%5c{o}/x", "refused"),
    ("GET /proxy/crm/%00/x", "refused"),
    ("GET /proxy/crm/x%0d%0aHost:%20{o}", "refused"),
    ("GET /proxy/crm/x%3f@{o}", "refused"),
    ("GET /proxy/../proxy/crm/customers", "refused"),
    ("GET http://{o}/x", "refused"),
    ("GET http://{o}/proxy/crm/../x", "refused"),
    ("CONNECT {o} ", "refused"),
    ("TRACE /proxy/crm/customers", "refused"),
    ("GET /proxy/redir/away", "upstream"),
    ("GET /proxy/redir/away307", "upstream"),
    ("GET /proxy/crm/customers/1 #host", "upstream"),
    ("GET /proxy/crm/customers/1 #xfh", "upstream"),
    ("GET http://{o}/proxy/crm/customers/1", "upstream"),
]


def test_the_corpus_is_big_enough() -> None:
    assert len(VECTORS) >= 30


@pytest.mark.parametrize(
    "target",
    ["/proxy/crm/../x", "/proxy/crm/%2e%2e/x", "/proxy/crm//evil", "/proxy/crm/@evil", "/proxy/crm/a\\b", "/proxy/crm/%2F"],
)
def test_the_decision_refuses_escapes(target: str) -> None:
    decided = decide_target("GET", target.encode(), {"crm"})
    assert isinstance(decided, Refused) and decided.status == 400


def test_the_decision_keeps_ordinary_paths() -> None:
    assert decide_target("GET", b"/proxy/crm/customers/42", {"crm"}) == Target("crm", "/customers/42")
    assert decide_target("DELETE", b"/proxy/crm/a/b%20c/", {"crm"}) == Target("crm", "/a/b%20c/")
    assert decide_target("GET", b"/proxy/crm", {"crm"}) == Target("crm", "/")
    connect = decide_target("CONNECT", b"/proxy/crm/x", {"crm"})
    assert isinstance(connect, Refused) and connect.status == 405


class Redirector:
    """An upstream that redirects to the second origin, as a compromised or buggy API might."""

    def __init__(self, to: str) -> None:
        self.to = to
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        status = 307 if request.path.endswith("307") else 302
        return web.Response(status=status, headers={"Location": f"{self.to}/stolen"})

    async def __aenter__(self) -> Redirector:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_no_vector_reaches_a_second_origin(tmp_path: Path, testbed: Testbed, origin: Origin) -> None:
    o = origin.url.removeprefix("http://")
    port = o.rpartition(":")[2]
    async with Redirector(origin.url) as redirector:
        text = (
            "[store]\nurl = 'sqlite:///{db}'\n"
            f"[upstreams.crm]\nbase_url = '{testbed.url}'\nheaders = {{ Authorization = 'Bearer upstream-secret' }}\n"
            f"[upstreams.redir]\nbase_url = '{redirector.url}'\nheaders = {{ Authorization = 'Bearer redir-secret' }}\n"
        )
        async with serving(text, tmp_path) as (_, url):
            outcomes = []
            for vector, kind in VECTORS:
                line = vector.format(o=o, port=port)
                extra = ""
                if line.endswith(" #host"):
                    line, extra = line.removesuffix(" #host"), f"Host: {o}\r\n"
                elif line.endswith(" #xfh"):
                    line, extra = line.removesuffix(" #xfh"), f"X-Forwarded-Host: {o}\r\nForwarded: host={o}\r\n"
                head = f"{line.rstrip()} HTTP/1.1\r\nHost: {(extra and o) or 'interlock'}\r\n{extra}Connection: close\r\n\r\n"
                head = head.replace(f"Host: {o}\r\nHost: {o}\r\n", f"Host: {o}\r\n")
                status, headers, body = await raw_http(url, head.encode("latin-1"))
                outcomes.append((vector, status))
                if kind == "refused":
                    assert status in (None, 400, 404, 405), (vector, status, body[:200])
                else:
                    assert status is not None and status < 500, (vector, status, body[:200])
                    if "redir" in vector:
                        # The redirect elsewhere is handed back, not followed.
                        assert status in (302, 307) and headers["location"].endswith("/stolen")
                assert b"upstream-secret" not in body and b"redir-secret" not in body
    assert origin.requests == [], origin.requests
    assert len(outcomes) == len(VECTORS)
    # The testbed saw only paths under its own root, never a dot segment.
    assert all(".." not in r.path for r in testbed.recent())


_ALPHABET = st.sampled_from(
    [b"/", b".", b"..", b"%2e", b"%2E", b"%2f", b"%5c", b"\\", b"@", b":", b"%40", b"%25", b"%00", b"a", b"b1", b"?",
     b"#", b";", b"%", b"http:", b"//", b"evil.example", b"%u002e", b"\x00", b" ", b"\xc3\xa9", b"~", b"-"]
)


@hypothesis.settings(max_examples=3000, deadline=None)
@hypothesis.given(st.lists(_ALPHABET, max_size=12).map(b"".join))
def test_no_path_the_decision_lets_through_leaves_the_upstream(tail: bytes) -> None:
    base = "http://upstream.internal:8443/v1"
    decided = decide_target("GET", b"/proxy/crm/" + tail, {"crm"})
    if isinstance(decided, Refused):
        assert 400 <= decided.status < 500
        return
    url = base + decided.path
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == ("http", "upstream.internal", 8443)
    assert parts.path.startswith("/v1/")
    # Whatever a server downstream decodes, it finds no way up or out.
    decoded = unquote(decided.path)
    assert "/../" not in decoded + "/" and "/./" not in decoded + "/" and "//" not in decoded and "\\" not in decoded
    assert "@" not in decoded and "?" not in decoded and "#" not in decoded
    assert yarl.URL(url).host == "upstream.internal" and yarl.URL(url).path.startswith("/v1/")


async def test_random_raw_targets_over_http_never_reach_a_second_origin(tmp_path: Path, testbed: Testbed, origin: Origin) -> None:
    import random

    rng = random.Random(12)
    o = origin.url.removeprefix("http://")
    pieces = ["/", ".", "..", "%2e", "%2f", "%5c", "\\", "@", o, "%40", "%25", "a", "customers", "1", ";", ":", "//",
              "http://" + o, "%00", "%0d%0a", "~", "%", "%zz", "products", "?x=", "#f"]
    text = f"[store]\nurl = 'sqlite:///{{db}}'\n[upstreams.crm]\nbase_url = '{testbed.url}'\n"
    async with serving(text, tmp_path) as (_, url):
        for _ in range(300):
            tail = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
            method = rng.choice(["GET", "GET", "POST", "DELETE", "CONNECT", "OPTIONS"])
            head = f"{method} /proxy/crm/{tail} HTTP/1.1\r\nHost: {o}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            status, _, body = await raw_http(url, head.encode("latin-1"))
            assert status is None or status < 500, (method, tail, status, body[:200])
    assert origin.requests == []
