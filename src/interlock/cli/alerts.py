"""``interlock alerts``: the dashboard's alert thresholds, as a table or as Prometheus rules.

``--prometheus-rules`` prints a Prometheus alerting rules file (YAML) with the same thresholds
the dashboard's badges use, over the metrics ``interlock.metrics`` exports, for teams that alert
from Prometheus. ``-c interlock.toml`` takes the thresholds from its ``[alerts]`` section.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from .._text import render_table
from ..core.alerts import Rule, Thresholds
from ._argparse import UsageError

HELP = "print the alert thresholds, or them as a Prometheus alerting rules file"

__all__ = ["HELP", "configure", "prometheus_rules", "run"]

WINDOW = "5m"
"""The rate window of every expression: long enough to smooth a scrape or two."""

# What each rule measures, as PromQL over Interlock's metrics. An error is a 5xx or a call that
# got no answer (timeout, refused connection, open breaker): its outcome label is neither a
# 2xx, 3xx nor 4xx (4xx answers are the caller's request, not the upstream's health).
EXPRESSIONS: dict[str, str] = {
    "upstream_p95": (
        "histogram_quantile(0.95, sum by (upstream, le) "
        f"(rate(interlock_client_request_duration_seconds_bucket[{WINDOW}])))"
    ),
    "ratelimit_headroom": "interlock_ratelimit_remaining_ratio",
    "processing_p95": "interlock_webhook_processing_seconds_p95",
    "error_rate": (
        f'sum by (upstream) (rate(interlock_client_requests_total{{outcome!~"2xx|3xx|4xx"}}[{WINDOW}]))'
        f" / sum by (upstream) (rate(interlock_client_requests_total[{WINDOW}]))"
    ),
    "cache_hit_rate": "interlock_cache_hit_ratio",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument(
        "--prometheus-rules", action="store_true", help="print a Prometheus alerting rules file (YAML)"
    )
    parser.add_argument(
        "-c", "--config", metavar="FILE", help="take the thresholds from FILE's [alerts] section"
    )


def run(args: argparse.Namespace) -> int:
    """Print the thresholds (a table) or the rules file."""
    thresholds = load_thresholds(args.config)
    if args.prometheus_rules:
        print(prometheus_rules(thresholds), end="")
        return 0
    rows = [
        [r.name, r.summary, f"{r.direction} {r.warning:g}", f"{r.direction} {r.firing:g}", r.unit]
        for r in thresholds.rules()
    ]
    print(render_table(["rule", "watches", "warning", "firing", "unit"], rows))
    return 0


def load_thresholds(path: str | None) -> Thresholds:
    """The defaults, or ``path``'s ``[alerts]`` table over them; a bad file is a UsageError."""
    if path is None:
        return Thresholds()
    try:
        with Path(path).open("rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    section: Any = document.get("alerts", {})
    if not isinstance(section, dict):
        raise UsageError(f"{path}: [alerts] must be a table, such as p95_above = 0.5")
    # The notification target sits beside the thresholds; it is the service's to use.
    rules = {k: v for k, v in section.items() if k not in NOT_THRESHOLDS}
    return Thresholds.from_mapping(rules)


NOT_THRESHOLDS = frozenset({"webhook_url", "notify_url"})


def prometheus_rules(thresholds: Thresholds) -> str:
    """A Prometheus rules file: a warning and a critical alert per rule, in one group."""
    lines = ["groups:", "  - name: interlock", "    rules:"]
    for rule in thresholds.rules():
        for severity, level in (("warning", rule.warning), ("critical", rule.firing)):
            lines += _alert(rule, severity, level)
    return "\n".join(lines) + "\n"


def _alert(rule: Rule, severity: str, level: float) -> list[str]:
    name = (
        "Interlock"
        + "".join(part.title() for part in rule.name.split("_"))
        + ("Warning" if severity == "warning" else "")
    )
    op = ">" if rule.direction == "above" else "<"
    shown = f"{level * 100:g} %" if rule.unit == "ratio" else f"{level:g} s"
    # JSON strings are valid YAML scalars: no quoting rules of our own.
    return [
        f"      - alert: {name}",
        f"        expr: {json.dumps(f'{EXPRESSIONS[rule.name]} {op} {level:g}')}",
        "        for: 5m",
        "        labels:",
        f"          severity: {severity}",
        "        annotations:",
        f"          summary: {json.dumps(f'{rule.summary} {rule.direction} {shown}')}",
    ]
