"""``interlock stats``: what a running ``interlock serve`` sees, from its admin API.

Upstreams (breaker, in flight, calls, retries, p95, rate-limit headroom, cache hit rate),
sources (received, processed, retries, dead letters, paused) and syncs, as tables; ``--json``
prints the admin API's documents as they are. The service is found from the config file
(``[server] host``, ``port`` and ``admin_token``) or ``--url`` with ``--token`` (default
``$INTERLOCK_ADMIN_TOKEN``). An unreachable service or a refused token is one line on stderr,
exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import urllib.error
import urllib.request
from typing import Any

from ._argparse import UsageError

HELP = "show a running service's upstreams, sources and syncs (from its admin API)"

__all__ = ["HELP", "configure", "run"]

TIMEOUT = 5.0
"""Seconds to wait for the service's answer."""


def configure(parser: argparse.ArgumentParser) -> None:
    """``-c FILE`` or ``--url`` / ``--token``, and ``--json``."""
    parser.add_argument("-c", "--config", default="interlock.toml", metavar="FILE", help="the config file (default %(default)s)")
    parser.add_argument("--url", help="the service's base URL (default: from the config file's [server])")
    parser.add_argument("--token", help="the admin token (default: $INTERLOCK_ADMIN_TOKEN, else the config file's)")
    parser.add_argument("--json", action="store_true", help="print the admin API's JSON documents")


def _target(args: argparse.Namespace) -> tuple[str, str]:
    url, token = args.url, args.token or os.environ.get("INTERLOCK_ADMIN_TOKEN")
    if url is None or token is None:
        from ..service import load_config

        server = load_config(args.config).config.server
        host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
        url = url or f"http://{host}:{server.port}"
        if token is None and server.admin_token is not None:
            token = server.admin_token.get_secret_value()
    if not token:
        raise UsageError("no admin token: pass --token, set INTERLOCK_ADMIN_TOKEN, or set [server] admin_token")
    return url.rstrip("/"), token


def _get(url: str, token: str, path: str) -> Any:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    try:
        with opener.open(request, timeout=TIMEOUT) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = ""
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(exc.read()).get("detail", "")
        raise UsageError(f"{url}{path} answered {exc.code}{': ' + detail if detail else ''}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageError(f"cannot reach the service at {url}: {reason} (is `interlock serve` running?)") from None


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def run(args: argparse.Namespace) -> int:
    """Print the tables (or the JSON); the exit status."""
    url, token = _target(args)
    docs = {name: _get(url, token, f"/admin/api/v1/{name}") for name in ("upstreams", "sources", "syncs")}
    if args.json:
        print(json.dumps(docs, indent=2, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    ups = Table(title=f"upstreams at {url}")
    for column in ("upstream", "breaker", "in flight", "calls", "retries", "p95 ms", "rate headroom", "cache hits"):
        ups.add_column(column, justify="left" if column == "upstream" else "right")
    for up in docs["upstreams"]["upstreams"]:
        latency = up.get("latency") or {}
        p95 = latency.get("p95")
        limit = up.get("rate_limit") or {}
        cache = up.get("cache") or {}
        ups.add_row(
            up["name"], str(up["breaker"]), str(up.get("in_flight") or 0), str(sum((up.get("calls") or {}).values())),
            str(up["retries"]), "-" if p95 is None else f"{p95 * 1000:.1f}", _pct(limit.get("headroom")),
            _pct(cache.get("hit_rate")),
        )
    console.print(ups)
    srcs = Table(title="sources")
    for column in ("source", "scheme", "received", "processed", "retries", "dead letters", "paused"):
        srcs.add_column(column, justify="left" if column in ("source", "scheme") else "right")
    for src in docs["sources"]["sources"]:
        srcs.add_row(
            src["name"], src["scheme"], str(src.get("received", 0)), str(src.get("processed", 0)),
            str(src.get("retries", 0)), str(src.get("dead_letters", 0)), "yes" if src["paused"] else "no",
        )
    console.print(srcs)
    if docs["syncs"]["syncs"]:
        syncs = Table(title="syncs")
        for column in ("sync", "upstream", "path", "polls", "dead letters", "running"):
            syncs.add_column(column)
        for job in docs["syncs"]["syncs"]:
            syncs.add_row(job["name"], job["upstream"], job["path"], str(job.get("polls", 0)),
                          str(job.get("dead_letters", 0)), "yes" if job.get("running") else "no")
        console.print(syncs)
    return 0
