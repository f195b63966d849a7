"""Redirects, on both transports alike, against two testbeds on two ports (two origins): the
call's own origin is followed, another only when allowed and then without credentials or the
idempotency key; 307/308 keep the method and body, 303 turns into a GET."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from interlock import Client, Redaction, Redirects, Retry
from interlock.client.transports import AiohttpTransport, HttpxTransport, Transport
from interlock.core.redirect import Follow, Stay, next_hop, origin_of
from interlock.errors import ConfigError
from interlock.testbed import Testbed, TestbedConfig

TRANSPORTS: dict[str, Callable[[], Transport]] = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}
SECRET_HEADERS = {
    "Authorization": "Bearer secret-1",
    "X-API-Key": "secret-2",
    "Cookie": "session=secret-3",
    "X-Shop-Token": "secret-4",  # the client's own kind of credential, named in its Redaction
}


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Callable[[], Transport]:
    return TRANSPORTS[request.param]


@pytest.fixture
async def two_origins() -> AsyncIterator[tuple[Testbed, Testbed]]:
    async with Testbed(TestbedConfig()) as a, Testbed(TestbedConfig()) as b:
        yield a, b


def echoed(response: Any) -> dict[str, Any]:
    seen = json.loads(response.content)
    seen["headers"] = {k.lower(): v for k, v in seen["headers"]}
    return seen


def redirect(to: str, status: int) -> dict[str, str | int]:
    return {"to": to, "status": status}


@pytest.mark.parametrize("status", [307, 308])
async def test_same_origin_307_308_keep_method_body_key_and_credentials(
    transport: Callable[[], Transport], two_origins: tuple[Testbed, Testbed], status: int
) -> None:
    a, _ = two_origins
    async with Client(a.url, transport=transport(), headers=SECRET_HEADERS) as api:
        response = await api.post(
            "/_testbed/hostile/redirect",
            params=redirect(f"{a.url}/_testbed/hostile/echo?x=1", status),
            json={"n": 1},
        )
    assert response.status == 200
    seen = echoed(response)
    assert (seen["method"], seen["path"], seen["query"], seen["body"]) == (
        "POST",
        "/_testbed/hostile/echo",
        "x=1",
        '{"n":1}',
    )
    assert seen["headers"]["idempotency-key"]
    assert (
        seen["headers"]["x-api-key"] == "secret-2" and seen["headers"]["authorization"] == "Bearer secret-1"
    )
    assert response.url == f"{a.url}/_testbed/hostile/echo"


async def test_303_and_a_redirected_post_become_a_get_without_the_body(
    transport: Callable[[], Transport], two_origins: tuple[Testbed, Testbed]
) -> None:
    a, _ = two_origins
    async with Client(a.url, transport=transport()) as api:
        for status in (301, 302, 303):
            response = await api.post(
                "/_testbed/hostile/redirect", params=redirect("/_testbed/hostile/echo", status), json={"n": 1}
            )
            seen = echoed(response)
            assert (seen["method"], seen["body"]) == ("GET", None), status
            assert "content-type" not in seen["headers"]
        put = await api.put(
            "/_testbed/hostile/redirect", params=redirect("/_testbed/hostile/echo", 302), json={}
        )
        assert echoed(put)["method"] == "PUT"  # only a POST is turned into a GET by 301/302


async def test_another_origin_is_not_followed_by_default(
    transport: Callable[[], Transport], two_origins: tuple[Testbed, Testbed], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two_origins
    async with Client(a.url, transport=transport(), headers=SECRET_HEADERS) as api:
        with caplog.at_level(logging.WARNING, logger="interlock.client"):
            response = await api.post(
                "/_testbed/hostile/redirect",
                params=redirect(f"{b.url}/customers/1?api_key=secret-5", 307),
                json={"card": "4242"},
            )
    assert response.status == 307  # the redirect is the answer
    assert b.counters.requests == 0  # nothing, neither body nor key nor credentials, went there
    (warning,) = [r for r in caplog.records if "not followed" in r.getMessage()]
    assert "allow_hosts" in warning.getMessage()
    assert "secret-5" not in warning.getMessage() and "api_key=***" in warning.getMessage()


@pytest.mark.parametrize("status", [302, 307])
async def test_an_allowed_origin_gets_no_credentials_and_no_idempotency_key(
    transport: Callable[[], Transport], two_origins: tuple[Testbed, Testbed], status: int
) -> None:
    a, b = two_origins
    async with Client(
        a.url,
        transport=transport(),
        headers={**SECRET_HEADERS, "X-Trace": "kept"},
        redirects=Redirects(allow_hosts=[f"127.0.0.1:{b.port}"]),
        redaction=Redaction().extended(headers=["X-Shop-Token"]),
    ) as api:
        response = await api.put(
            "/_testbed/hostile/redirect",
            params=redirect(f"{b.url}/_testbed/hostile/echo", status),
            json={"n": 2},
        )
    seen = echoed(response)
    assert seen["host"] == f"127.0.0.1:{b.port}"
    assert (seen["method"], seen["body"]) == ("PUT", '{"n":2}')
    for name in ("authorization", "x-api-key", "cookie", "x-shop-token", "idempotency-key"):
        assert name not in seen["headers"], name
    assert seen["headers"]["x-trace"] == "kept"


async def test_a_redirect_loop_stops_at_max_hops(
    transport: Callable[[], Transport], two_origins: tuple[Testbed, Testbed]
) -> None:
    a, _ = two_origins
    loop = (
        f"/_testbed/hostile/redirect?to={a.url}/_testbed/hostile/redirect%3Fto%3D/x%26status%3D302&status=302"
    )
    async with Client(
        a.url, transport=transport(), redirects=Redirects(max_hops=1), retry=Retry(attempts=1)
    ) as api:
        response = await api.get(loop)
    assert response.status == 302  # the second redirect is past max_hops=1: it is the answer
    assert response.url == f"{a.url}/_testbed/hostile/redirect"


async def test_redirects_can_be_switched_off(
    transport: Callable[[], Transport], two_origins: tuple[Testbed, Testbed]
) -> None:
    a, _ = two_origins
    async with Client(a.url, transport=transport(), redirects=None) as api:
        response = await api.get("/_testbed/hostile/redirect", params=redirect("/customers/1", 301))
    assert response.status == 301 and a.counters.requests == 0


def test_the_decision_refuses_downgrades_and_other_schemes() -> None:
    origin = origin_of("https://api.test/x")
    assert origin == ("https", "api.test", 443)

    def hop(location: str, config: Redirects | None = None, hops: int = 0) -> Follow | Stay | None:
        return next_hop(
            config or Redirects(),
            status=302,
            method="GET",
            url="https://api.test/x",
            location=location,
            hops=hops,
            origin=origin,
        )

    assert hop("http://api.test/y") == Stay("downgrade")
    assert hop("ftp://api.test/y") == Stay("bad_location")
    assert hop("/y#frag") == Follow("https://api.test/y", "GET", keep_body=True, cross_origin=False)
    assert hop("https://cdn.test/y") == Stay("other_origin")
    wildcard = Redirects(allow_hosts=["*.example.com"])
    assert isinstance(hop("https://a.example.com/y", wildcard), Follow)
    assert hop("https://example.com.evil.test/y", wildcard) == Stay("other_origin")
    assert hop("/y", Redirects(max_hops=2), hops=2) == Stay("too_many")
    assert hop("/y", Redirects(follow=False)) == Stay("off")
    assert (
        next_hop(
            Redirects(),
            status=304,
            method="GET",
            url="https://api.test/",
            location="/",
            hops=0,
            origin=origin,
        )
        is None
    )
    with pytest.raises(ConfigError, match="Redirects.allow_hosts"):
        Redirects(allow_hosts="api.test")
