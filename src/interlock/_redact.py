"""Redaction: what never leaves the process in an error, a log record or a repr.

One ``Redaction`` names the sensitive request headers and query parameters; its methods mask
their values in the forms they travel in (a header list, a URL, a query mapping, free text such
as a library's exception message). ``REDACTION`` holds the defaults and the module functions use
it::

    from interlock._redact import REDACTION, redact_url
    redact_url("https://u:pw@api.test/x?api_key=k&page=2")
    # 'https://u:***@api.test/x?api_key=***&page=2'
    redact_headers({"Authorization": "Bearer t", "Accept": "*/*"})
    # {'Authorization': '***', 'Accept': '*/*'}

A client with credentials of its own kind extends the defaults:
``Client(redaction=Redaction().extended(headers=["X-Shop-Token"]))``. Ground floor: imports
nothing of Interlock, so ``errors`` can use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_HEADERS",
    "DEFAULT_QUERY",
    "MASK",
    "REDACTION",
    "Redaction",
    "redact_headers",
    "redact_text",
    "redact_url",
]

MASK = "***"
"""What a sensitive value is replaced with."""

DEFAULT_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-auth-token"}
)
"""Request and response headers whose values are credentials (lower case)."""

DEFAULT_QUERY = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "signature", "sig", "secret", "password"}
)
"""Query parameters whose values are credentials (lower case)."""

# user:password@ in any URL found in text.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"<>]*):[^/\s@'\"<>]*@")


def _lower_set(owner: str, values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise TypeError(f"Redaction.{owner} must be a collection of names, not a string: {values!r}")
    return frozenset(v.lower() for v in values)


@dataclass(frozen=True)
class Redaction:
    """The sensitive ``headers`` and ``query`` parameter names (case-insensitive) whose values
    are masked with ``MASK`` wherever Interlock shows a request: errors, log records, reprs.
    They are also the credential headers stripped from a redirect to another origin.

    Defaults: ``DEFAULT_HEADERS`` and ``DEFAULT_QUERY``; ``extended`` adds names to them.
    """

    headers: frozenset[str] = DEFAULT_HEADERS
    query: frozenset[str] = DEFAULT_QUERY

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _lower_set("headers", self.headers))
        object.__setattr__(self, "query", _lower_set("query", self.query))

    def extended(self, *, headers: Iterable[str] = (), query: Iterable[str] = ()) -> Redaction:
        """These names and the given ones."""
        return Redaction(
            self.headers | _lower_set("headers", headers), self.query | _lower_set("query", query)
        )

    def is_sensitive_header(self, name: str) -> bool:
        """Whether the header ``name`` carries a credential."""
        return name.lower() in self.headers

    def mask_headers(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """(name, value) pairs (``headers.items()``) with the sensitive values masked, in order."""
        return [(k, MASK if k.lower() in self.headers else v) for k, v in items]

    def mask_params(self, params: Mapping[str, str]) -> dict[str, str]:
        """Query parameters with the sensitive values masked."""
        return {k: MASK if k.lower() in self.query else v for k, v in params.items()}

    def mask_url(self, url: str) -> str:
        """``url`` with its password (user info) and sensitive query values masked."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.mask_text(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}{':' + MASK if colon else ''}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() in self.query for k, _ in pairs):
                query = "&".join(
                    f"{quote(k, safe='')}={MASK if k.lower() in self.query else quote(v, safe='')}"
                    for k, v in pairs
                )
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    def mask_text(self, text: str) -> str:
        """Free text (an exception message, a repr) with every credential it shows masked:
        passwords in URLs, ``name=value`` of sensitive query parameters, and sensitive header
        values written ``'Name': 'value'`` (a mapping's repr) or ``Name: value`` (to the end
        of the line)."""
        if not text:
            return text
        query, quoted, line = self._patterns
        text = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
        text = query.sub(lambda m: f"{m.group(1)}{MASK}", text)
        text = quoted.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
        return line.sub(lambda m: f"{m.group(1)}{MASK}", text)

    @cached_property
    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
        params = "|".join(re.escape(n) for n in sorted(self.query, key=len, reverse=True))
        names = "|".join(re.escape(n) for n in sorted(self.headers, key=len, reverse=True))
        return (
            # name=value after ? & ; a space, a quote or a bracket; the value up to a delimiter.
            re.compile(rf"((?:^|(?<=[?&;\s'\"(,\[]))(?:{params})=)[^&#;\s'\"<>),\]]*", re.IGNORECASE),
            # 'Name': 'value' as a dict or a multidict prints it.
            re.compile(rf"((['\"])(?:{names})\2\s*[:=]\s*(['\"]))(?:(?!\3).)*(\3)", re.IGNORECASE),
            # Name: value, as an HTTP message or a log line writes it.
            re.compile(
                rf"((?:^|(?<=[\s,;(]))(?:{names})\s*:[ \t]*)(?!\s*\*\*\*)[^\r\n]+",
                re.IGNORECASE | re.MULTILINE,
            ),
        )


REDACTION = Redaction()
"""The default redaction, used where no client's own is at hand (errors, stores)."""


def redact_url(url: str) -> str:
    """``url`` with its password and sensitive query values masked (``REDACTION.mask_url``)."""
    return REDACTION.mask_url(url)


def redact_text(text: str) -> str:
    """``text`` with the credentials it shows masked (``REDACTION.mask_text``)."""
    return REDACTION.mask_text(text)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A header mapping with the sensitive values masked (one value per name: the last)."""
    return dict(REDACTION.mask_headers(headers.items()))
