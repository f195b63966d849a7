"""Failures grouped into issues: counts, lifecycle, self-resolution, and the bound."""

from __future__ import annotations

from interlock.core.failure_groups import FailureGroups, IssueKey, IssueState, Transition

SCOPE = ("upstream", "crm", "GET /customers/{id}")
TIMEOUT = IssueKey(SCOPE, "TimedOut")


def test_a_thousand_identical_failures_are_one_issue_with_count_1000() -> None:
    groups = FailureGroups()
    transitions = [groups.failure(TIMEOUT, at=float(i), reference=f"t{i}") for i in range(1000)]
    assert transitions[0] is Transition.OPENED
    assert set(transitions[1:]) == {None}
    (issue,) = groups.listing()
    assert (issue.count, issue.first_seen, issue.last_seen, issue.last_reference) == (
        1000,
        0.0,
        999.0,
        "t999",
    )
    assert issue.state is IssueState.OPEN
    assert groups.get(issue.id) is issue and len(groups) == 1


def test_different_error_classes_or_scopes_are_different_issues() -> None:
    groups = FailureGroups()
    groups.failure(TIMEOUT, at=1)
    groups.failure(IssueKey(SCOPE, "CircuitOpen"), at=2)
    groups.failure(IssueKey(("source", "billing", "invoice.paid"), "TimedOut"), at=3)
    assert len(groups) == 3
    assert len({i.id for i in groups}) == 3
    assert [i.key.error for i in groups.listing()] == ["TimedOut", "CircuitOpen", "TimedOut"]


def test_a_run_of_successes_resolves_it_and_a_new_failure_reopens_it() -> None:
    groups = FailureGroups(resolve_after=3)
    groups.failure(TIMEOUT, at=1)
    assert groups.success(SCOPE) == [] and groups.success(SCOPE) == []
    groups.failure(TIMEOUT, at=2)  # the run starts again
    assert groups.success(SCOPE) == [] and groups.success(SCOPE) == []
    (resolved,) = groups.success(SCOPE)
    assert resolved.state is IssueState.RESOLVED
    assert groups.success(("upstream", "crm", "POST /orders")) == []  # another scope: nothing
    assert groups.failure(TIMEOUT, at=3) is Transition.REOPENED
    assert resolved.state is IssueState.OPEN and resolved.count == 3


def test_acknowledged_still_resolves_ignored_never_does() -> None:
    groups = FailureGroups(resolve_after=1)
    other = IssueKey(SCOPE, "RateLimited")
    groups.failure(TIMEOUT, at=1)
    groups.failure(other, at=1)
    groups.set_state(TIMEOUT.id, IssueState.ACKNOWLEDGED)
    groups.set_state(other.id, IssueState.IGNORED)
    assert [i.key for i in groups.success(SCOPE)] == [TIMEOUT]
    assert groups.get(other.id).state is IssueState.IGNORED  # type: ignore[union-attr]
    assert groups.failure(other, at=2) is None  # ignored: counts, no notification
    assert groups.get(other.id).count == 2  # type: ignore[union-attr]
    assert groups.set_state("nope", IssueState.RESOLVED) is None


def test_bounded_closed_issues_go_first() -> None:
    groups = FailureGroups(max_issues=3, resolve_after=1)
    keys = [IssueKey(("upstream", "crm", f"GET /r{i}"), "TimedOut") for i in range(4)]
    for at, key in enumerate(keys[:3]):
        groups.failure(key, at=at)
    groups.success(keys[2].scope)  # the newest one resolves: it is evicted before older open ones
    groups.failure(keys[3], at=10)
    assert {i.key for i in groups} == {keys[0], keys[1], keys[3]}
    assert groups.get(keys[2].id) is None and groups.evicted == 1
    groups.failure(IssueKey(("upstream", "crm", "GET /x"), "E"), at=11)  # none closed: oldest open
    assert {i.key for i in groups} == {keys[1], keys[3], IssueKey(("upstream", "crm", "GET /x"), "E")}
    assert "3 issues" in repr(groups)
