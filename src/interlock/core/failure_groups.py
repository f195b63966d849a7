"""Failures grouped into issues: 1,000 identical failures are one issue with a count of 1,000.

Pure bookkeeping, no I/O and no clock of its own (each call passes ``at``): the service feeds it
every failed call (upstream + route + error class) and every failed delivery (source + event
type + error class), and every success of the same scope; the dashboard lists the issues and an
operator moves them through their lifecycle:

- ``open``: failing now, or not yet resolved;
- ``acknowledged``: an operator has seen it; still counts, still resolves itself;
- ``resolved``: by an operator, or by itself after ``resolve_after`` successes in a row in its
  scope; a new failure reopens it (and says so, so a notifier can post it again);
- ``ignored``: counts on, never notifies, never resolves itself.

Bounded: at most ``max_issues`` are kept; past it the least recently seen closed issue
(resolved or ignored) goes first, then the least recently seen open one, and ``evicted``
counts them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from .._validate import check_count

__all__ = ["FailureGroups", "Issue", "IssueKey", "IssueState", "Transition"]


class IssueState(StrEnum):
    """Where an issue is in its lifecycle."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class IssueKey:
    """What makes two failures the same issue: a scope and an error class.

    The scope is ``("upstream", name, route)`` for outbound calls or ``("source", name,
    event_type)`` for deliveries; a success in that scope counts towards resolving it."""

    scope: tuple[str, str, str]
    error: str

    @property
    def id(self) -> str:
        """A short stable id for URLs and notifications (the same key, the same id)."""
        raw = "\x1f".join((*self.scope, self.error)).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    @property
    def title(self) -> str:
        """How the issue reads in a list: ``crm GET /customers/{id}: TimedOut``."""
        _, name, what = self.scope
        return f"{name} {what}: {self.error}"


@dataclass(slots=True)
class Issue:
    """One group of identical failures."""

    key: IssueKey
    first_seen: float
    last_seen: float
    count: int = 0
    state: IssueState = IssueState.OPEN
    successes: int = 0
    """Successes in a row in this issue's scope since its last failure."""
    last_detail: str = ""
    """The newest failure's message (already redacted by whoever reported it)."""
    last_reference: str = ""
    """The newest failure's tracking id or event id, to look it up."""

    @property
    def id(self) -> str:
        """The key's stable id."""
        return self.key.id


class Transition(StrEnum):
    """A change worth telling someone about (a notifier posts these)."""

    OPENED = "opened"
    REOPENED = "reopened"
    RESOLVED = "resolved"


@dataclass(slots=True)
class FailureGroups:
    """The issues of one service, keyed by ``IssueKey``."""

    resolve_after: int = 20
    """Successes in a row in an issue's scope that resolve it by itself."""
    max_issues: int = 1000
    evicted: int = 0
    _issues: dict[IssueKey, Issue] = field(default_factory=dict)
    _by_scope: dict[tuple[str, str, str], set[IssueKey]] = field(default_factory=dict)
    _by_id: dict[str, IssueKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_count("FailureGroups", "resolve_after", self.resolve_after)
        check_count("FailureGroups", "max_issues", self.max_issues)

    def __len__(self) -> int:
        return len(self._issues)

    def __iter__(self) -> Iterator[Issue]:
        return iter(self._issues.values())

    def __repr__(self) -> str:
        open_ = sum(1 for i in self._issues.values() if i.state in (IssueState.OPEN, IssueState.ACKNOWLEDGED))
        return f"FailureGroups({len(self._issues)} issues, {open_} open, evicted={self.evicted})"

    def failure(
        self, key: IssueKey, *, at: float, detail: str = "", reference: str = ""
    ) -> Transition | None:
        """Count one failure; ``OPENED`` for a new issue, ``REOPENED`` for a resolved one,
        else ``None`` (an open, acknowledged or ignored issue just counts)."""
        issue = self._issues.get(key)
        transition: Transition | None = None
        if issue is None:
            self._make_room()
            issue = Issue(key, first_seen=at, last_seen=at)
            self._issues[key] = issue
            self._by_scope.setdefault(key.scope, set()).add(key)
            self._by_id[key.id] = key
            transition = Transition.OPENED
        elif issue.state is IssueState.RESOLVED:
            issue.state = IssueState.OPEN
            transition = Transition.REOPENED
        issue.count += 1
        issue.last_seen = max(issue.last_seen, at)
        issue.successes = 0
        issue.last_detail, issue.last_reference = detail, reference
        return transition

    def success(self, scope: tuple[str, str, str]) -> list[Issue]:
        """Count one success in ``scope``; the issues it resolves by itself (their run of
        successes reached ``resolve_after``)."""
        resolved = []
        for key in self._by_scope.get(scope, ()):
            issue = self._issues[key]
            if issue.state not in (IssueState.OPEN, IssueState.ACKNOWLEDGED):
                continue
            issue.successes += 1
            if issue.successes >= self.resolve_after:
                issue.state = IssueState.RESOLVED
                resolved.append(issue)
        return resolved

    def get(self, issue_id: str) -> Issue | None:
        """The issue with this id, or ``None``."""
        key = self._by_id.get(issue_id)
        return None if key is None else self._issues[key]

    def set_state(self, issue_id: str, state: IssueState) -> Issue | None:
        """An operator's move (acknowledge, resolve, ignore, or reopen); ``None`` for an
        unknown id."""
        issue = self.get(issue_id)
        if issue is not None:
            issue.state = state
            issue.successes = 0
        return issue

    def listing(self, *, states: frozenset[IssueState] | None = None) -> list[Issue]:
        """The issues in ``states`` (all by default), most recently seen first."""
        chosen = [i for i in self._issues.values() if states is None or i.state in states]
        return sorted(chosen, key=lambda i: i.last_seen, reverse=True)

    def _make_room(self) -> None:
        if len(self._issues) < self.max_issues:
            return
        closed = (IssueState.RESOLVED, IssueState.IGNORED)
        victims = [i for i in self._issues.values() if i.state in closed] or list(self._issues.values())
        oldest = min(victims, key=lambda i: i.last_seen)
        del self._issues[oldest.key]
        del self._by_id[oldest.key.id]
        scope = self._by_scope[oldest.key.scope]
        scope.discard(oldest.key)
        if not scope:
            del self._by_scope[oldest.key.scope]
        self.evicted += 1
