"""The operator's five numbers as alert rules: which readings are ok, a warning, or firing.

Pure decision, no I/O: the dashboard (and ``interlock alerts --prometheus-rules``) read the
thresholds from ``Thresholds``; ``evaluate()`` turns one reading into a ``Badge``. The defaults
are the thresholds operators of integrations watch (DESIGN.md's seed thresholds):

- an upstream's p95 latency above 500 ms,
- rate-limit headroom (remaining share of the announced quota) below 20 %,
- webhook processing p95 above 5 s,
- an upstream's error rate above 1 %,
- the cache hit rate below 90 % on cached routes.

Each rule also has a warning level, reached before it fires, so a badge turns amber while there
is still time to act. A rate (error rate, hit rate) over fewer than ``min_samples`` calls says
nothing yet: its badge is ``no_data``, not a false alarm on the first failed call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["DEFAULT_RULES", "FIRING_KEYS", "Badge", "BadgeState", "Rule", "Thresholds", "evaluate"]

OWNER = "Thresholds"


class BadgeState(StrEnum):
    """A rule's verdict on one reading."""

    OK = "ok"
    WARNING = "warning"
    FIRING = "firing"
    NO_DATA = "no_data"


@dataclass(frozen=True, slots=True)
class Rule:
    """One threshold: fires when the reading crosses ``firing`` in ``direction``; warns from
    ``warning`` on. ``unit`` is how the value reads to a human (``s``, ``ratio``)."""

    name: str
    """Stable identifier: the key under ``[alerts]`` and the Prometheus alert's name stem."""
    summary: str
    """What the rule watches, in words an operator reads on a badge."""
    direction: Literal["above", "below"]
    """``above``: larger readings are worse (latency, errors); ``below``: smaller are worse."""
    warning: float
    firing: float
    unit: Literal["s", "ratio"]
    min_samples: int = 0
    """Readings over fewer samples than this are ``no_data`` (rates need a few calls)."""

    def __post_init__(self) -> None:
        for name in ("warning", "firing"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(
                    OWNER, f"{self.name}.{name}", f"must be a finite number >= 0, got {value!r}"
                )
        if self.unit == "ratio" and not (self.warning <= 1 and self.firing <= 1):
            raise ConfigError(
                OWNER,
                self.name,
                f"is a share: warning and firing must be in [0, 1], got {self.warning}, {self.firing}",
            )
        worse = self.firing >= self.warning if self.direction == "above" else self.firing <= self.warning
        if not worse:
            order = "<=" if self.direction == "above" else ">="
            raise ConfigError(
                OWNER,
                self.name,
                f"warning must be {order} firing (it is reached first), got warning={self.warning}, firing={self.firing}",
            )

    def crossed(self, value: float, level: float) -> bool:
        """Whether ``value`` is past ``level`` in this rule's bad direction ("p95 above 500 ms":
        exactly 500 ms is not past it)."""
        return value > level if self.direction == "above" else value < level


DEFAULT_RULES = (
    Rule("upstream_p95", "upstream p95 latency", "above", 0.4, 0.5, "s"),
    Rule("ratelimit_headroom", "rate-limit quota remaining", "below", 0.3, 0.2, "ratio"),
    Rule("processing_p95", "webhook processing p95", "above", 4.0, 5.0, "s"),
    Rule("error_rate", "upstream error rate", "above", 0.005, 0.01, "ratio", 20),
    Rule("cache_hit_rate", "cache hit rate on cached routes", "below", 0.95, 0.9, "ratio", 20),
)
"""The five rules at their default levels, in the order the dashboard shows them."""
_UPSTREAM_P95, _RATELIMIT_HEADROOM, _PROCESSING_P95, _ERROR_RATE, _CACHE_HIT_RATE = DEFAULT_RULES


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The dashboard's alert rules (the ``[alerts]`` section of ``interlock.toml``)."""

    upstream_p95: Rule = _UPSTREAM_P95
    ratelimit_headroom: Rule = _RATELIMIT_HEADROOM
    processing_p95: Rule = _PROCESSING_P95
    error_rate: Rule = _ERROR_RATE
    cache_hit_rate: Rule = _CACHE_HIT_RATE

    def rules(self) -> tuple[Rule, ...]:
        """Every rule, in the order the dashboard shows them."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Thresholds:
        """Thresholds with ``values`` over the defaults, in either spelling of ``[alerts]``:

        - a table per rule, both levels: ``{"upstream_p95": {"warning": 0.6, "firing": 0.8}}``;
        - one firing level per key, as ``interlock.toml`` writes it: ``p95_above``,
          ``error_rate_above``, ``webhook_processing_above``, ``rate_limit_remaining_below``,
          ``cache_hit_rate_below``. The warning level stays at its default while that is still
          reached first, else it equals the firing level (no warning band).

        An unknown rule or key is a ``ConfigError`` naming the accepted ones."""
        defaults = cls()
        chosen: dict[str, Rule] = {}
        known = {f.name for f in fields(cls)}
        for name, override in values.items():
            if name in FIRING_KEYS:
                base: Rule = getattr(defaults, FIRING_KEYS[name])
                firing = override
                if not isinstance(firing, int | float):
                    raise ConfigError(OWNER, name, f"must be a number, got {firing!r}")
                warning = (
                    base.warning if base.crossed(firing, base.warning) or firing == base.warning else firing
                )
                chosen[base.name] = _replace(base, warning=warning, firing=float(firing))
                continue
            if name not in known:
                accepted = ", ".join(sorted(known | set(FIRING_KEYS)))
                raise ConfigError(OWNER, name, f"is not a rule; accepted: {accepted}")
            if not isinstance(override, Mapping):
                raise ConfigError(OWNER, name, "must be a table of warning, firing, min_samples")
            unknown = set(override) - {"warning", "firing", "min_samples"}
            if unknown:
                raise ConfigError(
                    OWNER,
                    f"{name}.{sorted(unknown)[0]}",
                    "is not a setting; accepted: warning, firing, min_samples",
                )
            base = getattr(defaults, name)
            chosen[name] = _replace(
                base,
                warning=override.get("warning", base.warning),
                firing=override.get("firing", base.firing),
                min_samples=int(override.get("min_samples", base.min_samples)),
            )
        return cls(**chosen)


FIRING_KEYS = {
    "p95_above": "upstream_p95",
    "rate_limit_remaining_below": "ratelimit_headroom",
    "webhook_processing_above": "processing_p95",
    "error_rate_above": "error_rate",
    "cache_hit_rate_below": "cache_hit_rate",
}
"""``interlock.toml``'s one-level spelling of each rule's firing level."""


def _replace(rule: Rule, **changes: Any) -> Rule:
    return dataclasses.replace(rule, **changes)


@dataclass(frozen=True, slots=True)
class Badge:
    """A rule's verdict on one reading, with what the dashboard shows beside it."""

    rule: str
    state: BadgeState
    value: float | None
    detail: str


def evaluate(rule: Rule, value: float | None, *, samples: int | None = None) -> Badge:
    """The badge for ``value`` under ``rule``; ``None`` (nothing measured yet) or fewer than
    ``rule.min_samples`` samples give ``no_data``."""
    if value is None or (samples is not None and samples < rule.min_samples) or math.isnan(value):
        return Badge(rule.name, BadgeState.NO_DATA, value, f"{rule.summary}: not enough data yet")
    shown = _show(rule, value)
    sign = ">" if rule.direction == "above" else "<"
    if rule.crossed(value, rule.firing):
        return Badge(
            rule.name, BadgeState.FIRING, value, f"{rule.summary} {shown} ({sign} {_show(rule, rule.firing)})"
        )
    if rule.crossed(value, rule.warning):
        return Badge(
            rule.name,
            BadgeState.WARNING,
            value,
            f"{rule.summary} {shown} (fires {sign} {_show(rule, rule.firing)})",
        )
    return Badge(rule.name, BadgeState.OK, value, f"{rule.summary} {shown}")


def _show(rule: Rule, value: float) -> str:
    if rule.unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value * 100:.1f} %"
