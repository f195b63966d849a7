"""Configuration of the simulated API: frozen dataclasses validated at construction.

Every object round-trips through JSON (``to_dict`` / ``from_dict``) so the same configuration
can be handed to a child process (``spawn_testbed``) or changed live over the admin API.
Durations are seconds as floats, except fields whose name ends in ``_ms``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, cast

from ..errors import ConfigError
from ._timefmt import parse_rfc3339_ms

__all__ = [
    "DIALECTS",
    "PAGINATION_BUGS",
    "Faults",
    "Latency",
    "Outage",
    "RateLimitConfig",
    "TestbedConfig",
]

LatencyKind = Literal["fixed", "uniform", "lognormal"]
Algorithm = Literal["token_bucket", "fixed_window"]
Dialect = Literal["x-ratelimit-epoch", "x-ratelimit-delta", "ietf", "retry-after-seconds", "retry-after-date"]
PaginationBug = Literal["repeat_cursor", "has_more_without_cursor", "no_total", "endless"]
Rounding = Literal["up", "down"]
PaginationStyle = Literal["cursor", "offset", "page"]

LATENCY_KINDS: tuple[str, ...] = ("fixed", "uniform", "lognormal")
ALGORITHMS: tuple[str, ...] = ("token_bucket", "fixed_window")
DIALECTS: tuple[str, ...] = (
    "x-ratelimit-epoch",
    "x-ratelimit-delta",
    "ietf",
    "retry-after-seconds",
    "retry-after-date",
)
ROUNDINGS: tuple[str, ...] = ("up", "down")
PAGINATION_BUGS: tuple[str, ...] = ("repeat_cursor", "has_more_without_cursor", "no_total", "endless")
PAGINATION_STYLES: tuple[str, ...] = ("cursor", "offset", "page")
_KIND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fraction(owner: str, name: str, value: object) -> None:
    if not _is_number(value) or not 0.0 <= cast(float, value) <= 1.0:
        raise ConfigError(owner, name, f"must be a probability between 0 and 1, got {value!r}")


def _non_negative(owner: str, name: str, value: object) -> None:
    if not _is_number(value) or cast(float, value) < 0:
        raise ConfigError(owner, name, f"must be a number >= 0, got {value!r}")


def _positive(owner: str, name: str, value: object) -> None:
    if not _is_number(value) or cast(float, value) <= 0:
        raise ConfigError(owner, name, f"must be a number > 0, got {value!r}")


def _int_at_least(owner: str, name: str, value: object, minimum: int) -> None:
    if not _is_int(value) or cast(int, value) < minimum:
        raise ConfigError(owner, name, f"must be an integer >= {minimum}, got {value!r}")


def _one_of(owner: str, name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(owner, name, f"must be one of {allowed}, got {value!r}")


def _check_keys(owner: str, data: Mapping[str, Any], cls: type) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(owner, "*", f"expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(owner, unknown[0], f"unknown field; accepted fields are {', '.join(sorted(known))}")


@dataclass(frozen=True)
class Latency:
    """How long the simulated service takes to answer, drawn per request.

    ``Latency("fixed", ms=20)``, ``Latency("uniform", low_ms=5, high_ms=30)`` or
    ``Latency("lognormal", median_ms=20, sigma=0.5)`` (a long right tail, like real APIs).
    """

    kind: LatencyKind = "fixed"
    ms: float = 0.0
    low_ms: float = 0.0
    high_ms: float = 0.0
    median_ms: float = 0.0
    sigma: float = 0.0

    def __post_init__(self) -> None:
        _one_of("Latency", "kind", self.kind, LATENCY_KINDS)
        for name in ("ms", "low_ms", "high_ms", "median_ms", "sigma"):
            _non_negative("Latency", name, getattr(self, name))
        if self.kind == "uniform" and self.low_ms > self.high_ms:
            raise ConfigError("Latency", "low_ms", f"must be <= high_ms ({self.high_ms}), got {self.low_ms}")
        if self.kind == "lognormal" and self.median_ms <= 0:
            raise ConfigError("Latency", "median_ms", "must be > 0 for a lognormal latency")

    @classmethod
    def fixed(cls, ms: float) -> Latency:
        """Every request takes ``ms`` milliseconds."""
        return cls("fixed", ms=ms)

    @classmethod
    def uniform(cls, low_ms: float, high_ms: float) -> Latency:
        """Each request takes between ``low_ms`` and ``high_ms`` milliseconds, uniformly drawn."""
        return cls("uniform", low_ms=low_ms, high_ms=high_ms)

    @classmethod
    def lognormal(cls, median_ms: float, sigma: float) -> Latency:
        """Lognormal around ``median_ms`` with spread ``sigma``: mostly near the median, a long slow tail."""
        return cls("lognormal", median_ms=median_ms, sigma=sigma)

    def describe(self) -> str:
        """A short human description, e.g. ``fixed 20ms``."""
        if self.kind == "fixed":
            return f"fixed {self.ms:g}ms"
        if self.kind == "uniform":
            return f"uniform {self.low_ms:g}-{self.high_ms:g}ms"
        return f"lognormal median {self.median_ms:g}ms sigma {self.sigma:g}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, only the fields the kind uses."""
        if self.kind == "fixed":
            return {"kind": "fixed", "ms": self.ms}
        if self.kind == "uniform":
            return {"kind": "uniform", "low_ms": self.low_ms, "high_ms": self.high_ms}
        return {"kind": "lognormal", "median_ms": self.median_ms, "sigma": self.sigma}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Latency:
        """Parse the JSON form; ``ConfigError`` on an unknown field or a bad value."""
        _check_keys("Latency", data, cls)
        return cls(**data)


@dataclass(frozen=True)
class Outage:
    """A window during which every resource request fails with ``Faults.outage_status``.

    ``start`` and ``duration`` are seconds after the testbed started (or after the last
    ``configure``).
    """

    start: float = 0.0
    duration: float = 1.0

    def __post_init__(self) -> None:
        _non_negative("Outage", "start", self.start)
        _positive("Outage", "duration", self.duration)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"start": ..., "duration": ...}``."""
        return {"start": self.start, "duration": self.duration}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outage:
        """Parse the JSON form; ``ConfigError`` on an unknown field or a bad value."""
        _check_keys("Outage", data, cls)
        return cls(**data)


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. Probabilities are per resource request.

    ``reset_rate`` and the ``error_rates`` are drawn from one uniform number, so their sum
    must stay <= 1 and each status is injected with exactly its own probability.
    ``lost_response_rate`` applies to writes only: the write *is* applied, then the connection
    is dropped before the response is sent -- the case idempotency keys exist for.
    ``outage_retry_after``: seconds announced in ``Retry-After`` on every answer of an outage
    (a maintenance page or a load balancer that knows when to come back); None sends none.
    ``headers``: sent with every resource answer that gets past the outage and the rate limit,
    over whatever the answer had: a buggy upstream's absurd ``X-RateLimit-Limit: 0.000001``,
    or ``Retry-After: 86000`` on injected 429s.
    """

    latency: Latency | None = None
    error_rates: Mapping[int, float] = field(default_factory=dict)
    outages: Sequence[Outage] = ()
    slow_rate: float = 0.0
    slow_ms: float = 2000.0
    reset_rate: float = 0.0
    lost_response_rate: float = 0.0
    outage_status: int = 503
    outage_retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.latency is not None and not isinstance(self.latency, Latency):
            raise ConfigError("Faults", "latency", f"must be a Latency or None, got {self.latency!r}")
        if not isinstance(self.error_rates, Mapping):
            raise ConfigError("Faults", "error_rates", "must be a mapping {status: probability}")
        rates: dict[int, float] = {}
        for status, rate in self.error_rates.items():
            try:
                code = int(status)
            except (TypeError, ValueError):
                raise ConfigError("Faults", "error_rates", f"status {status!r} is not an integer") from None
            if not 400 <= code <= 599:
                raise ConfigError("Faults", "error_rates", f"status {code} is not in 400..599")
            _fraction("Faults", f"error_rates[{code}]", rate)
            rates[code] = float(rate)
        # A private copy, so a caller mutating its dict cannot change a frozen config.
        object.__setattr__(self, "error_rates", rates)
        outages = tuple(self.outages)
        for outage in outages:
            if not isinstance(outage, Outage):
                raise ConfigError("Faults", "outages", f"must hold Outage objects, got {outage!r}")
        object.__setattr__(self, "outages", outages)
        _fraction("Faults", "slow_rate", self.slow_rate)
        _non_negative("Faults", "slow_ms", self.slow_ms)
        _fraction("Faults", "reset_rate", self.reset_rate)
        _fraction("Faults", "lost_response_rate", self.lost_response_rate)
        total = self.reset_rate + sum(rates.values())
        if total > 1.0 + 1e-9:
            raise ConfigError(
                "Faults", "error_rates", f"reset_rate + error rates must sum to <= 1, got {total:g}"
            )
        if not _is_int(self.outage_status) or not 400 <= self.outage_status <= 599:
            raise ConfigError(
                "Faults", "outage_status", f"must be an HTTP error status, got {self.outage_status!r}"
            )
        if self.outage_retry_after is not None:
            _non_negative("Faults", "outage_retry_after", self.outage_retry_after)
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ConfigError("Faults", "headers", "must map header names to string values")
        object.__setattr__(self, "headers", dict(self.headers))

    @property
    def is_clean(self) -> bool:
        """True when nothing is injected at all (no latency, errors, outages, slow requests, resets or lost responses)."""
        return (
            self.latency is None
            and not any(self.error_rates.values())
            and not self.outages
            and self.slow_rate == 0
            and self.reset_rate == 0
            and self.lost_response_rate == 0
            and not self.headers
        )

    def describe(self) -> str:
        """A short human description of what is injected, e.g. ``503@0.2, 1 outage(s)``; ``none`` when clean."""
        parts: list[str] = []
        if self.latency is not None:
            parts.append(self.latency.describe())
        parts.extend(f"{s}@{r:g}" for s, r in sorted(self.error_rates.items()) if r)
        if self.reset_rate:
            parts.append(f"reset@{self.reset_rate:g}")
        if self.slow_rate:
            parts.append(f"slow {self.slow_ms:g}ms@{self.slow_rate:g}")
        if self.lost_response_rate:
            parts.append(f"lost-response@{self.lost_response_rate:g}")
        if self.outages:
            parts.append(f"{len(self.outages)} outage(s)")
        if self.headers:
            parts.append(f"headers {', '.join(sorted(self.headers))}")
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (status codes as string keys)."""
        return {
            "latency": None if self.latency is None else self.latency.to_dict(),
            "error_rates": {str(s): r for s, r in self.error_rates.items()},
            "outages": [o.to_dict() for o in self.outages],
            "slow_rate": self.slow_rate,
            "slow_ms": self.slow_ms,
            "reset_rate": self.reset_rate,
            "lost_response_rate": self.lost_response_rate,
            "outage_status": self.outage_status,
            "outage_retry_after": self.outage_retry_after,
            "headers": dict(self.headers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Parse the JSON form; ``ConfigError`` on an unknown field or a bad value."""
        _check_keys("Faults", data, cls)
        values = dict(data)
        if values.get("latency") is not None:
            values["latency"] = Latency.from_dict(values["latency"])
        if "outages" in values:
            values["outages"] = tuple(Outage.from_dict(o) for o in values["outages"] or ())
        return cls(**values)


@dataclass(frozen=True)
class RateLimitConfig:
    """A quota per client key (the value of ``key_header``; ``"anonymous"`` when missing).

    ``token_bucket``: capacity ``burst or limit``, refilled at ``limit / window`` tokens per
    second. ``fixed_window``: ``limit`` requests per window aligned on multiples of ``window``
    seconds since the epoch (of the server's clock). ``dialect`` picks how the quota is
    announced (see ``_ratelimit``).

    ``reset_rounding``: how announced reset times (epoch or delta ``Reset``, IETF ``t``,
    ``Retry-After``) are made whole seconds: ``"up"`` (never early, GitHub's way) or ``"down"``
    (truncated, as ``int(...)`` does: up to a second early).
    ``clock_skew``: seconds the server's clock runs ahead of the real one (negative: behind).
    Its windows, epoch resets, HTTP-dates and ``Date`` header all follow the skewed clock, as a
    real server's would.
    """

    algorithm: Algorithm = "token_bucket"
    limit: int = 50
    window: float = 1.0
    burst: int | None = None
    key_header: str = "Authorization"
    dialect: Dialect = "x-ratelimit-epoch"
    reset_rounding: Rounding = "up"
    clock_skew: float = 0.0

    def __post_init__(self) -> None:
        _one_of("RateLimitConfig", "algorithm", self.algorithm, ALGORITHMS)
        _int_at_least("RateLimitConfig", "limit", self.limit, 1)
        _positive("RateLimitConfig", "window", self.window)
        if self.burst is not None:
            _int_at_least("RateLimitConfig", "burst", self.burst, 1)
            if self.algorithm != "token_bucket":
                raise ConfigError("RateLimitConfig", "burst", "only applies to algorithm='token_bucket'")
        if not isinstance(self.key_header, str) or not self.key_header:
            raise ConfigError("RateLimitConfig", "key_header", "must be a non-empty header name")
        _one_of("RateLimitConfig", "dialect", self.dialect, DIALECTS)
        _one_of("RateLimitConfig", "reset_rounding", self.reset_rounding, ROUNDINGS)
        if not _is_number(self.clock_skew) or abs(self.clock_skew) > 86400:
            raise ConfigError(
                "RateLimitConfig", "clock_skew", f"must be seconds within a day, got {self.clock_skew!r}"
            )

    @property
    def capacity(self) -> int:
        """Requests a fresh client key may send at once: ``burst``, else ``limit``."""
        return self.burst or self.limit

    def describe(self) -> str:
        """A short human description, e.g. ``token_bucket 50/1s x-ratelimit-epoch``."""
        burst = f" burst {self.burst}" if self.burst else ""
        rounding = " rounded down" if self.reset_rounding == "down" else ""
        skew = f" clock {self.clock_skew:+g}s" if self.clock_skew else ""
        return f"{self.algorithm} {self.limit}/{self.window:g}s{burst} {self.dialect}{rounding}{skew}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "algorithm": self.algorithm,
            "limit": self.limit,
            "window": self.window,
            "burst": self.burst,
            "key_header": self.key_header,
            "dialect": self.dialect,
            "reset_rounding": self.reset_rounding,
            "clock_skew": self.clock_skew,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateLimitConfig:
        """Parse the JSON form; ``ConfigError`` on an unknown field or a bad value."""
        _check_keys("RateLimitConfig", data, cls)
        return cls(**data)


@dataclass(frozen=True)
class TestbedConfig:
    """Everything that shapes the simulated API. See the package docstring for the surface.

    Seeded data: each kind holds ids ``1..records``; ``updated_at`` values are spread
    ``updated_at_step`` seconds apart from ``epoch`` in a seeded order (so ordering by
    ``(updated_at, id)`` differs from ordering by id), and ``same_timestamp_every`` records
    share each timestamp, to exercise inclusive ``updated_since`` boundaries.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    seed: int = 1
    records: int = 1000
    kinds: Sequence[str] = ("customers", "products", "orders")
    tracking_header: str | None = "Trackingid"
    max_age: Mapping[str, int] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    rate_limit: RateLimitConfig | None = None
    updated_at_step: float = 1.0
    same_timestamp_every: int = 1
    epoch: str = "2026-01-01T00:00:00Z"
    pagination: PaginationStyle = "cursor"
    pagination_bug: PaginationBug | None = None
    default_limit: int = 100
    max_limit: int = 1000
    max_ids: int = 100
    compress_min_bytes: int = 1024
    idempotency_keys: int = 100_000

    # Fields that may change on a running testbed; the others shape the seeded data.
    LIVE_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "faults",
            "rate_limit",
            "max_age",
            "tracking_header",
            "pagination",
            "pagination_bug",
            "default_limit",
            "max_limit",
            "max_ids",
            "compress_min_bytes",
        }
    )

    def __post_init__(self) -> None:
        owner = "TestbedConfig"
        _int_at_least(owner, "seed", self.seed, -(2**63))
        _int_at_least(owner, "records", self.records, 0)
        if isinstance(self.kinds, str):
            raise ConfigError(owner, "kinds", "must be a sequence of names, not a string")
        kinds = tuple(self.kinds)
        if not kinds:
            raise ConfigError(owner, "kinds", "must name at least one kind")
        for kind in kinds:
            if not isinstance(kind, str) or not _KIND_NAME.match(kind):
                raise ConfigError(
                    owner, "kinds", f"{kind!r} is not a lowercase path segment like 'customers'"
                )
        if len(set(kinds)) != len(kinds):
            raise ConfigError(owner, "kinds", f"has duplicates: {kinds!r}")
        object.__setattr__(self, "kinds", kinds)
        if self.tracking_header is not None and (
            not isinstance(self.tracking_header, str) or not self.tracking_header
        ):
            raise ConfigError(owner, "tracking_header", "must be a header name or None")
        if not isinstance(self.max_age, Mapping):
            raise ConfigError(owner, "max_age", "must be a mapping {kind: seconds}")
        for kind, age in self.max_age.items():
            if kind not in kinds:
                raise ConfigError(owner, "max_age", f"{kind!r} is not one of kinds {kinds!r}")
            _int_at_least(owner, f"max_age[{kind}]", age, 0)
        object.__setattr__(self, "max_age", dict(self.max_age))
        if not isinstance(self.faults, Faults):
            raise ConfigError(owner, "faults", f"must be a Faults, got {self.faults!r}")
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimitConfig):
            raise ConfigError(owner, "rate_limit", "must be a RateLimitConfig or None")
        _positive(owner, "updated_at_step", self.updated_at_step)
        if self.updated_at_step < 0.001:
            raise ConfigError(owner, "updated_at_step", "timestamps have millisecond resolution")
        _int_at_least(owner, "same_timestamp_every", self.same_timestamp_every, 1)
        try:
            parse_rfc3339_ms(self.epoch)
        except ValueError:
            raise ConfigError(owner, "epoch", f"must be an RFC 3339 timestamp, got {self.epoch!r}") from None
        _one_of(owner, "pagination", self.pagination, PAGINATION_STYLES)
        if self.pagination_bug is not None:
            _one_of(owner, "pagination_bug", self.pagination_bug, PAGINATION_BUGS)
        _int_at_least(owner, "default_limit", self.default_limit, 1)
        _int_at_least(owner, "max_limit", self.max_limit, 1)
        if self.default_limit > self.max_limit:
            raise ConfigError(owner, "default_limit", f"must be <= max_limit ({self.max_limit})")
        _int_at_least(owner, "max_ids", self.max_ids, 1)
        _int_at_least(owner, "compress_min_bytes", self.compress_min_bytes, 0)
        _int_at_least(owner, "idempotency_keys", self.idempotency_keys, 1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, nested objects included: what ``spawn_testbed`` hands its child."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "faults":
                value = value.to_dict()
            elif f.name == "rate_limit":
                value = None if value is None else value.to_dict()
            elif f.name == "kinds":
                value = list(value)
            elif f.name == "max_age":
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestbedConfig:
        """Parse the JSON form; ``ConfigError`` on an unknown field or a bad value."""
        _check_keys("TestbedConfig", data, cls)
        values = dict(data)
        if "faults" in values:
            values["faults"] = Faults.from_dict(values["faults"] or {})
        if values.get("rate_limit") is not None:
            values["rate_limit"] = RateLimitConfig.from_dict(values["rate_limit"])
        if "kinds" in values and isinstance(values["kinds"], list):
            values["kinds"] = tuple(values["kinds"])
        return cls(**values)
