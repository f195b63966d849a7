"""RFC 9111 / RFC 5861 decisions of the cache, with hand-fed wall-clock times."""

from __future__ import annotations

import pytest

from interlock.core import freshness as fr

NOW = 1_700_000_000.0
DEFAULT_HEADERS = {"ETag": '"v1"', "Content-Type": "application/json"}


def entry(
    ttl: float = 60,
    headers: dict[str, str] | None = None,
    respect: bool = False,
    request_headers: dict[str, str] | None = None,
    **kw: float,
) -> fr.CacheEntry:
    return fr.new_entry(
        status=200,
        headers=list((DEFAULT_HEADERS if headers is None else headers).items()),
        content=b'{"id": 1}',
        now=NOW,
        ttl=ttl,
        respect_headers=respect,
        stale_while_revalidate=kw.get("swr", 0.0),
        stale_if_error=kw.get("sie", 0.0),
        request_headers=request_headers or {},
    )


def test_fresh_then_stale_while_revalidate_then_stale() -> None:
    e = entry(ttl=60, swr=30)
    assert fr.assess(e, NOW + 59.9) is fr.Freshness.FRESH
    assert fr.assess(e, NOW + 60) is fr.Freshness.STALE_REVALIDATE
    assert fr.assess(e, NOW + 90) is fr.Freshness.STALE


def test_stale_if_error_window() -> None:
    e = entry(ttl=10, sie=100)
    assert fr.serve_stale_on_error(e, NOW + 50)
    assert not fr.serve_stale_on_error(e, NOW + 110)


def test_age_header_counts_against_freshness() -> None:
    e = entry(ttl=60, headers={"Age": "50"})
    assert fr.assess(e, NOW + 9) is fr.Freshness.FRESH
    assert fr.assess(e, NOW + 11) is fr.Freshness.STALE


def test_rule_ttl_wins_unless_headers_are_respected() -> None:
    headers = {"Cache-Control": "max-age=5"}
    assert entry(ttl=60, headers=headers).lifetime == 60
    assert entry(ttl=60, headers=headers, respect=True).lifetime == 5
    assert entry(ttl=60, headers={"Cache-Control": "no-cache"}, respect=True).lifetime == 0
    assert entry(ttl=60, headers={}, respect=True).lifetime == 60  # upstream silent: the rule


def test_expires_minus_date_and_invalid_expires() -> None:
    headers = {"Date": "Tue, 14 Nov 2023 22:13:20 GMT", "Expires": "Tue, 14 Nov 2023 22:13:50 GMT"}
    assert fr.freshness_lifetime(60, headers, True) == 30
    assert fr.freshness_lifetime(60, {"Expires": "0"}, True) == 0


def test_storable() -> None:
    assert fr.storable(200, {}, respect_headers=False)
    assert not fr.storable(500, {}, respect_headers=False)
    assert not fr.storable(404, {}, respect_headers=False)
    assert fr.storable(200, {"Cache-Control": "no-store"}, respect_headers=False)
    assert not fr.storable(200, {"Cache-Control": "no-store"}, respect_headers=True)
    assert not fr.storable(200, {"Vary": "*"}, respect_headers=False)


def test_must_revalidate_forbids_stale_serving() -> None:
    e = entry(ttl=0, headers={"Cache-Control": "max-age=10, must-revalidate"}, respect=True, swr=60, sie=60)
    assert fr.assess(e, NOW + 11) is fr.Freshness.STALE
    assert not fr.serve_stale_on_error(e, NOW + 11)


def test_upstream_grants_stale_windows_when_respected() -> None:
    e = entry(
        headers={"Cache-Control": "max-age=1, stale-while-revalidate=9, stale-if-error=99"}, respect=True
    )
    assert (e.lifetime, e.stale_while_revalidate, e.stale_if_error) == (1, 9, 99)


def test_conditional_headers_from_validators() -> None:
    e = entry(headers={"ETag": '"abc"', "Last-Modified": "Tue, 14 Nov 2023 22:13:20 GMT"})
    assert fr.conditional_headers(e) == {
        "If-None-Match": '"abc"',
        "If-Modified-Since": "Tue, 14 Nov 2023 22:13:20 GMT",
    }
    assert fr.conditional_headers(entry(headers={})) == {}


def test_refresh_after_304_updates_headers_and_restarts_freshness() -> None:
    e = entry(ttl=10, headers={"ETag": '"v1"', "Content-Length": "9", "X-Trace": "a"})
    later = NOW + 100
    r = fr.refresh(e, [("ETag", '"v1"'), ("X-Trace", "b"), ("Content-Length", "0")], later, 10, False)
    assert r.content == e.content
    assert r.header("X-Trace") == "b"
    assert r.header("Content-Length") == "9"  # describes the stored body, not the empty 304
    assert fr.assess(r, later + 5) is fr.Freshness.FRESH


def test_vary_matching() -> None:
    e = fr.new_entry(
        status=200,
        headers=[("Vary", "Accept-Language")],
        content=b"",
        now=NOW,
        ttl=5,
        respect_headers=False,
        stale_while_revalidate=0,
        stale_if_error=0,
        request_headers={"accept-language": "fr"},
    )
    assert fr.vary_matches(e, {"accept-language": "fr"})
    assert not fr.vary_matches(e, {"accept-language": "de"})


@pytest.mark.parametrize("size", [10, 5000])
def test_serialisation_round_trip(size: int) -> None:
    e = fr.CacheEntry(
        status=200,
        headers=(("ETag", '"x"'),),
        content=b"a" * size,
        stored_at=NOW,
        lifetime=5,
        stale_if_error=3,
        vary=(("accept", "json"),),
        tags=("t1",),
    )
    data = e.to_bytes(compress_over=1024)
    assert data[:1] == (b"z" if size > 1024 else b"r")
    assert fr.CacheEntry.from_bytes(data) == e


def test_retention_keeps_validated_entries_for_revalidation() -> None:
    assert entry(ttl=10).retention() >= 10 + fr.REVALIDATION_RETENTION
    assert entry(ttl=10, headers={}, sie=20).retention() == 30


# -- CacheRead: the decisions of one GET, step by step -----------------------------------------

TERMS = fr.CacheTerms(ttl=60, stale_while_revalidate=30, stale_if_error=300)


def test_a_callers_own_conditional_request_is_not_ours() -> None:
    assert fr.CacheRead({"If-None-Match": '"v1"'}, TERMS).start() == fr.Bypass()
    assert fr.CacheRead({"Range": "bytes=0-9"}, TERMS).start() == fr.Bypass()


def test_nothing_stored_means_fetch_then_store() -> None:
    read = fr.CacheRead({}, TERMS, tags=["customer:1"])
    assert read.start() == fr.Lookup()
    assert read.stored(None, NOW) == fr.Fetch()
    outcome = read.answered(200, [("ETag", '"v1"')], b"{}", NOW)
    assert isinstance(outcome, fr.Store)
    assert (outcome.entry.lifetime, outcome.entry.tags, outcome.entry.etag) == (60, ("customer:1",), '"v1"')
    assert read.answered(404, [], b"", NOW) == fr.PassOn()  # not storable


def test_fresh_is_served_stale_is_revalidated_and_a_304_freshens() -> None:
    stored = entry(ttl=60)
    read = fr.CacheRead({}, TERMS)
    assert read.stored(stored, NOW + 10) == fr.Serve(stored)
    revalidate = read.stored(stored, NOW + 120)
    assert revalidate == fr.Revalidate(stored, {"If-None-Match": '"v1"'})
    outcome = read.answered(304, [("X-Trace", "b")], b"", NOW + 120)
    assert isinstance(outcome, fr.Freshened)
    assert outcome.entry.content == stored.content and outcome.entry.header("X-Trace") == "b"
    assert fr.assess(outcome.entry, NOW + 121) is fr.Freshness.FRESH


def test_stale_while_revalidate_serves_and_names_the_refresh() -> None:
    stored = entry(ttl=60, swr=30)
    read = fr.CacheRead({}, TERMS)
    decision = read.stored(stored, NOW + 70)
    assert decision == fr.ServeStale(
        stored, fr.STALE_WHILE_REVALIDATE, refresh=fr.Revalidate(stored, {"If-None-Match": '"v1"'})
    )
    # The background refresh's answer is judged against what it sent: a 304 freshens.
    assert isinstance(read.answered(304, [], b"", NOW + 71), fr.Freshened)


def test_stale_if_error_stands_in_for_failures_within_its_window() -> None:
    stored = entry(ttl=0, headers={}, sie=100)  # no validators: a plain fetch that keeps it
    read = fr.CacheRead({}, TERMS)
    assert read.stored(stored, NOW + 50) == fr.Fetch(stored)
    assert read.answered(503, [], b"", NOW + 50) == fr.ServeStale(stored, "stale-if-error: status 503")
    assert read.failed("ConnectError: refused", NOW + 50) == fr.ServeStale(
        stored, "stale-if-error: ConnectError: refused"
    )
    assert read.failed("ConnectError: refused", NOW + 150) == fr.PassOn()  # window over
    assert read.answered(500, [], b"", NOW + 150) == fr.PassOn()


def test_request_no_cache_fetches_and_no_store_stores_nothing() -> None:
    read = fr.CacheRead({"Cache-Control": "no-cache"}, TERMS)
    assert read.start() == fr.Fetch()
    assert isinstance(read.answered(200, [], b"{}", NOW), fr.Store)
    read = fr.CacheRead({"Cache-Control": "no-store"}, TERMS)
    assert read.start() == fr.Fetch()
    assert read.answered(200, [], b"{}", NOW) == fr.PassOn()


def test_a_vary_mismatch_is_a_miss_without_fallback() -> None:
    stored = entry(headers={"Vary": "Accept-Language"}, sie=300, request_headers={"accept-language": "fr"})
    read = fr.CacheRead({"accept-language": "de"}, TERMS)
    assert read.stored(stored, NOW) == fr.Fetch()
    assert read.failed("TransportError: reset", NOW) == fr.PassOn()


def test_writes_invalidate_unless_they_failed() -> None:
    assert fr.invalidates("POST", 201) and fr.invalidates("DELETE", 204) and fr.invalidates("PUT", 303)
    assert not fr.invalidates("POST", 400) and not fr.invalidates("GET", 200)


# -- found by the mutation run (issue #19) ------------------------------------------------------


def test_new_entry_keeps_every_field_and_the_bytes_form_round_trips_it() -> None:
    from interlock.core.freshness import CacheEntry, new_entry

    headers = [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "session=secret"),  # never stored: another user's session
        ("Transfer-Encoding", "chunked"),  # hop-by-hop
        ("Cache-Control", "max-age=30, stale-while-revalidate=7, stale-if-error=9, must-revalidate"),
        ("Age", "4"),
        ("Vary", "Accept-Language,  Authorization"),
        ("ETag", '"v1"'),
    ]
    entry = new_entry(
        status=203,
        headers=headers,
        content=b"{}",
        now=1000.0,
        ttl=60.0,
        respect_headers=True,
        stale_while_revalidate=1.0,
        stale_if_error=2.0,
        request_headers={"accept-language": "fr"},
        tags=["customers", "customers/1"],
    )
    assert entry.status == 203 and entry.content == b"{}" and entry.stored_at == 1000.0
    assert [k for k, _ in entry.headers] == ["Content-Type", "Cache-Control", "Age", "Vary", "ETag"]
    assert (entry.lifetime, entry.stale_while_revalidate, entry.stale_if_error) == (30.0, 7.0, 9.0)
    assert (entry.initial_age, entry.must_revalidate) == (4.0, True)
    assert entry.vary == (("accept-language", "fr"), ("authorization", ""))
    assert entry.tags == ("customers", "customers/1")
    assert entry.age(1010.0) == 14.0 and entry.age(990.0) == 4.0  # a clock going back adds nothing
    for threshold in (1, 10**6):  # compressed, then raw
        again = CacheEntry.from_bytes(entry.to_bytes(compress_over=threshold))
        assert again == entry
    assert entry.to_bytes(compress_over=10**6)[:1] == b"r"
    raw_size = len(entry.to_bytes(compress_over=10**6)) - 1
    assert entry.to_bytes(compress_over=raw_size)[:1] == b"z"  # at the threshold: compressed
    assert entry.to_bytes(compress_over=raw_size + 1)[:1] == b"r"
    with pytest.raises(ValueError, match="^not a cache entry$"):
        CacheEntry.from_bytes(b"x" + entry.to_bytes()[1:])


def test_the_upstream_windows_apply_only_when_its_headers_are_respected() -> None:
    from interlock.core.freshness import new_entry

    common = {
        "status": 200,
        "headers": [("Cache-Control", "max-age=30, stale-while-revalidate=7, must-revalidate")],
        "content": b"",
        "now": 0.0,
        "ttl": 60.0,
        "stale_while_revalidate": 1.0,
        "stale_if_error": 2.0,
        "request_headers": {},
    }
    ignored = new_entry(respect_headers=False, **common)  # type: ignore[arg-type]
    assert (ignored.lifetime, ignored.stale_while_revalidate, ignored.stale_if_error) == (60.0, 1.0, 2.0)
    assert ignored.must_revalidate is False
    honoured = new_entry(respect_headers=True, **common)  # type: ignore[arg-type]
    assert (honoured.lifetime, honoured.stale_while_revalidate, honoured.stale_if_error) == (30.0, 7.0, 2.0)


def test_cache_control_directives_each_one_read() -> None:
    from interlock.core.freshness import CacheControl, parse_cache_control

    assert parse_cache_control('private, proxy-revalidate, s-maxage="40", max-age=x') == CacheControl(
        private=True, s_maxage=40.0
    )
    assert parse_cache_control("No-Store, NO-CACHE") == CacheControl(no_store=True, no_cache=True)


def test_expires_without_date_falls_back_to_the_rule_and_retention_counts_the_age() -> None:
    from interlock.core.freshness import CacheEntry, freshness_lifetime

    expires = {"Expires": "Thu, 01 Jan 2026 00:01:00 GMT"}
    assert freshness_lifetime(60.0, expires, True) == 60.0  # no Date to measure it from
    dated = {**expires, "Date": "Thu, 01 Jan 2026 00:02:00 GMT"}
    assert freshness_lifetime(60.0, dated, True) == 0.0  # expired before it was sent
    entry = CacheEntry(200, (), b"", 0.0, lifetime=30.0, initial_age=10.0, stale_if_error=5.0)
    assert entry.retention() == 25.0  # 30 - 10 + 5
    assert CacheEntry(200, (), b"", 0.0, lifetime=0.5).retention() == 1.0  # at least a second


def test_vary_on_a_field_the_request_did_not_send_matches_a_request_without_it() -> None:
    stored = fr.CacheEntry(200, (), b"", 0.0, lifetime=60.0, vary=(("x-tenant", ""),))
    assert fr.vary_matches(stored, {})
    assert not fr.vary_matches(stored, {"x-tenant": "a"})
