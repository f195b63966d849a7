"""Every exception Interlock raises, in one tree.

::

    InterlockError
    ├── ConfigError                  bad configuration, raised at construction (also a ValueError)
    ├── CallError                    an outbound call failed; carries upstream, route, attempts,
    │   │                            tracking id and request id
    │   ├── TransportError           the network failed (reset, DNS, TLS) after connecting
    │   │   └── ConnectError         no connection could be made: nothing was sent
    │   ├── TimedOut                 an attempt ran out of time (also a builtin TimeoutError)
    │   │   └── DeadlineExceeded     the whole call, retries included, ran out of time
    │   ├── CircuitOpen              the breaker is open: failed fast without calling upstream
    │   ├── RateLimited              refused by the local rate limit (nothing sent): the wait
    │   │                            would pass max_wait or the deadline, or the store failed
    │   ├── ResponseTooLarge         the answer (read or decoded) passed max_response_bytes
    │   ├── AuthError                credentials could not be had or were refused: the token
    │   │                            endpoint failed or said no (``.error``, RFC 6749 5.2), or
    │   │                            the upstream answered 401 again after a refresh
    │   └── UpstreamError            the upstream answered with an error status (``.status``)
    │       └── RetriesExhausted     every allowed attempt failed; ``.status`` is the last one's
    │                                (None when the last failure was a network error)
    ├── WebhookError                 an inbound webhook was refused (``.http_status``)
    │   ├── SignatureInvalid         401: missing, wrong or stale signature
    │   ├── PayloadTooLarge          413: body over the source's limit
    │   ├── UnknownSource            404: no source of that name
    │   └── MalformedPayload         400: body is not what the source promises
    └── PermanentFailure             raised by a handler: the event can never succeed, so it goes
                                     to the dead-letter queue at once instead of being retried

Third-party exceptions (aiohttp, httpx, asyncpg, redis) are translated at the boundary with
``raise ... from exc`` so callers only ever need to catch this tree. A call error's message
never shows a credential: passwords in URLs, sensitive query parameters and credential headers
are masked (``interlock._redact``) when it is built.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from ._redact import redact_text

if TYPE_CHECKING:
    from ._redact import Redaction

__all__ = [
    "AuthError",
    "CallError",
    "CircuitOpen",
    "ConfigError",
    "ConnectError",
    "DeadlineExceeded",
    "InterlockError",
    "MalformedPayload",
    "PayloadTooLarge",
    "PermanentFailure",
    "RateLimited",
    "ResponseTooLarge",
    "RetriesExhausted",
    "SignatureInvalid",
    "TimedOut",
    "TransportError",
    "UnknownSource",
    "UpstreamError",
    "WebhookError",
]


class InterlockError(Exception):
    """Base of every error Interlock raises."""


class ConfigError(InterlockError, ValueError):
    """A configuration value is invalid; the message names the field and the accepted values."""

    def __init__(self, owner: str, field: str, problem: str) -> None:
        self.owner = owner
        self.field = field
        self.problem = problem
        super().__init__(f"{owner}.{field}: {problem}")


class CallError(InterlockError):
    """An outbound call failed. Says where: upstream, method, route, attempts, tracking id.

    The message is redacted as it is built: credentials it quotes (a URL's password, an
    ``api_key=`` parameter, an ``Authorization`` header) read ``***``.
    """

    hint = ""
    interaction_id: str | None = None
    """The id of the call in the client's interaction log, when it keeps one
    (``interlock interactions --id ...``)."""

    def __init__(
        self,
        message: str,
        *,
        upstream: str = "",
        method: str = "",
        route: str = "",
        attempts: int = 0,
        tracking_id: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = redact_text(message)
        self.upstream = upstream
        self.method = method
        self.route = route
        self.attempts = attempts
        self.tracking_id = tracking_id
        self.request_id = request_id
        self.status = status
        if hint is not None:
            self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = " ".join(p for p in (self.method, f"{self.upstream}{self.route}") if p)
        parts = [f"{where}: {self.message}" if where else self.message]
        details = [f"attempts={self.attempts}"] if self.attempts else []
        if self.status is not None:
            details.append(f"status={self.status}")
        if self.tracking_id:
            details.append(f"tracking_id={self.tracking_id}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if self.interaction_id:
            details.append(f"interaction_id={self.interaction_id}")
        if details:
            parts.append(f"({', '.join(details)})")
        if self.hint:
            parts.append(f"- {self.hint}")
        return " ".join(parts)

    def with_context(self, **context: Any) -> CallError:
        """Fill in fields known only higher up the pipeline (attempts, tracking id)."""
        for key, value in context.items():
            if value is not None and not getattr(self, key, None):
                setattr(self, key, value)
        self.args = (self._render(),)
        return self

    def redact(self, redaction: Redaction) -> CallError:
        """Mask what ``redaction`` (a client's own names) calls sensitive in the message too."""
        self.message = redaction.mask_text(self.message)
        self.args = (self._render(),)
        return self


class TransportError(CallError):
    """The network failed (reset, DNS, TLS) after connecting; retried by default."""

    hint = "check that the upstream is reachable; network errors are retried by default"


class ConnectError(TransportError):
    """No connection could be made, so nothing was sent: always safe to retry."""

    hint = "the upstream refused or could not be reached; nothing was sent, so retrying is safe"


class TimedOut(CallError, builtins.TimeoutError):
    """An attempt ran out of time (the client's per-attempt limit); also a builtin ``TimeoutError``.

    Named apart from ``interlock.Timeout``, the limits that decide when it is raised.
    """

    hint = "raise interlock.Timeout(...) limits if the upstream is legitimately slow"


class DeadlineExceeded(TimedOut):
    """The whole call, retries and backoffs included, ran out of its ``total`` time."""

    hint = "the call's total time budget ran out; raise Timeout(total=...) or lower retries"


class CircuitOpen(CallError):
    """The breaker is open: failed fast without calling the upstream.

    ``retry_in`` is how many seconds remain until the breaker lets a probe through.
    """

    hint = "the upstream failed too often recently; calls resume after the breaker's open_for"

    def __init__(self, message: str, *, retry_in: float = 0.0, **kwargs: Any) -> None:
        self.retry_in = retry_in
        super().__init__(message, **kwargs)


class RateLimited(CallError):
    """Refused by the local rate limit, so nothing was sent (``attempts`` counts only what was):
    the wait for a turn would pass ``RateLimit.max_wait`` or the call's deadline, or the shared
    quota store failed and ``RateLimit(on_store_error="fail")`` fails closed.

    ``retry_in`` is how many seconds the next permit is away (0 when unknown).
    """

    hint = "the local quota is exhausted; raise RateLimit(max_wait=...) to wait longer"

    def __init__(self, message: str, *, retry_in: float = 0.0, **kwargs: Any) -> None:
        self.retry_in = retry_in
        super().__init__(message, **kwargs)


class ResponseTooLarge(CallError):
    """The upstream's answer passed ``max_response_bytes`` (``limit``), counted on the wire and
    again while decoding gzip / br / zstd: the read stopped there and the connection was closed.
    Not retried: the same request would get the same answer."""

    hint = "raise Limits(max_response_bytes=...) for this route if such answers are expected"

    def __init__(self, message: str, *, limit: int = 0, **kwargs: Any) -> None:
        self.limit = limit
        super().__init__(message, **kwargs)


class AuthError(CallError):
    """Credentials for an upstream could not be had, or were refused.

    Raised when the token endpoint fails (down, slow past the deadline, its breaker open) or
    refuses (``error`` and ``error_description`` are its RFC 6749 section 5.2 answer, e.g.
    ``invalid_client``, ``invalid_grant``), and when the upstream answers 401 to a call sent
    again with a freshly refreshed token (``status`` 401). Never carries a secret or a token.
    """

    hint = "check the client id, secret and scopes; the token endpoint's own answer is quoted"

    def __init__(
        self, message: str, *, error: str | None = None, error_description: str | None = None, **kwargs: Any
    ) -> None:
        self.error = error
        self.error_description = error_description
        super().__init__(message, **kwargs)


class UpstreamError(CallError):
    """The upstream answered with an error status (``status``); ``Response.raise_for_status`` raises it."""

    hint = ""


class RetriesExhausted(UpstreamError):
    """Every allowed attempt failed; ``status`` is the last one's (None after a network error).

    The last failure is chained as ``__cause__``.
    """

    hint = "the upstream kept failing; see __cause__ for the last error"


class WebhookError(InterlockError):
    """An inbound webhook was refused. ``http_status`` is what the sender is answered."""

    http_status = 400

    def __init__(self, message: str, *, source: str = "") -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class SignatureInvalid(WebhookError):
    """401: the signature is missing, wrong, or its timestamp is outside the tolerance."""

    http_status = 401


class PayloadTooLarge(WebhookError):
    """413: the body is over the source's size limit (refused before it is read)."""

    http_status = 413


class UnknownSource(WebhookError):
    """404: no source of that name is configured."""

    http_status = 404


class MalformedPayload(WebhookError):
    """400: the body is not what the source promises (not JSON, or no delivery id where expected)."""

    http_status = 400


class PermanentFailure(InterlockError):
    """Raise from an inbox handler when retrying cannot help: the event is dead-lettered at once.

    For a payload that fails validation, or a record the destination rejects for good. The event
    keeps this message in its error history, to be replayed by hand once the cause is fixed.
    """
