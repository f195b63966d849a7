"""proxy: what does calling an upstream through ``interlock serve``'s proxy cost a caller?

A caller that is not Python-in-process (plain aiohttp here, as a Node or Java service would
be: HTTP to a local port) calls a fault-free testbed (a child process) four ways, in rounds
that rotate the contenders (medians with min-max):
  - direct: aiohttp -> testbed (the baseline);
  - proxy: aiohttp -> ``interlock serve`` (a child process, one worker process) -> testbed,
    every Client policy on (retry, breaker, concurrency bound, deadline, correlation ids,
    metrics; no cache, so every call reaches the testbed);
  - nginx: aiohttp -> nginx as a plain reverse proxy (Debian's nginx, keepalive upstream, no
    policies) -> testbed, when ``nginx`` is installed;
  - in-process: the same work with ``interlock.Client`` in the caller's own process (what a
    Python service would do instead of the proxy).
Two phases per round: open loop at ``--rate`` req/s (latency from each request's scheduled
time: p50 / p99, and the added latency over direct), then saturation (``--concurrency``
callers back to back for ``--duration`` s: req/s, and the proxy's ratio to nginx's).

The machine has 2 cores shared by the load generator, the proxy and the testbed (and, here,
other agents): saturation figures are the three together, not the proxy alone.

    .venv/bin/python benchmarks/proxy.py [--rate 1000] [--duration 5] [--rounds 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import _common
import aiohttp

import interlock
from interlock.testbed import TestbedConfig, spawn_testbed

Get = Callable[[str], Awaitable[int]]
RECORDS = 1000


@contextlib.contextmanager
def interlock_serve(upstream: str, workdir: Path, server_extra: str = "") -> Iterator[tuple[str, int]]:
    """``interlock serve`` in a child process, proxying ``crm`` to ``upstream``; ``server_extra``
    lines go in its ``[server]`` table."""
    config = workdir / "interlock.toml"
    config.write_text(
        f"[server]\nlog_level = 'error'\n{server_extra}"
        f"[store]\nurl = 'sqlite:///{workdir / 'bench.db'}'\n"
        f"[upstreams.crm]\nbase_url = '{upstream}'\n"
        "concurrency = { limit = 1000, writes = 5 }\n"
    )
    interlock_bin = str(Path(sys.executable).with_name("interlock"))
    proc = subprocess.Popen(
        [interlock_bin, "serve", "-c", str(config), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, cwd=workdir,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("interlock serve did not start")
        yield url + "/proxy/crm", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def nginx(upstream: str, workdir: Path) -> Iterator[str | None]:
    """nginx as a plain reverse proxy in front of ``upstream``; None when nginx is not installed."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        yield None
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host_port = upstream.removeprefix("http://")
    prefix = workdir / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  upstream testbed {{ server {host_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location /proxy/crm/ {{
      proxy_pass http://testbed/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("nginx did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/proxy/crm"
    finally:
        proc.terminate()
        proc.wait(10)


async def with_aiohttp(base: str, work: Callable[[Get], Awaitable[object]]) -> object:
    # A caller with a pool of 100 connections, as a service would keep (no new connection per call).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def get(path: str) -> int:
            async with session.get(base + path) as resp:
                await resp.read()
                return resp.status

        return await work(get)


async def with_client(base: str, work: Callable[[Get], Awaitable[object]]) -> object:
    async with interlock.Client(base, concurrency=interlock.Concurrency(limit=1000, writes=5)) as client:

        async def get(path: str) -> int:
            return (await client.get(path)).status

        return await work(get)


def open_loop_work(rate: float, duration: float) -> Callable[[Get], Awaitable[_common.OpenLoop]]:
    async def work(get: Get) -> _common.OpenLoop:
        async def send(i: int) -> bool:
            return await get(f"/customers/{i % RECORDS + 1}") == 200

        for i in range(50):  # warm the connection pool
            await get(f"/customers/{i + 1}")
        return await _common.open_loop(send, rate, duration, drain=5.0)

    return work


def saturation_work(concurrency: int, duration: float) -> Callable[[Get], Awaitable[tuple[float, int]]]:
    async def work(get: Get) -> tuple[float, int]:
        done = failed = 0
        end = time.perf_counter() + duration

        async def caller(k: int) -> None:
            nonlocal done, failed
            i = k
            while time.perf_counter() < end:
                if await get(f"/customers/{i % RECORDS + 1}") == 200:
                    done += 1
                else:
                    failed += 1
                i += concurrency

        start = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(concurrency)))
        return done / (time.perf_counter() - start), failed

    return work


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop arrivals per second (default 1000)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase (default 5)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64, help="callers at saturation (default 64)")
    parser.add_argument("--server", default="", help="extra [server] settings for interlock serve, ';'-separated (run_workers = false)")
    args = parser.parse_args()
    load = _common.Load()
    with tempfile.TemporaryDirectory() as tmp, spawn_testbed(TestbedConfig(records=RECORDS)) as tb:
        work = Path(tmp)
        with interlock_serve(tb.url, work, args.server.replace(";", "\n") + "\n" if args.server else "") as (proxy_url, proxy_pid), nginx(tb.url, work) as nginx_url:
            contenders: dict[str, tuple[str, Callable[..., Awaitable[object]]]] = {
                "direct": (tb.url, with_aiohttp),
                "proxy": (proxy_url, with_aiohttp),
                "in-process": (tb.url, with_client),
            }
            if nginx_url:
                contenders["nginx"] = (nginx_url, with_aiohttp)
            else:
                print("nginx not installed (apt-get install nginx): its column is left out")
            lat: dict[str, dict[str, list[float]]] = {n: {"p50": [], "p99": [], "lag99": [], "share": []} for n in contenders}
            sat: dict[str, list[float]] = {n: [] for n in contenders}
            cpu_per_request: list[float] = []  # the proxy process's CPU seconds per request at saturation
            failures: dict[str, int] = dict.fromkeys(contenders, 0)
            for r, order in enumerate(_common.rotations(list(contenders), args.rounds)):
                for name in order:
                    base, runner = contenders[name]
                    ol = await runner(base, open_loop_work(args.rate, args.duration))
                    assert isinstance(ol, _common.OpenLoop)
                    lat[name]["p50"].append(ol.p(50))
                    lat[name]["p99"].append(ol.p(99))
                    lat[name]["lag99"].append(ol.lag_p(99))
                    lat[name]["share"].append(ol.achieved_share)
                    failures[name] += ol.failed + ol.unfinished
                    cpu_before, wall_before = cpu_seconds(proxy_pid), time.perf_counter()
                    rate, failed = await runner(base, saturation_work(args.concurrency, args.duration))  # type: ignore[misc]
                    if name == "proxy":
                        served = rate * (time.perf_counter() - wall_before)
                        cpu_per_request.append((cpu_seconds(proxy_pid) - cpu_before) / served if served else float("nan"))
                    sat[name].append(rate)
                    failures[name] += failed
                    print(f"round {r + 1}: {name:<10} p50 {ol.p(50) * 1000:.2f} ms  p99 {ol.p(99) * 1000:.2f} ms  saturation {rate:,.0f} req/s", flush=True)
    load_end = load.end()
    print()
    print(f"open loop {args.rate:g} req/s x {args.duration:g} s, saturation {args.concurrency} callers x {args.duration:g} s, {args.rounds} rounds; median (min-max)")
    rows = []
    for name in contenders:
        rows.append([
            name,
            _common.spread([v * 1000 for v in lat[name]["p50"]], "{:.2f}"),
            _common.spread([v * 1000 for v in lat[name]["p99"]], "{:.2f}"),
            _common.spread([v * 1000 for v in lat[name]["lag99"]], "{:.2f}"),
            _common.spread(lat[name]["share"], "{:.2f}"),
            _common.spread(sat[name], "{:,.0f}"),
            failures[name],
        ])
    print(_common.table(["contender", "p50 ms", "p99 ms", "generator lag p99 ms", "achieved/offered", "saturation req/s", "failed"], rows))
    m = {n: {k: _common.med(v) for k, v in lat[n].items()} for n in contenders}
    added50 = (m["proxy"]["p50"] - m["direct"]["p50"]) * 1000
    added99 = (m["proxy"]["p99"] - m["direct"]["p99"]) * 1000
    print(f"proxy added latency over direct at {args.rate:g} req/s: p50 {added50:+.2f} ms (target <= 1 ms), p99 {added99:+.2f} ms (target <= 3 ms)")
    proxy_sat = _common.med(sat["proxy"])
    print(f"proxy saturation: {proxy_sat:,.0f} req/s with one worker process (target >= 3,000), "
          f"{proxy_sat / _common.med(sat['direct']):.2f}x direct, {proxy_sat / _common.med(sat['in-process']):.2f}x the in-process Client")
    cpu = _common.med(cpu_per_request)
    print(f"proxy CPU per request at saturation: {cpu * 1e6:.0f} us, i.e. {1 / cpu:,.0f} req/s per fully used core "
          "(the proxy process's own CPU time: what it costs, whatever else the machine runs)")
    results: dict[str, object] = {
        "proxy_cpu_us_per_request": cpu * 1e6,
        "rate": args.rate, "duration": args.duration, "rounds": args.rounds, "concurrency": args.concurrency,
        "p50_ms": {n: m[n]["p50"] * 1000 for n in contenders}, "p99_ms": {n: m[n]["p99"] * 1000 for n in contenders},
        "saturation_rps": {n: _common.med(sat[n]) for n in contenders}, "failed": failures,
        "added_p50_ms": added50, "added_p99_ms": added99, **load_end,
    }
    if "nginx" in contenders:
        ratio = proxy_sat / _common.med(sat["nginx"])
        added_nginx = (m["nginx"]["p50"] - m["direct"]["p50"]) * 1000
        print(f"proxy throughput / nginx's: {ratio:.2f}x (nginx adds p50 {added_nginx:+.2f} ms over direct)")
        results["proxy_over_nginx"] = ratio
    _common.emit("proxy", results)


if __name__ == "__main__":
    asyncio.run(main())
