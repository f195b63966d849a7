"""core.token: token endpoint answers (RFC 6749 5.1 / 5.2) and when a token falls due."""

from __future__ import annotations

import json

import pytest

from interlock.core.jwks import should_refetch
from interlock.core.token import Freshness, Token, TokenRefusal, freshness, parse_token_answer, refresh_due

NOW = 1_700_000_000.0


def answer(status: int, body: object) -> Token | TokenRefusal:
    return parse_token_answer(status, json.dumps(body).encode(), NOW, previous_refresh="rt-old")


def test_a_token_answer_is_made_absolute_and_keeps_the_refresh_token_unless_rotated() -> None:
    token = answer(200, {"access_token": "at", "token_type": "bearer", "expires_in": 3600, "scope": "a b"})
    assert isinstance(token, Token)
    assert token.expires_at == NOW + 3600 and token.issued_at == NOW and token.scope == "a b"
    assert token.refresh_token == "rt-old"
    rotated = answer(200, {"access_token": "at", "token_type": "Bearer", "refresh_token": "rt-new"})
    assert isinstance(rotated, Token) and rotated.refresh_token == "rt-new" and rotated.expires_at is None
    as_string = answer(200, {"access_token": "at", "token_type": "Bearer", "expires_in": "60"})
    assert isinstance(as_string, Token) and as_string.expires_at == NOW + 60


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant", "error_description": "expired"}, "invalid_grant"),
        (401, {"error": "invalid_client"}, "invalid_client"),
        (503, "<html>down</html>", "http_503"),
        (200, {"token_type": "Bearer"}, "invalid_response"),
        (200, {"access_token": "at", "token_type": "mac"}, "unsupported_token_type"),
        (200, ["not", "an", "object"], "invalid_response"),
    ],
)
def test_refusals_carry_the_providers_error_code(status: int, body: object, error: str) -> None:
    refusal = answer(status, body)
    assert isinstance(refusal, TokenRefusal) and refusal.error == error
    assert refusal.retryable is (status >= 500)


def test_a_refusal_description_is_bounded_and_printable() -> None:
    refusal = answer(400, {"error": "invalid_request", "error_description": "x\n" * 500})
    assert isinstance(refusal, TokenRefusal) and refusal.description is not None
    assert len(refusal.description) <= 200 and "\n" not in refusal.description


def test_freshness_use_then_refresh_ahead_then_refresh() -> None:
    token = Token("at", expires_at=NOW + 3600, issued_at=NOW)
    due = refresh_due(token, margin=60.0)
    assert due == NOW + 3540
    assert freshness(token, NOW + 100, due) is Freshness.USE
    assert freshness(token, NOW + 3550, due) is Freshness.REFRESH_AHEAD
    assert freshness(token, NOW + 3600, due) is Freshness.REFRESH
    assert freshness(None, NOW, None) is Freshness.REFRESH
    assert freshness(token.without_access(), NOW, due) is Freshness.REFRESH


def test_jitter_moves_the_due_time_earlier_within_its_fraction_and_short_tokens_fall_due_halfway() -> None:
    token = Token("at", expires_at=NOW + 3600, issued_at=NOW)
    assert refresh_due(token, margin=60.0, jitter=0.5, draw=1.0) == NOW + 3600 - 90
    short = Token("at", expires_at=NOW + 60, issued_at=NOW)
    assert refresh_due(short, margin=60.0) == NOW + 30
    assert refresh_due(Token("at"), margin=60.0) is None


def test_a_token_round_trips_through_json_and_its_repr_shows_no_secret() -> None:
    token = Token("at-secret", expires_at=NOW, refresh_token="rt-secret", scope="s", issued_at=NOW - 1)
    assert Token.from_json(token.to_json()) == token
    assert "secret" not in repr(token)
    with pytest.raises(ValueError):
        Token.from_json('{"no": "token"}')
    # What the stores load: an absent or unreadable token reads as none.
    assert Token.read_stored(token.to_json()) == token
    assert Token.read_stored(None) is None
    assert Token.read_stored('{"no": "token"}') is None
    assert Token.read_stored(b"not json") is None


def test_jwks_refetch_is_bounded() -> None:
    base = {"max_age": 300.0, "min_interval": 30.0}
    assert should_refetch(now=0, fetched_at=None, last_attempt=None, last_unknown=None, kid_known=False, **base)
    # fresh set, known kid: no fetch; unknown kid: one fetch, then none for the interval
    assert not should_refetch(now=10, fetched_at=0, last_attempt=0, last_unknown=None, kid_known=True, **base)
    assert should_refetch(now=10, fetched_at=0, last_attempt=0, last_unknown=None, kid_known=False, **base)
    assert not should_refetch(now=20, fetched_at=10, last_attempt=10, last_unknown=10, kid_known=False, **base)
    assert should_refetch(now=41, fetched_at=10, last_attempt=10, last_unknown=10, kid_known=False, **base)
    # stale set: refetched; a failing provider: asked once per interval
    assert should_refetch(now=400, fetched_at=0, last_attempt=0, last_unknown=None, kid_known=True, **base)
    assert not should_refetch(now=410, fetched_at=0, last_attempt=400, last_unknown=None, kid_known=True, **base)
    assert not should_refetch(now=5, fetched_at=None, last_attempt=0, last_unknown=None, kid_known=False, **base)
    assert should_refetch(now=31, fetched_at=None, last_attempt=0, last_unknown=None, kid_known=False, **base)
