"""The event-stream parser against the WHATWG rules, and against any split of its input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.core.sse import Comment, EventTooLarge, SSEEvent, SSEParser


def parse(data: bytes, **kw: object) -> list[SSEEvent | Comment]:
    return SSEParser(**kw).feed(data)  # type: ignore[arg-type]


def events(data: bytes) -> list[SSEEvent]:
    return [e for e in parse(data) if isinstance(e, SSEEvent)]


def test_spec_examples() -> None:
    # WHATWG HTML 9.2.6: the examples of the specification.
    got = events(b"data: YHOO\ndata: +2\ndata: 10\n\n")
    assert got == [SSEEvent("message", "YHOO\n+2\n10", "", 1)]
    got = events(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n")
    assert [(e.data, e.id) for e in got] == [("first event", "1"), ("second event", ""), (" third event", "")]
    got = events(b"data\n\ndata\ndata\n\ndata:\n")
    assert [e.data for e in got] == ["", "\n"]  # the last one is cut off by the end of the stream
    got = events(b"data:test\n\ndata: test\n\n")
    assert [e.data for e in got] == ["test", "test"]


def test_fields_event_type_retry_and_comments() -> None:
    parser = SSEParser()
    out = parser.feed(b":keep-alive\nevent: customer.updated\nid: 7\nretry: 2500\ndata: {\"a\":1}\n\n")
    assert out == [Comment("keep-alive"), SSEEvent("customer.updated", '{"a":1}', "7", 0)]
    assert parser.retry == 2500
    parser.feed(b"retry: 12x\n\nretry: -1\n\n")
    assert parser.retry == 2500  # not all digits: ignored
    out = parser.feed(b"data: next\n\n")
    assert out == [SSEEvent("message", "next", "7", 1)]  # the id persists; type resets
    assert out[0].key == "7+1"


def test_bom_line_endings_and_split_crlf() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb\xbfdata: a\r") == []
    assert parser.feed(b"\n\r\n") == [SSEEvent("message", "a", "", 1)]  # one CRLF split, then CRLF
    assert parser.feed(b"data: b\r\rdata: c\n\n") == [SSEEvent("message", "b", "", 2), SSEEvent("message", "c", "", 3)]
    # A second BOM is data, not dropped.
    assert events("data: \ufeffx\n\n".encode()) == [SSEEvent("message", "\ufeffx", "", 1)]


def test_id_with_nul_is_ignored_and_unknown_fields() -> None:
    got = events(b"id: 1\ndata: a\n\nid: 2\x003\nfoo: bar\ndata: b\n\n")
    assert [(e.id, e.key) for e in got] == [("1", "1"), ("1", "1+1")]


def test_resume_keeps_the_last_event_id() -> None:
    got = SSEParser(last_event_id="41").feed(b"data: x\n\n")
    assert got == [SSEEvent("message", "x", "41", 1)]


def test_invalid_utf8_is_replaced() -> None:
    assert events(b"data: \xff\n\n")[0].data == "\ufffd"


def test_bounds() -> None:
    with pytest.raises(EventTooLarge):
        SSEParser(max_event_bytes=16).feed(b"data: " + b"x" * 40)
    parser = SSEParser(max_event_bytes=16)
    for _ in range(3):
        parser.feed(b"data: xxxx\n")  # 15 characters of data so far
    with pytest.raises(EventTooLarge):
        parser.feed(b"data: xxxx\n")
    with pytest.raises(ValueError):
        SSEParser(max_event_bytes=0)


# -- property: any split of the bytes parses the same; a written stream parses back ---------------

_text = st.text(alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=12)
_ending = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, str]]]:
    out: list[str] = []
    expected: list[tuple[str, str, str]] = []
    last_id = ""
    # One line end per stream: a CR followed by an LF ending would be one CRLF, by the spec.
    end = draw(_ending)
    if draw(st.booleans()):
        out.append("\ufeff")
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            out.append(":" + draw(_text) + end)
        kind = draw(st.sampled_from(["", "update", "customer.updated"]))
        if kind:
            out.append(f"event: {kind}{end}")
        if draw(st.booleans()):
            last_id = draw(st.text(alphabet="abc0123456789-", min_size=1, max_size=6))
            out.append(f"id: {last_id}{end}")
        lines = draw(st.lists(_text, min_size=1, max_size=3))
        for line in lines:
            # "data:" then an optional space: a value starting with a space needs the space.
            out.append(f"data: {line}{end}")
        out.append(end)
        expected.append((kind or "message", "\n".join(lines), last_id))
    return "".join(out).encode(), expected


@settings(max_examples=300, deadline=None)
@given(_streams(), st.lists(st.integers(0, 200), max_size=8))
def test_any_split_parses_the_same(stream: tuple[bytes, list[tuple[str, str, str]]], cuts: list[int]) -> None:
    data, expected = stream
    whole = events(data)
    assert [(e.type, e.data, e.id) for e in whole] == expected
    parser = SSEParser()
    pieces: list[SSEEvent | Comment] = []
    points = sorted({min(c, len(data)) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        pieces.extend(parser.feed(data[start:point]))
        start = point
    assert [e for e in pieces if isinstance(e, SSEEvent)] == whole


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    for item in SSEParser(max_event_bytes=64).feed(data) if len(data) < 64 else []:
        assert isinstance(item, SSEEvent | Comment)
