"""The dashboard's pages: ``/ui`` on ``interlock serve``, server-rendered, a little JavaScript.

Every page needs a session (the admin token exchanged once at ``/ui/login`` for a cookie);
without one a page redirects to the login form and ``/ui/api/...`` answers 401. Every
state-changing action is a POST carrying the session's CSRF token. Templates are Jinja2 with
autoescaping on (an event body or a header is shown, never run); the JavaScript and CSS ship in
the package (no CDN, no build step).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from ..._metrics import latency_quantiles, upstream_stats, work_stats
from ...core.failure_groups import IssueState
from ._monitor import NOT_ERRORS, Monitor
from ._replay import ReplayJobs
from ._session import COOKIE, Sessions

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from ...inbox import DeadLetterMatch

__all__ = ["dashboard_app"]

HERE = Path(__file__).parent
MAX_FORM = 16 * 1024
"""Bytes a dashboard form may carry (a token, a filter, a CSRF token): more is a 413."""
DLQ_PAGE = 50


def dashboard_app(
    monitor: Monitor,
    *,
    admin_token: str,
    prefix: str = "/ui",
    secure_cookie: bool = False,
    jobs: ReplayJobs | None = None,
) -> Starlette:
    """The dashboard as an ASGI app serving ``prefix`` (mount it at that path, or serve it as
    is: its routes carry the prefix). ``secure_cookie`` marks the session cookie ``Secure``
    (behind HTTPS). ``jobs``: the bulk replay jobs to share (``interlock serve`` passes the
    admin API's, so a job started in one shows in the other); default: the dashboard's own."""
    try:
        import jinja2
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles
    except ImportError as exc:  # pragma: no cover - the message is the point
        raise ImportError(
            "the dashboard needs Starlette and Jinja2: pip install 'interlock[service]'"
        ) from exc

    sessions = Sessions(admin_token)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters.update(ms=_ms, pct=_pct, secs=_secs, ago=_ago, when=_when, tojson_pretty=_pretty)
    inbox = monitor.inbox
    if jobs is None and inbox is not None:
        jobs = ReplayJobs(inbox.dlq)

    def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        cookie = request.cookies.get(COOKIE, "")
        page = env.get_template(template).render(
            prefix=prefix, csrf=sessions.csrf(cookie) if cookie else "", request=request, **context
        )
        return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)

    async def form(request: Request) -> dict[str, str]:
        body = await _bounded_body(request)
        return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}

    def page(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            if not sessions.valid(request.cookies.get(COOKIE)):
                if request.url.path.startswith(f"{prefix}/api/"):
                    return JSONResponse({"title": "login required"}, status_code=401)
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                return RedirectResponse(f"{prefix}/login?next={target}", status_code=303)
            return await handler(request)

        return guarded

    def action(
        handler: Callable[[Request, dict[str, str]], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                fields = await form(request)
            except _TooLarge:
                return HTMLResponse("form too large", status_code=413)
            if not sessions.csrf_ok(request.cookies.get(COOKIE), fields.get("csrf")):
                return HTMLResponse(
                    "missing or wrong CSRF token: reload the page and try again", status_code=403
                )
            return await handler(request, fields)

        return guarded

    # -- login ---------------------------------------------------------------------------------
    async def login_form(request: Request) -> Response:
        return render(
            request, "login.html", next=_safe_next(request.query_params.get("next"), prefix), error=""
        )

    async def login(request: Request) -> Response:
        try:
            fields = await form(request)
        except _TooLarge:
            return HTMLResponse("form too large", status_code=413)
        target = _safe_next(fields.get("next"), prefix)
        cookie = sessions.login(fields.get("token", ""))
        if cookie is None:
            return render(
                request, "login.html", status=401, next=target, error="That is not the admin token."
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, cookie, max_age=int(sessions.lifetime), path=prefix, httponly=True,
            samesite="strict", secure=secure_cookie,
        )  # fmt: skip
        return response

    async def logout(request: Request, fields: dict[str, str]) -> Response:
        response = RedirectResponse(f"{prefix}/login", status_code=303)
        response.delete_cookie(COOKIE, path=prefix)
        return response

    # -- pages ---------------------------------------------------------------------------------
    async def overview(request: Request) -> Response:
        data = await monitor.overview()
        return render(request, "overview.html", data=data)

    async def overview_json(request: Request) -> Response:
        return JSONResponse(_finite(await monitor.overview()))

    async def upstream(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in monitor.clients:
            return render(request, "missing.html", status=404, what=f"upstream {name!r}")
        stats, cache = upstream_stats(name), work_stats(name).cache
        routes = []
        for route, rs in sorted(stats.routes.items()):
            lookups = sum(cache.get(route, {}).values())
            hits = lookups - cache.get(route, {}).get("miss", 0)
            errors = sum(n for (_, outcome), n in rs.outcomes.items() if outcome[:1] not in NOT_ERRORS)
            routes.append(
                {
                    "route": route,
                    "calls": rs.count,
                    "errors": errors,
                    "retries": rs.retries,
                    "latency": latency_quantiles(name, route),
                    "hit_rate": hits / lookups if lookups else None,
                }
            )
        return render(
            request,
            "upstream.html",
            row=monitor.upstream_row(name),
            routes=routes,
            failures=list(monitor.failures.get(name, ())),
            chart_json=_script_json(monitor.upstream_chart(name)),
        )

    async def source(request: Request) -> Response:
        name = request.path_params["name"]
        rows = {r["name"]: r for r in await monitor.source_rows()}
        if name not in rows or inbox is None:
            return render(request, "missing.html", status=404, what=f"source {name!r}")
        letters = await inbox.dlq.list(source=name, limit=DLQ_PAGE)
        recent = [e.summary() for e in monitor.events.list(source=name, limit=DLQ_PAGE)] if monitor.events else None
        return render(
            request,
            "source.html",
            row=rows[name],
            letters=letters,
            recent=recent,
            failures=list(monitor.failures.get(name, ())),
            chart_json=_script_json(monitor.inbox_chart()),
        )

    async def source_event(request: Request) -> Response:
        seen = monitor.events.get(request.path_params["id"], request.path_params["name"]) if monitor.events else None
        if seen is None:
            return render(request, "missing.html", status=404, what=f"recent event {request.path_params['id']!r}")
        detail = seen.detail()
        return render(request, "event.html", event=detail, body=_body_text(detail["body"].encode()))

    async def dlq(request: Request) -> Response:
        if inbox is None:
            return render(request, "missing.html", status=404, what="an inbox")
        match = _match(request.query_params)
        letters = await inbox.dlq.list(limit=DLQ_PAGE, **match)
        total = await inbox.dlq.count(**match)
        return render(
            request, "dlq.html", letters=letters, total=total, match=match,
            sources=sorted(inbox.sources), query=urlencode(match),
        )  # fmt: skip

    async def dead_letter(request: Request) -> Response:
        if inbox is None:
            return render(request, "missing.html", status=404, what="an inbox")
        letter = await inbox.dlq.inspect(request.path_params["id"], source=request.query_params.get("source"))
        if letter is None:
            return render(
                request, "missing.html", status=404, what=f"dead letter {request.path_params['id']!r}"
            )
        return render(request, "dead_letter.html", letter=letter, body=_body_text(letter.message.body))

    async def replay_one(request: Request, fields: dict[str, str]) -> Response:
        assert inbox is not None
        letter_id = request.path_params["id"]
        n = await inbox.dlq.replay(letter_id, source=fields.get("source") or None)
        note = f"{letter_id} replayed" if n else f"{letter_id} was no longer in the DLQ"
        return RedirectResponse(f"{prefix}/dlq?{urlencode({'note': note})}", status_code=303)

    async def replay_bulk(request: Request, fields: dict[str, str]) -> Response:
        assert inbox is not None
        assert jobs is not None
        match = _match(fields)
        if fields.get("dry_run"):
            count = await inbox.dlq.count(**match)
            return render(request, "replay.html", job=None, match=match, count=count)
        job = await jobs.start(match)
        return RedirectResponse(f"{prefix}/dlq/jobs/{job.id}", status_code=303)

    async def replay_job(request: Request) -> Response:
        job = jobs.get(request.path_params["id"]) if jobs else None
        if job is None:
            return render(request, "missing.html", status=404, what="that replay job")
        return render(request, "replay.html", job=job.to_json(), match=job.match, count=job.total)

    async def replay_job_json(request: Request) -> Response:
        job = jobs.get(request.path_params["id"]) if jobs else None
        if job is None:
            return JSONResponse({"title": "no such job"}, status_code=404)
        return JSONResponse(job.to_json())

    async def replay_job_cancel(request: Request, fields: dict[str, str]) -> Response:
        job = jobs.get(request.path_params["id"]) if jobs else None
        if job is not None:
            job.cancel()
        return RedirectResponse(f"{prefix}/dlq/jobs/{request.path_params['id']}", status_code=303)

    async def purge(request: Request, fields: dict[str, str]) -> Response:
        assert inbox is not None
        match = _match(fields)
        count = await inbox.dlq.count(**match)
        if fields.get("confirm") != str(count):
            # The operator confirms by typing the count they were shown: a stale page purges nothing.
            return render(
                request, "purge.html", status=409 if fields.get("confirm") else 200, match=match, count=count
            )
        purged = await inbox.dlq.purge(**match)
        return RedirectResponse(f"{prefix}/dlq?{urlencode({'note': f'purged {purged}'})}", status_code=303)

    async def sync_page(request: Request) -> Response:
        name = request.path_params["name"]
        sync = monitor.syncs.get(name)
        if sync is None:
            return render(request, "missing.html", status=404, what=f"sync {name!r}")
        rows = {r["name"]: r for r in await monitor.sync_rows()}
        lookup_id = request.query_params.get("record", "")
        entry = None
        if lookup_id:
            entry = (await sync.store.lookup(name, [lookup_id])).get(lookup_id)
        return render(request, "sync.html", row=rows[name], lookup_id=lookup_id, entry=entry)

    async def sync_replay(request: Request, fields: dict[str, str]) -> Response:
        name = request.path_params["name"]
        sync = monitor.syncs.get(name)
        if sync is None:
            return render(request, "missing.html", status=404, what=f"sync {name!r}")
        result = await sync.replay_dead_letters()
        note = urlencode({"note": f"replayed: {json.dumps(result)}"})
        return RedirectResponse(f"{prefix}/syncs/{quote(name)}?{note}", status_code=303)

    async def issues(request: Request) -> Response:
        chosen = request.query_params.get("state", "")
        states = frozenset({IssueState(chosen)}) if chosen in {s.value for s in IssueState} else None
        return render(request, "issues.html", issues=monitor.groups.listing(states=states), state=chosen,
                      states=[s.value for s in IssueState])  # fmt: skip

    async def issue_state(request: Request, fields: dict[str, str]) -> Response:
        try:
            state = IssueState(fields.get("state", ""))
        except ValueError:
            return HTMLResponse(
                f"state must be one of {', '.join(s.value for s in IssueState)}", status_code=400
            )
        monitor.groups.set_state(request.path_params["id"], state)
        return RedirectResponse(f"{prefix}/issues", status_code=303)

    routes = [
        Route(f"{prefix}/login", login_form, methods=["GET"]),
        Route(f"{prefix}/login", login, methods=["POST"]),
        Route(f"{prefix}/logout", action(logout), methods=["POST"]),
        Route(prefix, page(overview), methods=["GET"]),
        Route(f"{prefix}/", page(overview), methods=["GET"]),
        Route(f"{prefix}/api/overview", page(overview_json), methods=["GET"]),
        Route(f"{prefix}/upstreams/{{name}}", page(upstream), methods=["GET"]),
        Route(f"{prefix}/sources/{{name}}", page(source), methods=["GET"]),
        Route(f"{prefix}/sources/{{name}}/events/{{id:path}}", page(source_event), methods=["GET"]),
        Route(f"{prefix}/dlq", page(dlq), methods=["GET"]),
        Route(f"{prefix}/dlq/replay", action(replay_bulk), methods=["POST"]),
        Route(f"{prefix}/dlq/purge", action(purge), methods=["POST"]),
        Route(f"{prefix}/dlq/jobs/{{id}}", page(replay_job), methods=["GET"]),
        Route(f"{prefix}/api/dlq/jobs/{{id}}", page(replay_job_json), methods=["GET"]),
        Route(f"{prefix}/dlq/jobs/{{id}}/cancel", action(replay_job_cancel), methods=["POST"]),
        Route(f"{prefix}/dlq/{{id:path}}/replay", action(replay_one), methods=["POST"]),
        Route(f"{prefix}/dlq/{{id:path}}", page(dead_letter), methods=["GET"]),
        Route(f"{prefix}/syncs/{{name}}", page(sync_page), methods=["GET"]),
        Route(f"{prefix}/syncs/{{name}}/replay", action(sync_replay), methods=["POST"]),
        Route(f"{prefix}/issues", page(issues), methods=["GET"]),
        Route(f"{prefix}/issues/{{id}}", action(issue_state), methods=["POST"]),
        Mount(f"{prefix}/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if jobs is not None:
                await jobs.aclose()

    return Starlette(routes=routes, lifespan=lifespan)


SECURITY_HEADERS = {
    # Everything the page loads is its own: scripts, styles, the API it polls.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


NONE = "\u2013"
"""What a figure reads before there is one (an en dash)."""


class _TooLarge(Exception):
    pass


async def _bounded_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _safe_next(target: str | None, prefix: str) -> str:
    """Where to go after login: a path of the dashboard only (no open redirect)."""
    if target and target.startswith(prefix) and not target.startswith("//") and "\\" not in target:
        return target
    return prefix


def _match(values: Any) -> DeadLetterMatch:
    """The DLQ filter of a query string or form: source, type, error (a substring of it)."""
    match: DeadLetterMatch = {}
    if values.get("source"):
        match["source"] = str(values["source"])
    if values.get("type"):
        match["type"] = str(values["type"])
    if values.get("error"):
        match["error"] = str(values["error"])
    return match


def _body_text(body: bytes) -> str:
    """An event body as text for the page: pretty JSON when it is JSON, else decoded."""
    try:
        return json.dumps(json.loads(body), indent=2, sort_keys=True)
    except ValueError:
        return body.decode("utf-8", "replace")


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _ms(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    return f"{value * 100:.1f} %"


def _secs(value: float | None) -> str:
    if value is None:
        return NONE
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min" if value < 7200 else f"{value / 3600:.1f} h"


def _ago(at: float | None) -> str:
    return NONE if at is None else _secs(max(0.0, time.time() - at)) + " ago"


def _when(at: float | None) -> str:
    return NONE if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + "Z"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element (no ``</`` in it)."""
    return json.dumps(_finite(value)).replace("</", "<\\/")
