"""Route templates: one compiler for the route namer and the cache and batch rules."""

from __future__ import annotations

import pytest

from interlock import Batch, Cache, Client
from interlock.client._routes import RouteNamer, RoutePattern
from interlock.errors import ConfigError


def test_pattern_matches_whole_paths_and_gives_placeholder_values() -> None:
    pattern = RoutePattern("/customers/{id}/orders/{order}")
    assert pattern.match("/customers/7/orders/9") == {"id": "7", "order": "9"}
    assert pattern.match("/customers/7/orders/9/lines") is None
    assert pattern.match("/customers/7/orders") is None
    assert RoutePattern("/zones/*").match("/zones/eu/west") == {}


@pytest.mark.parametrize("template", ["customers/{id}", "/customers/{id-x}", "/customers/{1}"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        RoutePattern(template)


def test_namer_prefers_declared_templates_then_id_segments() -> None:
    namer = RouteNamer(["/users/{name}", "/zones/*"])
    assert namer("/users/alice") == "/users/{name}"
    assert namer("/zones/eu") == "/zones/eu"  # a wildcard names no route
    assert namer("/orders/12345/lines/ord_a1b2c3d4e5") == "/orders/{id}/lines/{id}"
    assert namer("/orders/latest") == "/orders/latest"


def test_namer_memo_is_bounded() -> None:
    namer = RouteNamer(max_cached=3)
    for i in range(10):
        assert namer(f"/r/{i}") == "/r/{id}"
    assert len(namer._cache) <= 3


async def test_config_templates_name_routes_and_bad_ones_name_their_field() -> None:
    async with Client(
        "http://upstream.test",
        cache=Cache(routes={"/industries/{code}": 60}),
        batch=Batch(route="/customers/{cid}", via="/customers"),
        routes=["/users/{name}"],
    ) as client:
        assert client.build_request("GET", "/industries/agri").route == "/industries/{code}"
        assert client.build_request("GET", "/customers/abc").route == "/customers/{cid}"
        assert client.build_request("GET", "/users/bob").route == "/users/{name}"
    with pytest.raises(ConfigError, match="Client.routes"):
        Client("http://upstream.test", routes=["/users/{bad name}"])
    with pytest.raises(ConfigError, match="Cache.routes"):
        Cache(routes={"no-slash": 60})
