"""Which redirects a call follows, and what it carries to the next hop. Pure: no I/O.

RFC 9110 section 15.4: a 303 makes any method but HEAD a GET without its body; a 301 or 302
lets a POST become a GET (as every browser and HTTP client does); a 307 or 308 repeats the
request as it was, body included.

Where to: only to the origin the call started at (scheme, host and port, RFC 6454), unless the
target host is in ``Redirects.allow_hosts``. A redirect elsewhere is not followed: the caller
gets the 3xx answer. A hop that does go to another origin never carries credentials: the
driver strips every sensitive header its ``Redaction`` names, and the idempotency key, whose
meaning belongs to the origin it was made for (the Fetch standard's "HTTP-redirect fetch"
drops ``Authorization`` on a cross-origin hop the same way; here every credential header goes).
A hop from https to http is never followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ..errors import ConfigError

__all__ = ["REDIRECT_STATUSES", "Follow", "Redirects", "Stay", "next_hop", "origin_of"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
"""The statuses that redirect (RFC 9110 section 15.4); 300 and 304 do not."""

_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]
"""(scheme, host, port), lower case, the port filled in from the scheme."""


def origin_of(url: str) -> Origin | None:
    """The origin of an absolute http(s) URL, or None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


@dataclass(frozen=True, slots=True)
class Redirects:
    """Which redirects a client follows.

    ``follow``: follow redirects at all (False: every 3xx is the answer). ``max_hops``: how many
    in one attempt. ``allow_hosts``: other hosts (``"cdn.example.com"``, ``"host:8443"`` for one
    port, ``"*.example.com"`` for its subdomains) redirects may lead to; a hop there drops the
    credential headers and the idempotency key. Redirects to the call's own origin are always
    followed; to any other origin only when allowed.
    """

    follow: bool = True
    max_hops: int = 5
    allow_hosts: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.max_hops, int) or isinstance(self.max_hops, bool) or self.max_hops < 1:
            raise ConfigError("Redirects", "max_hops", f"must be an integer >= 1, got {self.max_hops!r}")
        if isinstance(self.allow_hosts, str):
            raise ConfigError("Redirects", "allow_hosts", "must be a sequence of host names, not a string")
        hosts = []
        for host in self.allow_hosts:
            if not isinstance(host, str) or not host or "/" in host or "@" in host:
                raise ConfigError(
                    "Redirects", "allow_hosts", f"must hold host names ('api.example.com'), got {host!r}"
                )
            hosts.append(host.lower())
        object.__setattr__(self, "allow_hosts", tuple(hosts))

    def allows(self, origin: Origin) -> bool:
        """Whether ``allow_hosts`` lets a redirect go to ``origin``."""
        _, host, port = origin
        for allowed in self.allow_hosts:
            name, _, allowed_port = allowed.partition(":")
            if allowed_port and allowed_port != str(port):
                continue
            if name == host or (name.startswith("*.") and host.endswith(name[1:])):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Follow:
    """Decision: send the next hop to ``url`` (absolute, with its query) with ``method``."""

    url: str
    method: str
    keep_body: bool
    """False when the hop turned into a GET (303, or a POST redirected by 301/302)."""
    cross_origin: bool
    """The hop leaves the call's origin: strip the credential headers and the idempotency key."""


@dataclass(frozen=True, slots=True)
class Stay:
    """Decision: the 3xx answer is the call's answer; ``reason`` says why it was not followed:
    ``off``, ``no_location``, ``bad_location``, ``too_many``, ``downgrade`` or ``other_origin``."""

    reason: str


def next_hop(
    config: Redirects, *, status: int, method: str, url: str, location: str | None, hops: int, origin: Origin
) -> Follow | Stay | None:
    """What follows an answer with ``status`` to ``method url`` (``hops`` redirects already
    followed, ``origin`` where the call started): None when it is not a redirect."""
    if status not in REDIRECT_STATUSES:
        return None
    if not config.follow:
        return Stay("off")
    if not location:
        return Stay("no_location")
    target = urljoin(url, location.strip())
    to = origin_of(target)
    if to is None:
        return Stay("bad_location")
    if hops >= config.max_hops:
        return Stay("too_many")
    here = origin_of(url)
    if here is not None and here[0] == "https" and to[0] == "http":
        return Stay("downgrade")
    cross = to != origin
    if cross and not config.allows(to):
        return Stay("other_origin")
    target = target.partition("#")[0]
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return Follow(target, "GET", keep_body=False, cross_origin=cross)
    return Follow(target, method, keep_body=True, cross_origin=cross)
