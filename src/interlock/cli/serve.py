"""``interlock serve -c interlock.toml``: run the service (proxy, webhooks, admin API, workers).

The first line on stdout is the bound URL and nothing else (``--port 0`` picks a free port;
a parent process reads it, as with ``interlock testbed``). SIGTERM or Ctrl-C stops accepting,
lets requests in flight finish, gives handlers in flight ``[server] grace`` seconds, and exits 0.

``--workers N`` (or ``[server] workers``) serves from N processes sharing the port; they need a
PostgreSQL store: SQLite refuses more than one process with a clear message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

from ._argparse import UsageError, count, open_or_say_why, port

HELP = "run the service from a config file: proxy, webhooks, admin API, workers"

__all__ = ["HELP", "configure", "run"]

CONFIG_ENV = "INTERLOCK_CONFIG"
"""Where a worker process of ``--workers N`` finds the config file."""


def configure(parser: argparse.ArgumentParser) -> None:
    """``-c FILE``, and overrides of ``[server]``: ``--host``, ``--port``, ``--workers``."""
    parser.add_argument("-c", "--config", default="interlock.toml", metavar="FILE", help="the config file (default %(default)s)")
    parser.add_argument("--host", help="address to bind (default: [server] host)")
    parser.add_argument("--port", type=port, help="port, 0 for a free one (default: [server] port)")
    parser.add_argument("--workers", type=count(1, 64), help="processes serving (default: [server] workers)")


def _bind(host: str, port_number: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port_number))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port_number}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def check_store(url: str) -> None:
    """Open and close the store once before serving, so one that cannot be reached is one line
    on stderr (exit 2) rather than uvicorn's failed startup."""
    from .._redact import redact_url
    from ..stores import open_queue

    queue = open_queue(url, owner="[store]", field="url")
    await open_or_say_why(queue, f"the store {redact_url(url)}")
    await queue.aclose()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / Ctrl-C; the exit status."""
    from ..service import load_config, resolve_handlers

    loaded = load_config(args.config)
    server_cfg = loaded.config.server
    workers = args.workers or server_cfg.workers
    if workers > 1 and loaded.config.store.url.startswith("sqlite:"):
        raise UsageError(
            f"--workers {workers}: several processes cannot share a SQLite store; use --workers 1, or a "
            "postgresql:// [store] url"
        )
    resolve_handlers(loaded)
    asyncio.run(check_store(loaded.config.store.url))
    host = args.host or server_cfg.host
    sock = _bind(host, server_cfg.port if args.port is None else args.port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"http://{shown}:{bound}", flush=True)
    print(
        f"interlock serve: {len(loaded.config.upstreams)} upstreams at /proxy/, {len(loaded.config.sources)} sources "
        f"at /hooks/, admin API at /admin/api/v1 ({workers} process{'es' if workers > 1 else ''}, pid {os.getpid()})",
        file=sys.stderr,
        flush=True,
    )
    import uvicorn

    from ..inbox import ServeSettings

    options = ServeSettings().uvicorn_options()
    common = {
        "lifespan": "on",
        "log_level": server_cfg.log_level,
        "timeout_graceful_shutdown": server_cfg.grace,
        "access_log": False,
        "proxy_headers": False,  # X-Forwarded-* are not trusted: the proxy is not behind one by default
        **options,
    }
    if workers > 1:
        # Each process unpickles the config: the bounded protocol class is named by import
        # string (this module's ``BoundedHttp``), made again in the process that loads it.
        common["http"] = f"{__name__}:BoundedHttp"
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
        config = uvicorn.Config("interlock.cli.serve:app_factory", factory=True, workers=workers, **common)
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
        return 0
    from ..service import Service

    service = Service(loaded)
    config = uvicorn.Config(service, **common)
    # uvicorn re-raises the signal it shut down for once it is done (so the default handler
    # kills the process with it); a graceful stop on SIGTERM is a success: exit status 0.
    signal.signal(signal.SIGTERM, _stopped)
    _freeze_startup_objects()
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _freeze_startup_objects() -> None:
    """Move everything built so far (modules, the config, the app) out of the garbage
    collector's reach: a full collection then walks only what requests create, instead of
    stalling every request in flight for the tens of milliseconds a walk over the whole
    import graph takes (``gc.freeze``, as long-running servers do)."""
    import gc

    gc.collect()
    gc.freeze()


def _stopped(signum: int, frame: object) -> None:
    """What uvicorn's re-raised SIGTERM does after the graceful shutdown: nothing more."""


def app_factory() -> object:
    """The service of ``$INTERLOCK_CONFIG``: what each process of ``--workers N`` serves."""
    from ..service import Service, load_config

    service = Service(load_config(os.environ[CONFIG_ENV]))
    _freeze_startup_objects()
    return service


def __getattr__(name: str) -> object:
    """``BoundedHttp``: uvicorn's HTTP protocol with the default ``ServeSettings`` bounds, for
    the processes of ``--workers N`` (uvicorn imports it by name)."""
    if name == "BoundedHttp":
        from ..inbox import ServeSettings

        return ServeSettings().uvicorn_options()["http"]
    raise AttributeError(name)
