"""OAuth2 for the Client against a real local provider (tests/auth/conftest.py): one token for
many calls and many processes, refresh before expiry and after a 401, rotated refresh tokens
that survive a restart, and a token endpoint that is down."""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from interlock import Client, Timeout
from interlock.auth import ApiKey, AuthError, Basic, Bearer, OAuth2ClientCredentials, OAuth2RefreshToken
from interlock.errors import ConfigError
from interlock.testing import FakeClock

from .conftest import CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH, Provider


def credentials(provider: Provider, **options: object) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        provider.token_url, CLIENT_ID, CLIENT_SECRET, scopes=["crm.read"], **options
    )  # type: ignore[arg-type]


async def test_fifty_concurrent_calls_cause_one_token_request(provider: Provider) -> None:
    provider.delay = 0.2  # every call arrives while the first fetch is in flight
    async with Client(provider.url, auth=credentials(provider)) as api:
        # distinct reads: identical ones would share one upstream call (coalescing)
        answers = await asyncio.gather(*(api.get("/api/thing", params={"i": i}) for i in range(50)))
    assert [a.status for a in answers] == [200] * 50
    assert provider.token_requests == 1
    assert len(provider.api_calls) == 50 and len(set(provider.api_calls)) == 1
    assert provider.grants[0]["grant_type"] == "client_credentials"
    assert provider.grants[0]["scope"] == "crm.read"


async def test_credentials_shared_by_two_clients_fetch_once_and_close_after_the_last(
    provider: Provider,
) -> None:
    auth = credentials(provider)
    async with Client(provider.url, auth=auth) as one:
        async with Client(provider.url, auth=auth) as two:
            await asyncio.gather(one.get("/api/thing"), two.get("/api/thing"))
        assert auth._client is not None  # the first client still uses the token client
        assert (await one.get("/api/thing")).status == 200
    assert auth._client is None
    assert provider.token_requests == 1


_WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from pathlib import Path
    from interlock import Client
    from interlock.auth import OAuth2ClientCredentials

    token_url, api, store, key, barrier, me, n = sys.argv[1:8]

    async def main():
        auth = OAuth2ClientCredentials(token_url, {client_id!r}, {secret!r}, store=store, key=key)
        async with Client(api, auth=auth) as client:
            Path(barrier, me).touch()
            while len(os.listdir(barrier)) < int(n):   # start together
                await asyncio.sleep(0.01)
            answers = await asyncio.gather(*(client.get("/api/thing", params={{"i": i}}) for i in range(10)))
            print(sum(a.status == 200 for a in answers))

    asyncio.run(main())
    """
).format(client_id=CLIENT_ID, secret=CLIENT_SECRET)


async def run_workers(provider: Provider, store: str, tmp_path: Path, n: int = 4) -> list[str]:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    key = "test-" + uuid.uuid4().hex[:8]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), provider.token_url, provider.url, store, key, str(barrier), str(i), str(n),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for i in range(n)
    ]  # fmt: skip
    outputs = []
    async with asyncio.timeout(90):
        for proc in procs:
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()[-2000:]
            outputs.append(out.decode().strip())
    for output in outputs:  # no secret printed by a worker either
        assert CLIENT_SECRET not in output
    return outputs


@pytest.mark.redis
@pytest.mark.slow
async def test_four_processes_on_one_redis_cause_one_token_request(
    provider: Provider, redis_url: str, tmp_path: Path
) -> None:
    provider.delay = 0.3
    outputs = await run_workers(provider, redis_url, tmp_path)
    assert outputs == ["10"] * 4
    assert provider.token_requests == 1
    assert len(provider.api_calls) == 40 and len(set(provider.api_calls)) == 1


@pytest.mark.postgres
@pytest.mark.slow
async def test_four_processes_on_one_postgres_cause_one_token_request(
    provider: Provider, postgres_dsn: str, postgres_schema: str, tmp_path: Path
) -> None:
    provider.delay = 0.3
    outputs = await run_workers(provider, f"{postgres_dsn}?schema={postgres_schema}", tmp_path)
    assert outputs == ["10"] * 4
    assert provider.token_requests == 1


@pytest.mark.slow
async def test_four_processes_on_one_sqlite_file_cause_one_token_request(
    provider: Provider, tmp_path: Path
) -> None:
    provider.delay = 0.3
    outputs = await run_workers(provider, f"sqlite:///{tmp_path / 'tokens.db'}", tmp_path)
    assert outputs == ["10"] * 4
    assert provider.token_requests == 1


async def test_a_token_expiring_mid_run_is_refreshed_before_it_is_used_expired(provider: Provider) -> None:
    clock = FakeClock()
    provider.clock = clock
    provider.expires_in = 100.0
    auth = credentials(provider, margin=30.0, jitter=0.0, clock=clock)
    async with Client(provider.url, auth=auth, clock=clock) as api:
        for _ in range(5):
            assert (await api.get("/api/thing")).status == 200
            clock.advance(10.0)
        assert provider.token_requests == 1  # t=50: still well before the margin
        clock.advance(25.0)  # t=75: inside the 30 s margin, still valid: used, replaced behind
        assert (await api.get("/api/thing")).status == 200
        assert auth._flight is not None
        await auth._flight
        assert provider.token_requests == 2
        clock.advance(200.0)  # both tokens are now past expiry
        assert (await api.get("/api/thing")).status == 200
    assert provider.token_requests == 3
    assert provider.expired_uses == 0
    assert all(provider.api_calls)


async def test_a_401_triggers_one_refresh_and_one_retry(provider: Provider) -> None:
    async with Client(provider.url, auth=credentials(provider)) as api:
        assert (await api.get("/api/thing")).status == 200
        first = provider.api_calls[-1]
        provider.revoked.add(first)  # the provider revokes it early
        answer = await api.get("/api/thing")
        assert answer.status == 200
        assert provider.token_requests == 2
        assert provider.api_calls[1:] == [first, provider.api_calls[-1]]
        assert provider.api_calls[-1] != first
        assert api.auth is not None and api.auth.refreshes == 1


async def test_a_second_401_is_an_auth_error_that_says_so(provider: Provider) -> None:
    async with Client(provider.url, auth=credentials(provider)) as api:
        provider.always_401 = True
        with pytest.raises(AuthError) as caught:
            await api.get("/api/thing")
    assert caught.value.status == 401
    assert "401 again" in str(caught.value)
    assert provider.token_requests == 2  # the first token, one refresh: no loop
    assert len(provider.api_calls) == 2


async def test_a_rotated_refresh_token_survives_a_restart(provider: Provider, tmp_path: Path) -> None:
    clock = FakeClock()
    provider.clock = clock
    provider.expires_in = 600.0
    store = f"sqlite:///{tmp_path / 'tokens.db'}"

    def grant() -> OAuth2RefreshToken:
        return OAuth2RefreshToken(
            provider.token_url, CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH, store=store, clock=clock
        )

    async with Client(provider.url, auth=grant(), clock=clock) as api:
        assert (await api.get("/api/thing")).status == 200
    assert provider.spent_refresh == [FIRST_REFRESH]  # rotated: the first one is dead now
    clock.advance(3600.0)  # the access token expired while the service was down
    async with Client(provider.url, auth=grant(), clock=clock) as api:  # a restart: same config
        assert (await api.get("/api/thing")).status == 200
    assert provider.token_requests == 2
    assert provider.grants[1]["refresh_token"] == provider.spent_refresh[1]
    assert provider.grants[1]["refresh_token"] != FIRST_REFRESH
    # Without the store a restart presents the spent one: the provider's refusal is quoted.
    async with Client(provider.url, auth=OAuth2RefreshToken(
        provider.token_url, CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH, clock=clock
    ), clock=clock) as api:  # fmt: skip
        with pytest.raises(AuthError) as caught:
            await api.get("/api/thing")
    assert caught.value.error == "invalid_grant"
    assert "refresh token is invalid" in str(caught.value)


async def test_a_hanging_token_endpoint_is_an_auth_error_within_the_deadline(provider: Provider) -> None:
    provider.mode = "hang"
    async with Client(provider.url, auth=credentials(provider), timeout=Timeout(total=0.5)) as api:
        async with asyncio.timeout(10):  # bounded: the call ends by its own deadline, long before
            with pytest.raises(AuthError) as caught:
                await api.get("/api/thing")
    assert "within the call's deadline" in str(caught.value)
    assert provider.api_calls == []


async def test_an_unreachable_token_endpoint_is_an_auth_error(provider: Provider) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    auth = OAuth2ClientCredentials(f"http://127.0.0.1:{port}/oauth/token", CLIENT_ID, CLIENT_SECRET)
    async with Client(provider.url, auth=auth, timeout=Timeout(total=5.0)) as api:
        with pytest.raises(AuthError) as caught:
            await api.get("/api/thing")
    assert "token request" in str(caught.value) and "failed" in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)


async def test_a_failing_token_endpoint_is_retried_then_an_auth_error(provider: Provider) -> None:
    provider.mode = "fail500"
    async with Client(provider.url, auth=credentials(provider)) as api:
        with pytest.raises(AuthError):
            await api.get("/api/thing")
    assert provider.token_requests == 3  # TOKEN_RETRY: three attempts


async def test_a_refusal_quotes_the_providers_error_never_the_secret(provider: Provider) -> None:
    auth = OAuth2ClientCredentials(provider.token_url, CLIENT_ID, "wrong-" + CLIENT_SECRET)
    async with Client(provider.url, auth=auth) as api:
        with pytest.raises(AuthError) as caught:
            await api.get("/api/thing")
    error = caught.value
    assert error.error == "invalid_client"
    assert error.error_description == "Client authentication failed."
    assert error.status == 401
    assert CLIENT_SECRET not in str(error) and CLIENT_SECRET not in repr(error)
    assert provider.token_requests == 1  # a refusal is not retried


async def test_client_secret_post_sends_the_secret_in_the_body(provider: Provider) -> None:
    auth = credentials(provider, client_auth="post", audience="https://api.example")
    async with Client(provider.url, auth=auth) as api:
        assert (await api.get("/api/thing")).status == 200
    assert provider.grants[0]["client_id"] == CLIENT_ID
    assert provider.grants[0]["audience"] == "https://api.example"


async def test_reprs_and_logs_mask_every_credential(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    auth = credentials(provider)
    async with Client(provider.url, auth=auth) as api:
        await api.get("/api/thing")
        shown = " ".join([repr(auth), repr(api), repr(api.auth), repr(auth._token)])
    for secret in provider.secrets():
        assert secret not in shown
    assert "client_secret=***" in repr(auth)
    import interlock.metrics

    exposition = interlock.metrics.render()
    assert "token:127.0.0.1" in exposition  # the token client's own metrics, by host only
    assert not any(secret in exposition for secret in provider.secrets())
    assert any(r.name == "interlock.auth" and "token obtained" in r.getMessage() for r in caplog.records)
    for static in (
        Bearer("tok-" + CLIENT_SECRET),
        Basic("u", CLIENT_SECRET),
        ApiKey(CLIENT_SECRET, query="key"),
    ):
        assert CLIENT_SECRET not in repr(static)


async def test_static_credentials_are_sent_and_a_401_to_them_stands(provider: Provider) -> None:
    provider.issued["static-token"] = float("inf")
    async with Client(provider.url, auth=Bearer("static-token")) as api:
        assert (await api.get("/api/thing")).status == 200
        provider.revoked.add("static-token")
        assert (await api.get("/api/thing")).status == 401  # nothing to refresh: the answer stands
    assert provider.api_calls == ["static-token", "static-token"]


def test_bad_configuration_is_refused_with_the_field_named() -> None:
    with pytest.raises(ConfigError, match="token_url"):
        OAuth2ClientCredentials("ftp://x", "id", "secret")
    with pytest.raises(ConfigError, match="scopes"):
        OAuth2ClientCredentials("https://x.test/t", "id", "secret", scopes="a b")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="client_auth"):
        OAuth2ClientCredentials("https://x.test/t", "id", "secret", client_auth="jwt")
    with pytest.raises(ConfigError, match="store"):
        OAuth2ClientCredentials("https://x.test/t", "id", "secret", store=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="header"):
        ApiKey("k", header="X-Key", query="k")
    with pytest.raises(ConfigError, match="CR, LF"):
        Bearer("a\r\nX-Injected: 1")


def test_the_store_key_never_holds_a_secret() -> None:
    auth = OAuth2RefreshToken("https://x.test/t", "id", CLIENT_SECRET, FIRST_REFRESH, key="crm")
    assert auth.key.startswith("crm:")
    assert CLIENT_SECRET not in auth.key and FIRST_REFRESH not in auth.key
    logging.getLogger(__name__).debug("key %s", auth.key)


async def test_a_store_that_is_down_degrades_to_fetching_in_this_process(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    auth = credentials(provider, store=f"redis://127.0.0.1:{port}/0")
    async with Client(provider.url, auth=auth) as api:
        answers = await asyncio.gather(*(api.get("/api/thing", params={"i": i}) for i in range(5)))
    assert [a.status for a in answers] == [200] * 5
    assert provider.token_requests == 1  # still one flight in this process
    assert any("without it" in r.getMessage() for r in caplog.records if r.name == "interlock.auth")


async def test_a_failed_refresh_ahead_keeps_the_token_and_pauses(provider: Provider) -> None:
    clock = FakeClock()
    provider.clock = clock
    provider.expires_in = 100.0
    auth = credentials(provider, margin=30.0, jitter=0.0, clock=clock)
    async with Client(provider.url, auth=auth, clock=clock) as api:
        assert (await api.get("/api/thing")).status == 200
        clock.advance(75.0)  # inside the margin
        provider.mode = "fail500"
        assert (await api.get("/api/thing")).status == 200  # the token in hand still serves
        assert auth._flight is not None
        with pytest.raises(AuthError):
            await auth._flight
        failed = provider.token_requests
        for _ in range(5):  # within the pause: no new token request per call
            assert (await api.get("/api/thing")).status == 200
        assert provider.token_requests == failed
        provider.mode = "ok"
        clock.advance(6.0)  # the pause is over: the next call refreshes behind
        assert (await api.get("/api/thing")).status == 200
        await auth._flight
        assert provider.token_requests == failed + 1


async def test_a_sync_client_takes_the_same_credentials(provider: Provider) -> None:
    from interlock import SyncClient

    def work() -> list[int]:
        with SyncClient(provider.url, auth=credentials(provider)) as api:
            return [api.get("/api/thing", params={"i": i}).status for i in range(3)]

    assert await asyncio.to_thread(work) == [200, 200, 200]
    assert provider.token_requests == 1


async def test_a_failing_token_endpoint_opens_its_own_breaker(provider: Provider) -> None:
    provider.mode = "fail500"
    async with Client(provider.url, auth=credentials(provider), breaker=None) as api:
        errors = []
        for _ in range(4):
            with pytest.raises(AuthError) as caught:
                await api.get("/api/thing")
            errors.append(str(caught.value))
    assert "circuit open" in errors[-1]  # TOKEN_BREAKER: no more requests to a failing endpoint
    assert provider.token_requests < 4 * 3
    assert provider.api_calls == []


async def test_one_credentials_object_on_two_event_loops_is_refused_clearly(provider: Provider) -> None:
    from interlock import SyncClient

    auth = credentials(provider)

    def work() -> str:
        with SyncClient(provider.url, auth=auth) as one, SyncClient(provider.url, auth=auth) as two:
            assert one.get("/api/thing").status == 200
            with pytest.raises(RuntimeError, match="another event loop"):
                two.get("/api/thing")
        return "ok"

    assert await asyncio.to_thread(work) == "ok"
