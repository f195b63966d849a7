"""No secret leaves in an error, a log record or a repr: query-string keys, credential headers,
passwords in URLs, with the defaults and with a client's own names."""

from __future__ import annotations

import logging
import traceback

import pytest

import interlock
from interlock import Cache, Client, RateLimit, Redaction, Retry
from interlock._redact import DEFAULT_HEADERS, DEFAULT_QUERY, redact_headers, redact_text, redact_url
from interlock.auth import Bearer
from interlock.client.transports import AiohttpTransport
from interlock.errors import CallError
from interlock.testbed import Testbed, TestbedConfig

SECRET = "s3cr3t-" + "k3y"  # built here so no source line quoted in a traceback shows it


async def test_a_query_key_is_in_no_error_traceback_or_warning(caplog: pytest.LogCaptureFixture) -> None:
    # Headers past what aiohttp parses: its error quotes the whole URL, query included (httpx
    # takes them, and its errors quote no URL).
    retry = Retry(attempts=2, backoff=interlock.Backoff(base=0.001))
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, transport=AiohttpTransport(), retry=retry) as api,
    ):
        with caplog.at_level(logging.DEBUG, logger="interlock"), pytest.raises(CallError) as caught:
            await api.get("/_testbed/hostile/headers", params={"bytes": 70000, "api_key": SECRET, "page": 2})
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value) + caplog.text
    assert SECRET not in shown
    assert "WARNING" in caplog.text


def test_request_repr_masks_credentials_and_hides_the_body() -> None:
    api = Client(
        "https://api.test",
        headers={"Authorization": "Bearer " + SECRET},
        transport=interlock.testing.MockTransport(lambda r: interlock.testing.respond()),
    )
    request = api.build_request(
        "POST",
        "/pay",
        params={"token": SECRET, "page": "2"},
        headers={"X-API-Key": SECRET},
        json={"card": SECRET},
    )
    shown = repr(request)
    assert SECRET not in shown
    assert "'Authorization': '***'" in shown and "'token': '***'" in shown and "'page': '2'" in shown
    assert "body=<" in shown and "bytes>" in shown


def test_store_urls_and_base_urls_lose_their_passwords() -> None:
    url = f"redis://user:{SECRET}@127.0.0.1:6379/0"
    assert SECRET not in repr(RateLimit(per_second=5, store=url))
    assert SECRET not in repr(Cache(routes={"/x": 1}, store=url))
    with pytest.raises(interlock.errors.ConfigError) as caught:
        RateLimit(per_second=5, store=f"memcached://u:{SECRET}@h")
    assert SECRET not in str(caught.value)
    api = Client(
        f"https://user:{SECRET}@api.test",
        transport=interlock.testing.MockTransport(lambda r: interlock.testing.respond()),
    )
    assert SECRET not in repr(api) and SECRET not in api.name  # the name is a metrics label


async def test_base_url_credentials_are_sent_as_basic_auth_which_a_call_may_replace() -> None:
    """aiohttp refuses a URL's user info beside an Authorization header (a bare ValueError on the
    call): the client takes the user info out of the URL and sends it as its default header."""
    import base64

    seen: list[interlock.Request] = []

    def record(request: interlock.Request) -> interlock.Response:
        seen.append(request)
        return interlock.testing.respond()

    async with Client(f"https://ann:{SECRET}@api.test", transport=interlock.testing.MockTransport(record)) as api:
        await api.get("/a")
        await api.get("/b", headers={"Authorization": "Bearer other"})
    expected = "Basic " + base64.b64encode(f"ann:{SECRET}".encode()).decode()
    assert [r.headers["Authorization"] for r in seen] == [expected, "Bearer other"]
    assert all(r.url.startswith("https://api.test/") for r in seen)
    with pytest.raises(interlock.errors.ConfigError, match="credentials once") as caught:
        Client(f"https://ann:{SECRET}@api.test", headers={"Authorization": "Bearer x"})
    assert SECRET not in str(caught.value)
    with pytest.raises(interlock.errors.ConfigError, match="credentials once"):
        Client(f"https://ann:{SECRET}@api.test", auth=Bearer("t0ken"))


async def test_base_url_credentials_and_a_calls_authorization_work_over_the_wire() -> None:
    async with Testbed(TestbedConfig()) as tb:
        async with Client(tb.url.replace("http://", f"http://ann:{SECRET}@"), transport=AiohttpTransport()) as api:
            assert (await api.get("/customers/1", headers={"Authorization": "Bearer x"})).status == 200


async def test_the_client_redaction_masks_its_own_names_in_errors() -> None:
    def fail(request: interlock.Request) -> interlock.Response:
        raise interlock.errors.TransportError(f"boom at {request.url}?shop_session={SECRET}")

    redaction = Redaction().extended(query=["shop_session"])
    async with Client(
        "https://api.test",
        transport=interlock.testing.MockTransport(fail),
        retry=Retry(attempts=1),
        redaction=redaction,
    ) as api:
        with pytest.raises(CallError) as caught:
            await api.get("/x")
    assert SECRET not in str(caught.value) and "shop_session=***" in str(caught.value)


def test_redact_functions() -> None:
    assert (
        redact_url(f"https://u:{SECRET}@api.test/x?api_key={SECRET}&page=2")
        == "https://u:***@api.test/x?api_key=***&page=2"
    )
    assert redact_url("https://api.test/x?page=2") == "https://api.test/x?page=2"
    text = f"url='http://h/x?b=1&access_token={SECRET}', {{'X-Api-Key': '{SECRET}'}}\r\nCookie: a={SECRET}\r\nHost: h"
    masked = redact_text(text)
    assert SECRET not in masked and "Host: h" in masked and "b=1" in masked
    assert redact_text(masked) == masked  # idempotent
    assert redact_text("monkey=1 keyboard=2") == "monkey=1 keyboard=2"  # whole names only
    assert redact_headers({"Set-Cookie": SECRET, "Accept": "*/*"}) == {"Set-Cookie": "***", "Accept": "*/*"}
    assert {"authorization", "x-api-key", "set-cookie"} <= DEFAULT_HEADERS
    assert {"api_key", "token", "signature", "password"} <= DEFAULT_QUERY
    custom = Redaction(headers=["X-One"], query=["q"])
    assert custom.is_sensitive_header("x-one") and not custom.is_sensitive_header("Authorization")
    assert custom.mask_params({"q": "1", "token": "2"}) == {"q": "***", "token": "2"}
    with pytest.raises(TypeError):
        Redaction(headers="authorization")  # type: ignore[arg-type]


async def test_a_pagination_warning_masks_a_key_in_the_path(caplog: pytest.LogCaptureFixture) -> None:
    async with Testbed(TestbedConfig(records=50)) as tb, Client(tb.url) as api:
        with caplog.at_level(logging.WARNING, logger="interlock"):
            items = [
                item
                async for item in api.paginate(
                    f"/customers?api_key={SECRET}", params={"limit": 10}, max_pages=1
                )
            ]
    assert items
    assert "pagination stopped" in caplog.text and SECRET not in caplog.text
    assert all(SECRET not in str(getattr(r, "interlock", "")) for r in caplog.records)
