"""What flows through the pipeline: one ``Request`` in, one ``Response`` out."""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from ._redact import REDACTION
from .errors import UpstreamError

__all__ = ["IDEMPOTENT_METHODS", "REDACTION_KEY", "SAFE_METHODS", "Request", "Response"]

REDACTION_KEY = "interlock.redaction"
"""``Request.extensions`` key of the ``Redaction`` its repr masks with (absent: the defaults)."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# RFC 9110 section 9.2.2: repeating these has the same effect as sending them once.
IDEMPOTENT_METHODS = SAFE_METHODS | {"PUT", "DELETE"}


# What an error raised for a response says about where it happened (see CallError).
_RESPONSE_CONTEXT = ("upstream", "method", "route", "attempts", "tracking_id", "request_id", "status")


@dataclass(slots=True, repr=False)
class Request:
    """One outbound call as the pipeline sees it: built by ``Client.build_request``, carried
    through every policy and attempt, then sent by a transport.

    Its repr masks credentials (``interlock._redact``): sensitive header and query values read
    ``***`` and the body shows only its size.
    """

    method: str
    url: str
    """Absolute URL without the query string."""
    path: str
    """Path relative to the client's base URL, as the caller wrote it."""
    route: str
    """Route template used for metrics, logs and policy rules, e.g. ``/customers/{id}``."""
    upstream: str
    params: dict[str, str] = field(default_factory=dict)
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes | None = None
    request_id: str = ""
    idempotency_key: str | None = None
    deadline: float | None = None
    """Monotonic time by which the whole call (all attempts) must end."""
    attempt: int = 0
    extensions: dict[str, Any] = field(default_factory=dict)
    """Scratch space for policies (cache key, batch membership...)."""
    max_response_bytes: int | None = None
    """The most bytes the answer may have, on the wire and again decoded (None: no bound);
    set for each attempt from the client's ``Limits``. Past it the transport stops reading
    and raises ``ResponseTooLarge``."""

    @property
    def is_safe(self) -> bool:
        """True for methods that change nothing upstream (RFC 9110 section 9.2.1)."""
        return self.method in SAFE_METHODS

    def context(self) -> dict[str, Any]:
        """Where this call goes, for an error raised on its way: upstream, method, route and
        request id (see ``CallError``)."""
        return {
            "upstream": self.upstream,
            "method": self.method,
            "route": self.route,
            "request_id": self.request_id,
        }

    def __repr__(self) -> str:
        # The client's own redaction when a stage left it here (credentials in a header or
        # query parameter of their own naming), else the defaults.
        redaction = self.extensions.get(REDACTION_KEY, REDACTION)
        headers = ", ".join(f"{k!r}: {v!r}" for k, v in redaction.mask_headers(self.headers.items()))
        body = "None" if self.body is None else f"<{len(self.body)} bytes>"
        return (
            f"Request(method={self.method!r}, url={redaction.mask_url(self.url)!r}, route={self.route!r}, "
            f"upstream={self.upstream!r}, params={redaction.mask_params(self.params)!r}, "
            f"headers={{{headers}}}, body={body}, request_id={self.request_id!r}, "
            f"idempotency_key={self.idempotency_key!r}, deadline={self.deadline!r}, attempt={self.attempt})"
        )


@dataclass(slots=True, eq=False)
class Response:
    """An upstream's answer, plus what it took to get it."""

    status: int
    headers: CIMultiDictProxy[str]
    content: bytes
    method: str = "GET"
    url: str = ""
    route: str = ""
    upstream: str = ""
    attempts: int = 1
    elapsed: float = 0.0
    tracking_id: str | None = None
    request_id: str | None = None
    from_cache: bool = False
    stale: bool = False
    """Served from cache past its freshness (stale-while-revalidate or stale-if-error)."""
    _json: Any = field(default=None, repr=False)

    @classmethod
    def answering(
        cls,
        request: Request,
        status: int,
        headers: CIMultiDictProxy[str],
        content: bytes,
        *,
        attempts: int = 1,
        tracking_id: str | None = None,
        from_cache: bool = False,
        stale: bool = False,
    ) -> Response:
        """The answer to ``request``: its method, URL, route, upstream and request id copied
        from it, the other fields as given."""
        return cls(
            status, headers, content, request.method, request.url, request.route, request.upstream,
            attempts=attempts, tracking_id=tracking_id, request_id=request.request_id,
            from_cache=from_cache, stale=stale,
        )  # fmt: skip

    def copy_for(self, request_id: str | None) -> Response:
        """A copy of this answer for another caller (``request_id`` theirs, the parsed body not
        shared): what a shared flight hands each of its callers. ``dataclasses.replace``'s
        result, built directly."""
        return Response(
            self.status, self.headers, self.content, self.method, self.url, self.route, self.upstream,
            self.attempts, self.elapsed, self.tracking_id, request_id, self.from_cache, self.stale,
        )  # fmt: skip

    @property
    def ok(self) -> bool:
        """True for 2xx and 3xx answers."""
        return 200 <= self.status < 400

    @property
    def text(self) -> str:
        """The body decoded with the ``Content-Type`` charset (UTF-8 when none is given, or
        when the one given is unknown); bytes that do not decode read as U+FFFD."""
        charset = "utf-8"
        ctype = self.headers.get("Content-Type", "")
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip().strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except (LookupError, ValueError):
            # A charset Python does not know (or a codec that is not a text encoding, or one
            # that refuses "replace"): the upstream's mistake, which must not fail the caller.
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (parsed once, then kept)."""
        if self._json is None:
            self._json = _json.loads(self.content)
        return self._json

    def raise_for_status(self) -> Response:
        """Raise ``UpstreamError`` for 4xx and 5xx answers; return self otherwise."""
        if self.status >= 400:
            context = {name: getattr(self, name) for name in _RESPONSE_CONTEXT}
            raise UpstreamError(f"upstream answered {self.status}", **context)
        return self

    def __repr__(self) -> str:
        extra = " from_cache" if self.from_cache else ""
        return (
            f"<Response {self.status} {self.method} {self.route or self.url} "
            f"attempts={self.attempts} elapsed={self.elapsed * 1000:.1f}ms{extra}>"
        )
