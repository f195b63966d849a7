"""OAuth2 grants for the Client: ``OAuth2ClientCredentials`` and ``OAuth2RefreshToken``.

One token is fetched and shared:

- inside a process, callers needing a token while one is being fetched wait for that fetch
  (single flight), and a token inside its refresh margin is replaced in the background while
  it is still used;
- across processes, through a ``TokenStore`` (``store=`` a URL or a store): a process that
  needs a token first reads the store, then takes the store's lock for the key, reads again
  (another process may have just saved one) and only then asks the token endpoint; the others
  wait for the token to land in the store. N workers cause one token request, not N.

The token endpoint is called through a ``Client`` of its own, with its own timeout, retries
(429 and 5xx, network errors) and breaker, never longer than the waiting call's deadline. Its
failures and refusals are ``AuthError`` carrying the endpoint's ``error`` and
``error_description`` (RFC 6749 section 5.2), never the secret. A rotated refresh token
(RFC 6749 section 6, and section 4.13 of the OAuth 2.0 Security BCP) is saved to the store
before it is used, so a restart continues with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .._clock import SYSTEM_CLOCK, Clock
from .._models import Request
from .._redact import redact_url
from ..client import Client, Timeout
from ..client.transports import Transport
from ..core.breaker import CircuitBreaker
from ..core.retry import Retry
from ..core.token import Freshness, Token, TokenRefusal, freshness, parse_token_answer, refresh_due
from ..errors import AuthError, CallError, ConfigError
from ..stores import TokenStore, open_token_store

__all__ = ["TOKEN_BREAKER", "TOKEN_RETRY", "TOKEN_TIMEOUT", "OAuth2ClientCredentials", "OAuth2RefreshToken"]

_log = logging.getLogger("interlock.auth")

TOKEN_TIMEOUT = Timeout(connect=3.0, read=10.0, total=20.0)
"""The token endpoint's time limits, unless ``timeout=`` says otherwise."""
TOKEN_RETRY = Retry(attempts=3, statuses=frozenset({429, 500, 502, 503, 504}), budget=None)
"""How token requests are retried: three attempts on 429, 5xx and network errors."""
TOKEN_BREAKER = CircuitBreaker(failure_ratio=0.5, min_calls=5, window=30.0, open_for=10.0)
"""The token endpoint's breaker: a failing endpoint is not asked again for 10 s."""

_POLL_FIRST = 0.02
_POLL_MAX = 0.25
"""A process waiting for another's token polls the store this often (doubling up to the max)."""
_AHEAD_PAUSE = 5.0
"""Seconds a failed refresh ahead of expiry waits before the next one is tried."""


def _check_url(owner: str, url: object) -> str:
    if not isinstance(url, str):
        raise ConfigError(owner, "token_url", f"must be an absolute http(s) URL, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(owner, "token_url", f"must be an absolute http(s) URL, got {redact_url(url)!r}")
    if parts.password is not None:
        raise ConfigError(owner, "token_url", "must not carry a password: pass client_secret=")
    return url


def _check_text(owner: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(owner, field, "must be a non-empty string")
    if any(c in value for c in "\r\n\x00"):
        raise ConfigError(owner, field, "must not contain CR, LF or NUL")
    return value


class _OAuth2Grant:
    """What both grants share: the token, its single flight, the store and the token client."""

    grant_type = ""
    redacted_headers: frozenset[str] = frozenset({"authorization"})
    redacted_query: frozenset[str] = frozenset({"access_token"})

    def __init__(
        self,
        owner: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scopes: Sequence[str],
        audience: str | None,
        extra_params: Mapping[str, str] | None,
        client_auth: str,
        store: TokenStore | str | None,
        key: str | None,
        margin: float,
        jitter: float,
        lock_ttl: float,
        timeout: Timeout | None,
        retry: Retry | None,
        breaker: CircuitBreaker | None,
        transport: Transport | None,
        clock: Clock | None,
        rng: random.Random | None,
        identity: str = "",
    ) -> None:
        self._owner = owner
        self.token_url = _check_url(owner, token_url)
        self.client_id = _check_text(owner, "client_id", client_id)
        self._secret = _check_text(owner, "client_secret", client_secret)
        if isinstance(scopes, str):
            raise ConfigError(owner, "scopes", "must be a list of scope names, not one string")
        for scope in scopes:
            if not isinstance(scope, str) or not scope or " " in scope:
                raise ConfigError(owner, "scopes", f"each scope must be a non-empty word, got {scope!r}")
        self.scopes = tuple(scopes)
        self.audience = audience
        self._extra = dict(extra_params or {})
        if client_auth not in ("basic", "post"):
            raise ConfigError(owner, "client_auth", f"must be 'basic' or 'post', got {client_auth!r}")
        self.client_auth = client_auth
        for name, value, positive in (("margin", margin, False), ("lock_ttl", lock_ttl, True)):
            if not isinstance(value, int | float) or not (value > 0 if positive else value >= 0):
                raise ConfigError(
                    owner, name, f"must be a number of seconds {'> 0' if positive else '>= 0'}, got {value!r}"
                )
        if not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise ConfigError(owner, "jitter", f"must be a fraction in [0, 1], got {jitter!r}")
        self.margin = float(margin)
        self.jitter = float(jitter)
        self.lock_ttl = float(lock_ttl)
        self._timeout = timeout or TOKEN_TIMEOUT
        self._retry = retry
        self._breaker = breaker
        self._transport = transport
        self._clock = clock or SYSTEM_CLOCK
        self._rng = rng or random.Random()
        if store is not None and not isinstance(store, str | TokenStore):
            raise ConfigError(
                owner, "store", "must be a TokenStore or a store URL (redis://, sqlite:///, postgresql://)"
            )
        self._store_arg = store
        self._store: TokenStore | None = None
        self._own_store = False
        # The store key names the grant, never a secret: a hash of what identifies the token.
        material = "\n".join(
            [
                self.grant_type,
                self.token_url,
                self.client_id,
                " ".join(sorted(self.scopes)),
                audience or "",
                identity,
            ]
        )
        digest = hashlib.sha256(material.encode()).hexdigest()[:32]
        self.key = f"{key}:{digest}" if key else digest
        self._token: Token | None = None
        self._due: float | None = None
        self._flight: asyncio.Task[Token] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ahead_after = 0.0
        self._client: Client | None = None
        self._users = 0
        self.requests = 0
        """Token requests this object sent to the endpoint (each counted once, retries aside)."""

    # -- the Credentials protocol (interlock.client.policies.auth) -------------------------------
    def attach(self) -> None:
        """A client starts using these credentials."""
        self._users += 1

    async def release(self) -> None:
        """A client is closed; after the last one, close the token client and the store opened here."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.aclose()

    async def apply(self, request: Request) -> str:
        """Set ``Authorization: Bearer <token>`` with a token valid now (fetched within the
        call's deadline when needed); return the token used."""
        token = await self.token(deadline=request.deadline)
        request.headers["Authorization"] = "Bearer " + token.access_token
        return token.access_token

    async def refresh(self, request: Request, used: Any) -> bool:
        """The upstream answered 401 to ``used``: get another token, unless one newer than it is
        here already. True when a different token is available."""
        current = self._token
        if current is not None and current.access_token != used and current.access_token:
            return True  # another call refreshed it meanwhile
        if current is not None and current.access_token == used:
            self._token = current.without_access()  # never send it again
        token = await self._await_flight(self._start_flight(rejected=used), request.deadline)
        return bool(token.access_token != used)

    # -- the token -------------------------------------------------------------------------------
    async def token(self, *, deadline: float | None = None) -> Token:
        """A token valid now: the one held if it is, else a new one (shared with every caller
        waiting for it, and with other processes through the store), by the monotonic
        ``deadline`` when one is given. Raises ``AuthError`` when none can be had."""
        self._check_loop()
        token = self._token
        state = freshness(token, self._clock.time(), self._due)
        if state is Freshness.USE:
            assert token is not None
            return token
        if state is Freshness.REFRESH_AHEAD:
            assert token is not None
            if self._clock.monotonic() >= self._ahead_after:
                self._start_flight(rejected=None)  # replaced in the background; this one still serves
            return token
        return await self._await_flight(self._start_flight(rejected=None), deadline)

    def _check_loop(self) -> None:
        # The flight, the token client and the store belong to one event loop.
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed():
            raise RuntimeError(
                f"{self._owner} for client {self.client_id!r} is in use on another event loop: give each "
                "SyncClient (each loop) its own credentials object, and share the token through store="
            )
        # First use, or the previous loop is gone (asyncio.run called again): start afresh.
        self._loop, self._flight, self._client = loop, None, None
        if self._own_store:
            self._store = None

    def _start_flight(self, rejected: str | None) -> asyncio.Task[Token]:
        flight = self._flight
        if flight is None or flight.done():
            flight = self._flight = asyncio.ensure_future(self._obtain(rejected))
            flight.add_done_callback(self._landed)
        return flight

    def _landed(self, flight: asyncio.Task[Token]) -> None:
        # Retrieved here, so a background refresh nobody awaited never warns "exception was
        # never retrieved"; after a failure, refreshes ahead of expiry pause (the token in hand
        # still serves) instead of asking a failing endpoint on every call.
        if flight.cancelled() or flight.exception() is None:
            return
        self._ahead_after = self._clock.monotonic() + _AHEAD_PAUSE
        _log.debug(
            "token refresh for client %s failed: %s", self.client_id, type(flight.exception()).__name__
        )

    async def _await_flight(self, flight: asyncio.Task[Token], deadline: float | None) -> Token:
        try:
            if deadline is None:
                return await asyncio.shield(flight)
            remaining = deadline - self._clock.monotonic()
            async with asyncio.timeout(max(0.0, remaining)):
                return await asyncio.shield(flight)  # a caller giving up does not cancel the others' fetch
        except AuthError as exc:
            # One flight, many waiters: each gets an error of its own, for the client to fill in
            # with that call's route and request id.
            raise AuthError(
                exc.message, error=exc.error, error_description=exc.error_description, status=exc.status,
                tracking_id=exc.tracking_id, hint=exc.hint,
            ) from exc.__cause__  # fmt: skip
        except TimeoutError:
            raise AuthError(
                f"no token from {redact_url(self.token_url)} within the call's deadline",
                hint="the token endpoint is slow or down; the fetch goes on for the next caller",
            ) from None

    def _adopt(self, token: Token) -> Token:
        self._token = token
        self._due = refresh_due(token, margin=self.margin, jitter=self.jitter, draw=self._rng.random())
        return token

    def _usable(self, token: Token | None, rejected: str | None) -> bool:
        if token is None or not token.access_token or token.access_token == rejected:
            return False
        if self._token is not None and token.access_token == self._token.access_token:
            return False  # the one being replaced
        due = refresh_due(token, margin=self.margin, jitter=0.0)
        return freshness(token, self._clock.time(), due) is Freshness.USE

    async def _open_store(self) -> TokenStore:
        if self._store is None:
            arg = self._store_arg
            if isinstance(arg, str) or arg is None:
                store = open_token_store(arg, owner=self._owner, field="store")
                self._own_store = True
            else:
                store = arg
            await store.open()
            self._store = store
        return self._store

    async def _obtain(self, rejected: str | None) -> Token:
        """One flight: a token from the store, or from the endpoint under the store's lock. A
        store that fails (down, frozen past its timeouts) does not stop the calls: this process
        asks the endpoint itself, as if it had no store, and says so in a warning."""
        try:
            store = await self._open_store()
            return await self._obtain_shared(store, rejected)
        except (AuthError, asyncio.CancelledError):
            raise
        except Exception as exc:
            _log.warning(
                "token store %s failed (%s): fetching a token for client %s without it",
                self._store_name(), type(exc).__name__, self.client_id,
            )  # fmt: skip
            return self._adopt(await self._request(self._token))

    async def _obtain_shared(self, store: TokenStore, rejected: str | None) -> Token:
        stored = await store.load(self.key)
        if self._usable(stored, rejected):
            assert stored is not None
            return self._adopt(stored)
        owner = uuid.uuid4().hex
        give_up = self._clock.monotonic() + self.lock_ttl + (self._timeout.total or self.lock_ttl)
        poll = _POLL_FIRST
        while True:
            if await store.lock(self.key, owner, self.lock_ttl):
                try:
                    stored = await store.load(self.key)  # saved while we waited for the lock?
                    if self._usable(stored, rejected):
                        assert stored is not None
                        return self._adopt(stored)
                    token = self._adopt(await self._request(stored or self._token))
                    try:  # before use: a rotated refresh token is the only copy
                        await store.save(self.key, token)
                    except Exception as exc:
                        _log.error(
                            "token store %s could not save the new token for client %s (%s)%s",
                            self._store_name(), self.client_id, type(exc).__name__,
                            ": the rotated refresh token lives in this process only" if token.refresh_token else "",
                        )  # fmt: skip
                    return token
                finally:
                    with contextlib.suppress(Exception):  # the lease runs out by itself otherwise
                        await store.unlock(self.key, owner)
            if self._clock.monotonic() > give_up:
                raise AuthError(
                    f"waited {self.lock_ttl:g} s for another process to fetch a token from "
                    f"{redact_url(self.token_url)} and none arrived",
                    hint="another worker holds the token lock; check that worker and the token endpoint",
                )
            await self._clock.sleep(poll)
            poll = min(poll * 2, _POLL_MAX)
            stored = await store.load(self.key)
            if self._usable(stored, rejected):
                assert stored is not None
                return self._adopt(stored)

    def _store_name(self) -> str:
        store = self._store if self._store is not None else self._store_arg
        if isinstance(store, str):
            return redact_url(store)
        return repr(store) if store is not None else "memory"

    # -- the token endpoint ----------------------------------------------------------------------
    def _grant_params(self, stored: Token | None) -> dict[str, str]:  # pragma: no cover - per grant
        raise NotImplementedError

    def _token_client(self) -> Client:
        if self._client is None:
            parts = urlsplit(self.token_url)
            self._client = Client(
                f"{parts.scheme}://{parts.netloc}",
                name=f"token:{parts.netloc}",
                timeout=self._timeout,
                retry=self._retry or TOKEN_RETRY,
                breaker=self._breaker or TOKEN_BREAKER,
                concurrency=None,
                coalesce=False,
                redirects=None,  # a token endpoint that redirects is misconfigured: never resend a secret
                transport=self._transport,
                clock=self._clock,
                rng=self._rng,
            )
        return self._client

    async def _request(self, stored: Token | None) -> Token:
        """Ask the token endpoint for a token (RFC 6749 sections 4.4 and 6)."""
        params = {"grant_type": self.grant_type, **self._grant_params(stored)}
        if self.scopes:
            params["scope"] = " ".join(self.scopes)
        if self.audience:
            params["audience"] = self.audience
        params.update(self._extra)
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        if self.client_auth == "basic":
            # RFC 6749 section 2.3.1: id and secret form-encoded, then joined for Basic.
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            params["client_id"] = self.client_id
            params["client_secret"] = self._secret
        path = urlsplit(self.token_url)
        target = path.path + (f"?{path.query}" if path.query else "")
        self.requests += 1
        shown = redact_url(self.token_url)
        try:
            response = await self._token_client().post(
                target or "/", content=urlencode(params), headers=headers, route="/token"
            )
        except CallError as exc:
            _log.warning(
                "token request to %s for client %s failed: %s", shown, self.client_id, type(exc).__name__
            )
            raise AuthError(
                f"token request to {shown} failed: {exc.message}",
                status=exc.status,
                tracking_id=exc.tracking_id,
            ) from exc
        answer = parse_token_answer(
            response.status, response.content, self._clock.time(),
            previous_refresh=self._refresh_token_of(stored),
        )  # fmt: skip
        if isinstance(answer, TokenRefusal):
            _log.warning(
                "token endpoint %s refused client %s: %s (HTTP %d)",
                shown,
                self.client_id,
                answer.error,
                answer.status,
            )
            detail = f": {answer.description}" if answer.description else ""
            raise AuthError(
                f"token endpoint {shown} answered {answer.status} {answer.error}{detail}",
                error=answer.error,
                error_description=answer.description,
                status=answer.status,
                tracking_id=response.tracking_id,
            )
        lifetime = (
            "no expiry"
            if answer.expires_at is None
            else f"expires in {answer.expires_at - answer.issued_at:.0f} s"
        )
        rotated = ", refresh token rotated" if self._rotated(stored, answer) else ""
        _log.info("token obtained from %s for client %s (%s%s)", shown, self.client_id, lifetime, rotated)
        return answer

    def _refresh_token_of(self, stored: Token | None) -> str | None:
        return stored.refresh_token if stored is not None else None

    def _rotated(self, stored: Token | None, token: Token) -> bool:
        return False

    async def aclose(self) -> None:
        """Close the token endpoint's client and the store opened from a URL (both reopen on
        next use). Clients using these credentials call it through ``release``."""
        flight, self._flight = self._flight, None
        if flight is not None and not flight.done():
            flight.cancel()
            with contextlib.suppress(BaseException):
                await flight
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        store, self._store = self._store, None
        if store is not None and self._own_store:
            await store.aclose()

    async def __aenter__(self) -> _OAuth2Grant:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _repr_fields(self) -> str:
        scopes = f" scopes={' '.join(self.scopes)!r}" if self.scopes else ""
        shown = self._store_name()
        token = "none" if self._token is None else repr(self._token)
        return (
            f"token_url={redact_url(self.token_url)!r} client_id={self.client_id!r} client_secret=***"
            f"{scopes} store={shown} token={token}"
        )


class OAuth2ClientCredentials(_OAuth2Grant):
    """The OAuth2 client credentials grant (RFC 6749 section 4.4), for service-to-service calls.

    ``token_url``, ``client_id`` and ``client_secret`` as the provider issued them; ``scopes``
    and ``audience`` (Auth0, Okta...) when it wants them; ``extra_params`` for any other form
    field. ``client_auth``: ``"basic"`` (HTTP Basic, RFC 6749 section 2.3.1, the default) or
    ``"post"`` (id and secret in the form body). ``store``: where the token is shared with
    other processes (a ``TokenStore`` or a URL: ``redis://``, ``sqlite:///``, ``postgresql://``;
    None keeps it in this process), under ``key`` (a name of your choice, plus a hash of the
    grant). A token is refreshed ``margin`` s before it expires (plus up to ``jitter`` of the
    margin, chosen per token); ``lock_ttl`` bounds how long one process may hold the fetch
    lock. ``timeout``, ``retry`` and ``breaker`` configure the token endpoint's own client
    (``TOKEN_TIMEOUT``, ``TOKEN_RETRY``, ``TOKEN_BREAKER`` by default); ``transport``,
    ``clock`` and ``rng`` replace the network, time and jitter in tests.

    Use as ``Client(base_url, auth=OAuth2ClientCredentials(...))``; several clients of one
    event loop may share one object (and its token); each ``SyncClient`` runs a loop of its own,
    so give each its own object and a shared ``store``. Its repr and every error and log line
    mask the secret and the tokens.
    """

    grant_type = "client_credentials"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scopes: Sequence[str] = (),
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        client_auth: str = "basic",
        store: TokenStore | str | None = None,
        key: str | None = None,
        margin: float = 60.0,
        jitter: float = 0.2,
        lock_ttl: float = 30.0,
        timeout: Timeout | None = None,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        transport: Transport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            "OAuth2ClientCredentials", token_url, client_id, client_secret, scopes=scopes, audience=audience,
            extra_params=extra_params, client_auth=client_auth, store=store, key=key, margin=margin,
            jitter=jitter, lock_ttl=lock_ttl, timeout=timeout, retry=retry, breaker=breaker,
            transport=transport, clock=clock, rng=rng,
        )  # fmt: skip

    def _grant_params(self, stored: Token | None) -> dict[str, str]:
        return {}

    def _refresh_token_of(self, stored: Token | None) -> str | None:
        return None  # the client credentials grant issues no refresh token (RFC 6749 4.4.3)

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self._repr_fields()})"


class OAuth2RefreshToken(_OAuth2Grant):
    """The OAuth2 refresh token grant (RFC 6749 section 6): access on behalf of a user or an
    account whose admin granted it once, held as ``refresh_token``.

    When the endpoint answers with a new refresh token (rotation), the new one is saved to the
    ``store`` before the access token is used, and presented next time, by this process and by
    any other sharing the store, also after a restart: the ``refresh_token`` given here is only
    where the chain starts (a different one starts a new chain under a new key). With the
    default in-process store a restart starts again from the given one, so rotating providers
    need a shared ``store``. The other options are ``OAuth2ClientCredentials``'s.
    """

    grant_type = "refresh_token"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        scopes: Sequence[str] = (),
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        client_auth: str = "basic",
        store: TokenStore | str | None = None,
        key: str | None = None,
        margin: float = 60.0,
        jitter: float = 0.2,
        lock_ttl: float = 30.0,
        timeout: Timeout | None = None,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        transport: Transport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        initial = _check_text("OAuth2RefreshToken", "refresh_token", refresh_token)
        self._initial = initial
        super().__init__(
            "OAuth2RefreshToken", token_url, client_id, client_secret, scopes=scopes, audience=audience,
            extra_params=extra_params, client_auth=client_auth, store=store, key=key, margin=margin,
            jitter=jitter, lock_ttl=lock_ttl, timeout=timeout, retry=retry, breaker=breaker,
            transport=transport, clock=clock, rng=rng,
            identity=hashlib.sha256(initial.encode()).hexdigest(),
        )  # fmt: skip

    def _refresh_token_of(self, stored: Token | None) -> str:
        if stored is not None and stored.refresh_token:
            return stored.refresh_token  # the latest of the chain, rotated or not
        return self._initial

    def _grant_params(self, stored: Token | None) -> dict[str, str]:
        return {"refresh_token": self._refresh_token_of(stored)}

    def _rotated(self, stored: Token | None, token: Token) -> bool:
        return token.refresh_token != self._refresh_token_of(stored)

    def __repr__(self) -> str:
        return f"OAuth2RefreshToken({self._repr_fields()} refresh_token=***)"
