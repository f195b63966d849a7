"""The service's config file (``interlock.toml``): pydantic models at the file boundary, turned
into the library's own frozen config objects (``Retry``, ``CircuitBreaker``, ``Cache``...).

``load_config(path)`` reads, interpolates ``${VAR}`` / ``${VAR:-default}`` from the
environment, validates, and builds every library object once (so a mistake the library finds,
such as a bad cache route template, is reported at load time too). Every mistake is one
``ConfigFileError`` naming the file, the key path (``upstreams.crm.retry.attempts``), what is
wrong and what is accepted; an unknown key gets a did-you-mean.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .._redact import MASK, REDACTION, redact_url
from ..client import Batch, Cache, CacheRule, Concurrency, Limits, RateLimit, Timeout
from ..core.backoff import Backoff
from ..core.breaker import CircuitBreaker
from ..core.redelivery import Redelivery
from ..core.retry import Retry
from ..errors import ConfigError
from ..inbox import signatures
from ._interpolate import MissingVariable, interpolate, key_path

__all__ = [
    "AlertsConfig",
    "ConfigFileError",
    "LoadedConfig",
    "ServiceConfig",
    "SourceConfig",
    "SyncConfig",
    "UpstreamConfig",
    "config_schema",
    "load_config",
    "parse_config",
    "resolve_callable",
    "validate_document",
]

SCHEMES = ("standard-webhooks", "stripe", "github", "shopify", "slack", "hmac")
"""The ``[sources.NAME] scheme`` values, one per ``interlock.signatures`` class."""
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""Upstream, source and sync names: they appear in URL paths and metric labels."""


class ConfigFileError(ConfigError):
    """A mistake in the config file: ``FILE: key.path: what is wrong (what is accepted)``.

    ``file`` and ``path`` (the dotted key path) say where; ``problem`` what. One message, no
    traceback; ``interlock check`` / ``serve`` print it on one line and exit 2.
    """

    def __init__(self, file: str, path: str, problem: str, *, more: int = 0) -> None:
        super().__init__(file, path, problem)
        self.file = file
        self.path = path
        self.more = more
        where = f"{file}: {path}: " if path else f"{file}: "
        tail = f" (and {more} more mistake{'s' if more > 1 else ''})" if more else ""
        self.args = (f"{where}{problem}{tail}",)

    def __str__(self) -> str:
        return str(self.args[0])


# -- the models -------------------------------------------------------------------------------


class _Model(BaseModel):
    # strict: TOML values are typed already, so "5" for 5 or true for 1 is a mistake to report.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def __repr_args__(self) -> Any:
        # Header values carry credentials and URLs may carry passwords: never in a repr.
        for key, value in super().__repr_args__():
            if key == "headers" and isinstance(value, dict):
                yield key, dict.fromkeys(value, MASK)
            elif key == "auth" and isinstance(value, dict):
                yield key, {k: v if k == "type" else MASK for k, v in value.items()}
            elif isinstance(value, str) and "@" in value and "://" in value:
                yield key, redact_url(value)
            else:
                yield key, value


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]


def _off(value: bool) -> bool:
    if value is not False:
        raise ValueError("must be false (to switch the policy off) or a table of its settings")
    return value


Off = Annotated[bool, AfterValidator(_off)]
"""``retry = false``: the policy switched off (only ``false``: ``0`` or ``true`` are mistakes)."""


class BackoffConfig(_Model):
    """Waits between attempts: ``base * multiplier**n`` with full jitter, capped at ``cap``;
    or an explicit list of ``delays``."""

    base: Seconds = 0.1
    multiplier: Annotated[float, Field(ge=1)] = 2.0
    cap: Seconds = 10.0
    delays: list[Seconds] = []

    def build(self) -> Backoff:
        """The library's ``Backoff``."""
        return Backoff(base=self.base, multiplier=self.multiplier, cap=self.cap, delays=tuple(self.delays))


class RetryConfig(_Model):
    """``retry = { attempts = 5 }``: the Client's retry policy (``interlock.Retry``)."""

    attempts: Count = 4
    backoff: BackoffConfig | None = None
    statuses: list[Annotated[int, Field(ge=400, le=599)]] = [429, 502, 503, 504]
    max_retry_after: Seconds = 60.0
    wait_out_breaker: bool = False
    """Wait for an open breaker to let a probe through instead of failing at once."""

    def build(self) -> Retry:
        """The library's ``Retry``."""
        backoff = self.backoff.build() if self.backoff else Backoff(base=0.1, multiplier=2.0, cap=10.0)
        return Retry(
            attempts=self.attempts,
            backoff=backoff,
            statuses=frozenset(self.statuses),
            max_retry_after=self.max_retry_after,
            circuit_open=self.wait_out_breaker,
        )


class BreakerConfig(_Model):
    """``breaker = { failure_ratio = 0.5, min_calls = 20, open_for = 10 }`` (``interlock.CircuitBreaker``)."""

    failure_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    min_calls: Count = 20
    window: PositiveSeconds = 10.0
    open_for: PositiveSeconds = 10.0
    half_open_calls: Count = 1
    slow_call: PositiveSeconds | None = None

    def build(self) -> CircuitBreaker:
        """The library's ``CircuitBreaker``."""
        return CircuitBreaker(
            failure_ratio=self.failure_ratio,
            min_calls=self.min_calls,
            window=self.window,
            open_for=self.open_for,
            half_open_calls=self.half_open_calls,
            slow_call=self.slow_call,
        )


class TimeoutConfig(_Model):
    """``timeout = { connect = 1, read = 5, total = 8 }`` in seconds; ``timeout = 8`` sets ``total``."""

    connect: PositiveSeconds | None = 3.0
    read: PositiveSeconds | None = 10.0
    attempt: PositiveSeconds | None = None
    total: PositiveSeconds | None = 30.0

    def build(self) -> Timeout:
        """The library's ``Timeout``."""
        return Timeout(connect=self.connect, read=self.read, attempt=self.attempt, total=self.total)


class ConcurrencyConfig(_Model):
    """``concurrency = { limit = 100, writes = 5 }``; ``concurrency = 5`` bounds all calls to 5."""

    limit: Count | None = 100
    writes: Count | None = 5


class RateLimitConfig(_Model):
    """``rate_limit = { per_second = 10 }`` (``interlock.RateLimit``): calls wait for their turn."""

    per_second: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    burst: Count | None = None
    adaptive: bool = True
    max_wait: Seconds | None = None
    store: str | None = None
    """``"memory"`` or a ``redis://`` URL (every process shares one quota); default ``[store].quota``."""
    on_store_error: Literal["local", "fail"] = "local"
    warn_below: Annotated[float, Field(ge=0, lt=1)] = 0.2

    @model_validator(mode="after")
    def _needs_rate(self) -> RateLimitConfig:
        if self.per_second is None and not self.adaptive:
            raise ValueError("give per_second, or adaptive = true to learn the rate from the upstream's headers")
        return self


class CacheRuleConfig(_Model):
    """One cached route: ``{ ttl = 60, stale_if_error = 300, tags = ["customer:{id}"] }``."""

    ttl: Seconds
    stale_while_revalidate: Seconds | None = None
    stale_if_error: Seconds | None = None
    tags: list[str] = []


class CacheConfig(_Model):
    """``cache = { routes = { "/industries" = 3600 } }`` (``interlock.Cache``): only the routes
    listed are cached, each for its TTL in seconds (or a rule table)."""

    routes: dict[str, Seconds | CacheRuleConfig]
    stale_while_revalidate: Seconds = 0.0
    stale_if_error: Seconds = 0.0
    respect_headers: bool = False
    max_entries: Count = 10_000
    max_bytes: Count = 64 * 1024 * 1024
    store: str | None = None
    """``"memory"`` or a ``redis://`` URL; default ``[store].cache``, else memory."""


class BatchConfig(_Model):
    """``batch = [{ route = "/customers/{id}", via = "/customers" }]`` (``interlock.Batch``)."""

    route: str
    via: str
    ids_param: str = "ids"
    max_size: Count = 100
    window: Seconds = 0.005
    items_path: str = "data"
    id_field: str = "id"


class _Policies(_Model):
    """The Client policies an upstream and a source's forward delivery share."""

    profile: Literal["interactive", "background"] | None = None
    timeout: PositiveSeconds | TimeoutConfig | None = None
    retry: RetryConfig | Off | None = None
    breaker: BreakerConfig | Off | None = None
    concurrency: Count | ConcurrencyConfig | Off | None = None
    rate_limit: RateLimitConfig | None = None
    max_response_bytes: Count | None = None


class UpstreamConfig(_Policies):
    """``[upstreams.NAME]``: one third-party API, reachable at ``/proxy/NAME/...``.

    ``headers`` go with every call (the upstream's credentials live here, never with the
    callers); ``auth``: the upstream's credentials as a table
    (``interlock.auth.credentials_from_config``: ``type = "bearer" | "api_key" | "basic" |
    "oauth2_client_credentials" | "oauth2_refresh_token"`` and its settings; OAuth2 tokens are
    shared through ``[store] url`` unless ``store`` says otherwise); ``callers``: tokens a caller
    must present as ``Authorization: Bearer <token>`` (empty: any caller that can reach the
    service).
    """

    base_url: str
    headers: dict[str, str] = {}
    auth: dict[str, Any] | None = None
    cache: CacheConfig | None = None
    batch: BatchConfig | list[BatchConfig] | None = None
    coalesce: bool = True
    callers: list[SecretStr] = []
    follow_redirects: bool = True
    """Follow redirects to the upstream's own origin (never to another one)."""

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _http_url(value, "an absolute http(s) URL such as https://api.crm.example/v1")

    @field_validator("callers")
    @classmethod
    def _tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        for token in value:
            if len(token.get_secret_value()) < 8:
                raise ValueError("each caller token must be at least 8 characters")
        return value


class DeliveryConfig(_Policies):
    """``delivery = {...}`` of a forwarding source: the Client policies of its forward calls
    (default: the ``background`` profile, concurrency 5)."""


class HmacConfig(_Model):
    """Options of ``scheme = "hmac"`` (``interlock.signatures.HMAC``)."""

    header: str = "X-Signature"
    algorithm: Literal["sha1", "sha256", "sha384", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    signed_payload: str | None = None
    id_header: str | None = None
    type_header: str | None = None


class SourceConfig(_Model):
    """``[sources.NAME]``: webhooks received at ``POST /hooks/NAME``, verified with ``scheme``
    and ``secrets``, then handled by ``handler = "module:function"`` or delivered to
    ``forward = "http://internal/..."`` through an outbound Client."""

    scheme: Literal["standard-webhooks", "stripe", "github", "shopify", "slack", "hmac"]
    secrets: list[SecretStr] = []
    public_keys: list[str] = []
    tolerance: PositiveSeconds | None = None
    hmac: HmacConfig | None = None
    dedupe: str | None = None
    event_type: str | None = None
    ordering_key: str | None = None
    max_body: Count = 1_048_576
    retry: RetryScheduleConfig | None = None
    handler: str | None = None
    forward: str | None = None
    forward_headers: list[str] = ["content-type", "user-agent"]
    headers: dict[str, str] = {}
    """Added to each forward call (the internal service's credentials)."""
    delivery: DeliveryConfig | None = None

    @field_validator("forward")
    @classmethod
    def _forward_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "an absolute http(s) URL such as http://127.0.0.1:9000/hooks")

    @field_validator("handler")
    @classmethod
    def _handler_ref(cls, value: str | None) -> str | None:
        return None if value is None else _callable_ref(value)

    @model_validator(mode="after")
    def _consistent(self) -> SourceConfig:
        if (self.handler is None) == (self.forward is None):
            raise ValueError('give exactly one of handler = "module:function" or forward = "http://..."')
        if self.scheme == "standard-webhooks":
            if not self.secrets and not self.public_keys:
                raise ValueError("standard-webhooks needs secrets (whsec_...) or public_keys (whpk_...)")
        elif not self.secrets:
            raise ValueError(f"scheme {self.scheme!r} needs secrets = [\"${{...}}\"] (one or more)")
        if self.public_keys and self.scheme != "standard-webhooks":
            raise ValueError("public_keys apply to scheme = \"standard-webhooks\" only")
        if self.hmac is not None and self.scheme != "hmac":
            raise ValueError("the [hmac] options apply to scheme = \"hmac\" only")
        if self.forward is None and (self.delivery is not None or self.headers):
            raise ValueError("delivery and headers apply to a forward source only")
        return self


class RetryScheduleConfig(_Model):
    """``retry = { attempts = 8, backoff = { base = 1, cap = 600 } }``: how often an event's
    handler is tried before its event goes to the DLQ (``interlock.Redelivery``)."""

    attempts: Count = 8
    backoff: BackoffConfig | None = None

    def build(self) -> Redelivery:
        """The library's ``Redelivery``."""
        if self.backoff is None:
            return Redelivery(attempts=self.attempts)
        return Redelivery(attempts=self.attempts, backoff=self.backoff.build())


SourceConfig.model_rebuild()


class WriteBackConfig(_Model):
    """``write_back = { upstream = "erp", path = "/customers/{id}" }``: apply each record by a
    PUT through another configured upstream."""

    upstream: str
    path: str
    method: Literal["PUT", "POST", "PATCH"] = "PUT"


class SyncConfig(_Model):
    """``[syncs.NAME]``: poll ``path`` of ``upstream`` for records changed since the checkpoint
    and apply each to ``handler = "module:function"`` or a ``write_back``."""

    upstream: str
    path: str
    since_param: str = "updated_since"
    time_format: Literal["rfc3339", "epoch", "epoch_ms"] = "rfc3339"
    id: str = "id"
    updated_at: str = "updated_at"
    items: str = "data"
    page_size: Count | None = 100
    every: PositiveSeconds | None = 60.0
    lookback: Seconds = 0.0
    concurrency: Count | None = None
    attempts: Count | None = None
    handler: str | None = None
    write_back: WriteBackConfig | None = None

    @field_validator("handler")
    @classmethod
    def _handler_ref(cls, value: str | None) -> str | None:
        return None if value is None else _callable_ref(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must be a path starting with '/', such as '/customers', got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> SyncConfig:
        if (self.handler is None) == (self.write_back is None):
            raise ValueError('give exactly one of handler = "module:function" or write_back = {...}')
        return self


class ServerConfig(_Model):
    """``[server]``: where the service listens and who may use its admin API."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    admin_token: SecretStr | None = None
    """``Authorization: Bearer <admin_token>`` for ``/admin/api/...``; unset: the admin API answers 503."""
    workers: Count = 1
    """Processes serving (more than one needs a PostgreSQL store)."""
    concurrency: Count = 8
    """Events handled at once by each process's inbox workers."""
    grace: Seconds = 10.0
    """Seconds handlers in flight get to finish on SIGTERM before their leases are released."""
    max_body: Count = 10 * 1024 * 1024
    """The largest request body the proxy forwards (413 above)."""
    run_workers: bool = True
    """Handle inbox events and run syncs in this process (false: ingress and proxy only, with
    ``interlock worker`` processes elsewhere)."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "warning"

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use a random token: openssl rand -hex 32)")
        return value


class StoreConfig(_Model):
    """``[store]``: where events, dead letters and sync checkpoints live; optional Redis for
    shared caches and quotas."""

    url: str = "sqlite:///interlock.db"
    cache: str | None = None
    """Default cache store of every upstream: ``"memory"`` or ``redis://...``."""
    quota: str | None = None
    """Default rate-limit store of every upstream: ``"memory"`` or ``redis://...``."""

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(f"must be sqlite:///PATH or postgresql://..., got {redact_url(value)!r}")
        return value

    @field_validator("cache", "quota")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must be 'memory' or a redis:// URL, got {redact_url(value)!r}")
        return value


class AlertRuleConfig(_Model):
    """Both levels of one rule: ``[alerts.upstream_p95] warning = 0.4, firing = 0.5``."""

    warning: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    firing: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    min_samples: Count | None = None


class AlertsConfig(_Model):
    """``[alerts]``: the dashboard's thresholds (``interlock.core.alerts.Thresholds``; defaults
    from the seeds: p95 > 500 ms, error rate > 1 %, cache hit rate < 90 %, quota left < 20 %,
    webhook processing > 5 s), as one firing level per key or a table per rule; and where
    issues and firing alerts are posted (``webhook_url``, Slack-compatible)."""

    rate_limit_remaining_below: Annotated[float, Field(ge=0, le=1)] | None = None
    p95_above: PositiveSeconds | None = None
    error_rate_above: Annotated[float, Field(ge=0, le=1)] | None = None
    webhook_processing_above: PositiveSeconds | None = None
    cache_hit_rate_below: Annotated[float, Field(ge=0, le=1)] | None = None
    upstream_p95: AlertRuleConfig | None = None
    ratelimit_headroom: AlertRuleConfig | None = None
    processing_p95: AlertRuleConfig | None = None
    error_rate: AlertRuleConfig | None = None
    cache_hit_rate: AlertRuleConfig | None = None
    webhook_url: str | None = None
    """Issues and firing alerts are posted here (an http(s) URL)."""

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "an http(s) URL such as https://hooks.slack.com/...")

    def thresholds(self) -> Any:
        """The ``interlock.core.alerts.Thresholds`` these settings describe."""
        from ..core.alerts import Thresholds

        values = self.model_dump(exclude_none=True, exclude={"webhook_url"})
        return Thresholds.from_mapping(values)


class ServiceConfig(_Model):
    """The whole ``interlock.toml``."""

    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    inbox: RetryScheduleConfig = RetryScheduleConfig()
    """The default retry schedule of every source's events (a source's ``retry`` overrides it)."""
    upstreams: dict[Annotated[str, Field(pattern=NAME_PATTERN)], UpstreamConfig] = {}
    sources: dict[Annotated[str, Field(pattern=NAME_PATTERN)], SourceConfig] = {}
    syncs: dict[Annotated[str, Field(pattern=NAME_PATTERN)], SyncConfig] = {}
    alerts: AlertsConfig = AlertsConfig()


# -- helpers ----------------------------------------------------------------------------------


def _http_url(value: str, accepted: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"must be {accepted}, got {redact_url(value)!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be {accepted}, got {redact_url(value)!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"must not carry a query or fragment, got {redact_url(value)!r}")
    return value


def _callable_ref(value: str) -> str:
    module, sep, name = value.partition(":")
    if not sep or not module or not name.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
        raise ValueError(f'must be "module:function" such as "myapp.hooks:on_invoice", got {value!r}')
    return value


def resolve_callable(ref: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` reference names; ``ValueError`` saying why not."""
    module_name, _, name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc} (is it on PYTHONPATH?)") from None
    found = getattr(module, name, None)
    if found is None:
        public = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
        hint = _did_you_mean(name, public)
        raise ValueError(f"module {module_name!r} has no {name!r}{hint}")
    if not callable(found):
        raise ValueError(f"{ref!r} is not callable")
    return found  # type: ignore[no-any-return]


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class whose fields live at ``loc`` (following dict keys and unions)."""
    current: Any = ServiceConfig
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                # pydantic puts a union member's name in loc (``RetryConfig``): stay put.
                continue
            current = info.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            models = [a for a in get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
            dicts = [a for a in get_args(tp) if get_origin(a) in (dict, list)]
            if models:
                tp = models[0]
            elif dicts:
                tp = dicts[0]
            else:
                return tp
        else:
            return tp


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "dict": "a table",
    "list": "an array",
}


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """pydantic's location without the union-member and ``[key]`` markers it inserts."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (
            (part.endswith("]") and "[" in part)
            or part.endswith("Config")
            or part in _UNION_TAGS
            or part.startswith(("constrained-", "function-"))
        ):
            continue
        out.append(part)
    return tuple(out)


_UNION_TAGS = frozenset({"function-after", "literal['interactive','background']", "constrained-float", "float", "int", "bool", "str", "none", "dict", "list", "function-before", "is-instance"})


def _describe(err: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    loc = tuple(err["loc"])
    path = _clean_loc(loc)
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        model = _model_at(path[:-1])
        known = sorted(model.model_fields) if model else []
        key = str(path[-1])
        hint = _did_you_mean(key, known)
        return path, f"unknown key {key!r}{hint} (accepted: {', '.join(known)})"
    if kind == "missing":
        return path, "is required"
    message = str(err["msg"])
    if kind in ("value_error", "assertion_error"):
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return path, message
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return path, f"must be one of {expected}, got {_shown(path, got)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return path, f"must be a table, got {_shown(path, got)}"
    if kind == "string_pattern_mismatch":
        return path, f"{_shown(path, path[-1])} is not a valid name (letters, digits, '_', '-', '.'; at most 63)"
    for word, phrase in _TYPE_WORDS.items():
        if kind.startswith(f"{word}_") and kind.endswith(("_type", "_parsing")):
            return path, f"must be {phrase}, got {_shown(path, got)}"
    for before, after in _PHRASES:
        message = message.replace(before, after)
    return path, f"{message[:1].lower()}{message[1:]}, got {_shown(path, got)}"


_PHRASES = (
    ("Input should be ", "must be "),
    ("greater than or equal to ", ">= "),
    ("less than or equal to ", "<= "),
    ("greater than ", "> "),
    ("less than ", "< "),
)


def _shown(path: tuple[str | int, ...], value: Any) -> str:
    if any(str(p) in _SECRET_KEYS for p in path):
        return MASK
    text = REDACTION.mask_text(repr(value))  # a password in a URL, an api_key= parameter
    return text if len(text) <= 60 else text[:57] + "..."


_SECRET_KEYS = frozenset({"admin_token", "secrets", "callers", "headers", "webhook_url"})


def _first_error(exc: ValidationError) -> tuple[tuple[str | int, ...], str, int]:
    errors = exc.errors(include_url=False)
    # A union reports one error per member; keep the most telling one per key: the deepest
    # location (``retry = { attempts = 0 }`` says what is wrong with attempts), then a message
    # of ours (a validator's) over a generic type mismatch.
    seen: dict[tuple[str | int, ...], tuple[tuple[int, int], tuple[str | int, ...], str]] = {}
    for err in errors:
        path, message = _describe(err)
        rank = (len(path), 1 if err["type"] == "value_error" else 0)
        top = path[:3]
        best = seen.get(top)
        if best is None or rank > best[0]:
            seen[top] = (rank, path, message)
    first = next(iter(seen.values()))
    return first[1], first[2], len(seen) - 1


# -- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config file: the models, where it came from, and which key paths hold values
    from the environment (redacted wherever the config is shown)."""

    config: ServiceConfig
    file: str
    from_env: frozenset[tuple[str | int, ...]] = frozenset()

    def error(self, path: tuple[str | int, ...], problem: str) -> ConfigFileError:
        """A ``ConfigFileError`` at ``path`` of this file."""
        return ConfigFileError(self.file, key_path(path), problem)

    def redacted(self) -> dict[str, Any]:
        """The effective config as JSON, every secret shown as ``***``: SecretStr fields, header
        values, values interpolated from the environment, passwords in URLs."""
        doc = self.config.model_dump(mode="python")
        shown: dict[str, Any] = _redact_doc(doc, (), self.from_env)
        return shown

    def __repr__(self) -> str:
        return f"LoadedConfig({self.file!r}, upstreams={sorted(self.config.upstreams)}, sources={sorted(self.config.sources)})"


_AUTH_SECRETS = frozenset({"token", "key", "password", "client_secret", "refresh_token"})
"""The settings of an ``auth`` table that are secrets (shown ``***`` in the effective config)."""


def _redact_doc(node: Any, path: tuple[str | int, ...], from_env: frozenset[tuple[str | int, ...]]) -> Any:
    if isinstance(node, SecretStr):
        return MASK
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            sub = (*path, k)
            if len(path) >= 1 and path[-1] == "headers" and isinstance(v, str):
                out[k] = MASK if REDACTION.is_sensitive_header(k) or sub in from_env else v
            elif len(path) >= 1 and path[-1] == "auth" and k in _AUTH_SECRETS:
                out[k] = MASK
            else:
                out[k] = _redact_doc(v, sub, from_env)
        return out
    if isinstance(node, list):
        return [_redact_doc(v, (*path, i), from_env) for i, v in enumerate(node)]
    if isinstance(node, str):
        if path in from_env:
            return MASK
        return redact_url(node) if "@" in node and "://" in node else node
    return node


def parse_config(text: str, *, file: str = "interlock.toml", env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Validate config ``text`` (TOML) and build every library object once; a
    ``ConfigFileError`` for the first mistake."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(file, "", f"not valid TOML: {exc}") from None
    return validate_document(doc, file=file, env=env)


def validate_document(
    doc: Mapping[str, Any], *, file: str = "interlock.toml", env: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Validate a parsed config document (what ``tomllib`` returns) as ``parse_config`` does."""
    try:
        doc, from_env = interpolate(dict(doc), os.environ if env is None else env)
    except MissingVariable as exc:
        raise ConfigFileError(file, key_path(exc.path), exc.problem) from None
    try:
        config = ServiceConfig.model_validate(doc)
    except ValidationError as exc:
        path, problem, more = _first_error(exc)
        raise ConfigFileError(file, key_path(path), problem, more=more) from None
    loaded = LoadedConfig(config, file, frozenset(from_env))
    check_buildable(loaded)
    return loaded


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate the config file at ``path`` (see ``parse_config``)."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(shown, "", "no such file (write one: see examples/interlock.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(shown, "", f"cannot read it: {exc}") from None
    return parse_config(text, file=shown, env=env)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of ``interlock.toml``, for editors (``interlock config schema``)."""
    schema = ServiceConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "interlock.toml"
    schema["description"] = "The configuration of `interlock serve` (TOML)."
    return schema


# -- building the library's objects -----------------------------------------------------------


def _library(loaded: LoadedConfig, path: tuple[str | int, ...], build: Callable[[], Any]) -> Any:
    try:
        return build()
    except ConfigError as exc:
        raise loaded.error(path, f"{exc.field}: {exc.problem}" if exc.field else exc.problem) from None
    except ValueError as exc:
        raise loaded.error(path, str(exc)) from None


def client_options(loaded: LoadedConfig, name: str) -> dict[str, Any]:
    """The ``interlock.Client`` keyword arguments of ``[upstreams.NAME]``."""
    up = loaded.config.upstreams[name]
    where: tuple[str | int, ...] = ("upstreams", name)
    options = policy_options(loaded, up, where, default_profile="interactive")
    store = loaded.config.store
    if up.cache is not None:
        c = up.cache

        def cache() -> Cache:
            routes: dict[str, float | CacheRule] = {}
            for template, rule in c.routes.items():
                routes[template] = (
                    rule
                    if isinstance(rule, float | int)
                    else CacheRule(
                        ttl=rule.ttl,
                        stale_while_revalidate=rule.stale_while_revalidate,
                        stale_if_error=rule.stale_if_error,
                        tags=tuple(rule.tags),
                    )
                )
            return Cache(
                routes=routes,
                store=c.store or store.cache,
                stale_while_revalidate=c.stale_while_revalidate,
                stale_if_error=c.stale_if_error,
                respect_headers=c.respect_headers,
                max_entries=c.max_entries,
                max_bytes=c.max_bytes,
            )

        options["cache"] = _library(loaded, (*where, "cache"), cache)
    if up.batch is not None:
        batches = up.batch if isinstance(up.batch, list) else [up.batch]
        options["batch"] = [
            _library(loaded, (*where, "batch", i), functools.partial(_batch, b)) for i, b in enumerate(batches)
        ]
    options["coalesce"] = up.coalesce
    options["headers"] = dict(up.headers)
    if up.auth is not None:
        options["auth"] = _credentials(loaded, (*where, "auth"), up.auth)
    if not up.follow_redirects:
        from ..core.redirect import Redirects

        options["redirects"] = Redirects(follow=False)
    return options


def _credentials(loaded: LoadedConfig, where: tuple[str | int, ...], table: dict[str, Any]) -> Any:
    from ..auth import credentials_from_config

    settings = dict(table)
    if str(settings.get("type", "")).startswith("oauth2_"):
        settings.setdefault("store", loaded.config.store.url)  # one token for every worker
    try:
        return credentials_from_config(settings, owner="auth")
    except ConfigError as exc:
        raise loaded.error((*where, exc.field), exc.problem) from None
    except (TypeError, ValueError) as exc:  # a setting of the wrong type: never quote its value
        raise loaded.error(where, f"invalid settings for type {settings.get('type')!r} ({type(exc).__name__})") from None


def _batch(b: BatchConfig) -> Batch:
    return Batch(
        route=b.route, via=b.via, ids_param=b.ids_param, max_size=b.max_size, window=b.window,
        items_path=b.items_path, id_field=b.id_field,
    )


def policy_options(
    loaded: LoadedConfig, policies: _Policies, where: tuple[str | int, ...], *, default_profile: str
) -> dict[str, Any]:
    """The Client keyword arguments of the policy keys (timeout, retry, breaker, concurrency,
    rate_limit, profile, max_response_bytes) shared by upstreams and forward deliveries."""
    options: dict[str, Any] = {"profile": policies.profile or default_profile}
    if policies.timeout is not None:
        t = policies.timeout
        options["timeout"] = _library(
            loaded, (*where, "timeout"), lambda: Timeout(total=t) if isinstance(t, float | int) else t.build()
        )
    if policies.retry is False:
        options["retry"] = None
    elif isinstance(policies.retry, RetryConfig):
        options["retry"] = _library(loaded, (*where, "retry"), policies.retry.build)
    if policies.breaker is False:
        options["breaker"] = None
    elif isinstance(policies.breaker, BreakerConfig):
        options["breaker"] = _library(loaded, (*where, "breaker"), policies.breaker.build)
    conc = policies.concurrency
    if conc is False:
        options["concurrency"] = None
    elif isinstance(conc, int):
        options["concurrency"] = Concurrency(limit=conc, writes=min(conc, 5))
    elif conc is not None:
        options["concurrency"] = Concurrency(limit=conc.limit, writes=conc.writes)
    if policies.rate_limit is not None:
        r = policies.rate_limit
        options["rate_limit"] = _library(
            loaded,
            (*where, "rate_limit"),
            lambda: RateLimit(
                per_second=r.per_second, burst=r.burst, adaptive=r.adaptive, max_wait=r.max_wait,
                store=r.store or loaded.config.store.quota, on_store_error=r.on_store_error, warn_below=r.warn_below,
            ),
        )
    if policies.max_response_bytes is not None:
        options["limits"] = Limits(max_response_bytes=policies.max_response_bytes)
    return options


def signature_of(loaded: LoadedConfig, name: str) -> Any:
    """The ``interlock.signatures`` scheme of ``[sources.NAME]``."""
    src = loaded.config.sources[name]
    secrets = [s.get_secret_value() for s in src.secrets]
    extra: dict[str, Any] = {} if src.tolerance is None else {"tolerance": src.tolerance}

    def build() -> Any:
        if src.scheme == "standard-webhooks":
            return signatures.StandardWebhooks(secrets, public_keys=list(src.public_keys), **extra)
        if src.scheme == "hmac":
            h = src.hmac or HmacConfig()
            return signatures.HMAC(
                secrets, header=h.header, algorithm=h.algorithm, encoding=h.encoding, prefix=h.prefix,
                timestamp_header=h.timestamp_header, signed_payload=h.signed_payload, id_header=h.id_header,
                type_header=h.type_header, **extra,
            )
        if src.scheme in ("stripe", "slack"):
            cls = signatures.Stripe if src.scheme == "stripe" else signatures.Slack
            return cls(secrets, **extra)
        if extra:
            raise ValueError(f"tolerance does not apply to scheme {src.scheme!r} (it signs no timestamp)")
        return {"github": signatures.GitHub, "shopify": signatures.Shopify}[src.scheme](secrets)

    return _library(loaded, ("sources", name), build)


def resolve_handlers(loaded: LoadedConfig) -> None:
    """Import every ``handler = "module:function"`` of the file, so a missing one is a
    ``ConfigFileError`` naming its key path (``interlock check`` and ``serve`` call it)."""
    cfg = loaded.config
    refs = [(("sources", n, "handler"), s.handler) for n, s in cfg.sources.items()]
    refs += [(("syncs", n, "handler"), s.handler) for n, s in cfg.syncs.items()]
    for path, ref in refs:
        if ref is not None:
            try:
                resolve_callable(ref)
            except ValueError as exc:
                raise loaded.error(path, str(exc)) from None


def check_buildable(loaded: LoadedConfig) -> None:
    """Build every library object the file describes once, so what the library refuses is
    reported at load time with its key path (handlers are imported by ``serve``, not here)."""
    cfg = loaded.config
    known = sorted(cfg.upstreams)
    for name, sync in cfg.syncs.items():
        refs: list[tuple[tuple[str | int, ...], str]] = [(("syncs", name, "upstream"), sync.upstream)]
        if sync.write_back is not None:
            refs.append((("syncs", name, "write_back", "upstream"), sync.write_back.upstream))
        for path, upstream in refs:
            if upstream not in cfg.upstreams:
                hint = _did_you_mean(upstream, known)
                accepted = f"configured upstreams: {', '.join(known)}" if known else "no [upstreams.NAME] is configured"
                raise loaded.error(path, f"no upstream named {upstream!r}{hint} ({accepted})")
    for name in cfg.upstreams:
        client_options(loaded, name)
    for name, src in cfg.sources.items():
        signature_of(loaded, name)
        if src.delivery is not None:
            policy_options(loaded, src.delivery, ("sources", name, "delivery"), default_profile="background")
        if src.retry is not None:
            _library(loaded, ("sources", name, "retry"), src.retry.build)
    _library(loaded, ("inbox",), cfg.inbox.build)
    _library(loaded, ("alerts",), cfg.alerts.thresholds)
    if cfg.server.workers > 1 and cfg.store.url.startswith("sqlite:"):
        raise loaded.error(
            ("server", "workers"),
            f"{cfg.server.workers} processes cannot share a SQLite store; use workers = 1, or a "
            "postgresql:// [store].url for several processes",
        )
