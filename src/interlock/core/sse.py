"""Server-sent events: an incremental parser of ``text/event-stream``, bytes in, events out. Pure.

Follows the WHATWG HTML Living Standard, section 9.2 "Server-sent events", 9.2.5 "Parsing an
event stream" and 9.2.6 "Interpreting an event stream":

- the stream is UTF-8 (invalid sequences decode to U+FFFD); one leading BOM is dropped;
- lines end with CRLF, LF or CR, in any mix, and a CRLF split across two reads is one end;
- a line starting with ``:`` is a comment (servers send them as keep-alives);
- ``field: value`` (one leading space of the value dropped), or ``field`` alone (empty value);
- ``event`` sets the type, ``data`` appends a line to the data, ``id`` sets the last event id
  (unless it holds a NUL), ``retry`` sets the reconnection time when it is all ASCII digits;
  other fields are ignored;
- a blank line dispatches the event, unless its data is empty (then only the buffers reset);
  the last event id persists across events and across reconnections;
- an event cut off by the end of the stream (no blank line yet) is discarded.

Bounds: a line, or an event's data, longer than ``max_event_bytes`` raises ``EventTooLarge``
(a stream that never sends a line end must not grow the buffer without end).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["MAX_EVENT_BYTES", "Comment", "EventTooLarge", "SSEEvent", "SSEParser"]

MAX_EVENT_BYTES = 1_048_576
"""The longest line, or an event's data, accepted by default (1 MiB, the Inbox's body bound)."""


class EventTooLarge(ValueError):
    """A line or an event's data exceeds the parser's ``max_event_bytes``."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event."""

    type: str
    """The ``event`` field, ``"message"`` when absent."""
    data: str
    """The ``data`` lines joined by LF (the final LF removed)."""
    id: str
    """The last event id at dispatch (the spec's ``lastEventId``): this event's own ``id``, or
    the latest one before it; ``""`` when the stream never sent one."""
    since_id: int = 0
    """Events dispatched since the ``id`` field last set the id: 0 for the first event after it
    (usually the event that carried it), 1 for the next one without an ``id`` of its own..."""

    @property
    def key(self) -> str:
        """A stable identity for this event, the same when a server replays it after the same
        ``Last-Event-ID``: the id, with ``+n`` for the n-th event after it that had none."""
        return self.id if self.since_id == 0 else f"{self.id}+{self.since_id}"


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment line (``: text``): a keep-alive, usually."""

    text: str


class SSEParser:
    """Feed it the bytes of one stream as they arrive; it returns what they completed.

    ::

        parser = SSEParser(last_event_id="41")   # the id sent as Last-Event-ID, if any
        for item in parser.feed(chunk):           # SSEEvent or Comment
            ...
        parser.retry                              # the latest retry: hint, in ms (or None)

    A parser is one connection: make a new one per connection, passing the last event id the
    consumer committed (the spec keeps it across reconnections).
    """

    __slots__ = (
        "_bom_checked",
        "_data",
        "_data_len",
        "_decoder",
        "_event_type",
        "_line",
        "_line_len",
        "_skip_lf",
        "last_event_id",
        "max_event_bytes",
        "retry",
        "since_id",
    )

    def __init__(self, *, last_event_id: str = "", since_id: int = 0, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be >= 1, got {max_event_bytes!r}")
        self.max_event_bytes = max_event_bytes
        self.last_event_id = last_event_id
        """The last event id buffer (persists across events)."""
        self.since_id = since_id
        """Events dispatched since ``last_event_id`` was set (see ``SSEEvent.since_id``)."""
        self.retry: int | None = None
        """The latest valid ``retry`` field, in milliseconds."""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._bom_checked = False
        self._line: list[str] = []
        self._line_len = 0
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF is its pair
        self._data: list[str] = []
        self._data_len = 0
        self._event_type = ""

    def feed(self, chunk: bytes) -> list[SSEEvent | Comment]:
        """Parse ``chunk``; the events dispatched and comments completed by it, in order."""
        text = self._decoder.decode(chunk)
        if not self._bom_checked:
            if not text:
                return []
            self._bom_checked = True
            if text[0] == "\ufeff":
                text = text[1:]
        out: list[SSEEvent | Comment] = []
        start, n = 0, len(text)
        if self._skip_lf and n:
            self._skip_lf = False
            if text[0] == "\n":
                start = 1
        while start < n:
            cr = text.find("\r", start)
            lf = text.find("\n", start)
            if cr < 0 and lf < 0:
                self._append(text[start:])
                break
            end = lf if cr < 0 else cr if lf < 0 else min(cr, lf)
            self._append(text[start:end])
            line = "".join(self._line)
            self._line, self._line_len = [], 0
            self._process(line, out)
            start = end + 1
            if text[end] == "\r":
                if start < n:
                    if text[start] == "\n":
                        start += 1
                else:
                    self._skip_lf = True
        return out

    def _append(self, piece: str) -> None:
        if not piece:
            return
        self._line_len += len(piece)
        if self._line_len > self.max_event_bytes:
            raise EventTooLarge(f"an event-stream line exceeds {self.max_event_bytes} characters")
        self._line.append(piece)

    def _process(self, line: str, out: list[SSEEvent | Comment]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[0] == ":":
            out.append(Comment(line[1:].removeprefix(" ")))
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_len += len(value) + 1
            if self._data_len > self.max_event_bytes:
                raise EventTooLarge(f"an event's data exceeds {self.max_event_bytes} characters")
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
                self.since_id = -1  # the next dispatch is the first event of this id
        elif name == "retry" and value and value.isascii() and value.isdigit():
            self.retry = int(value)
        # any other field is ignored (spec: "the field is ignored")

    def _dispatch(self, out: list[SSEEvent | Comment]) -> None:
        data, event_type = self._data, self._event_type
        self._data, self._data_len, self._event_type = [], 0, ""
        if not data:
            return  # spec: an empty data buffer resets the buffers and dispatches nothing
        self.since_id += 1
        out.append(SSEEvent(event_type or "message", "\n".join(data), self.last_event_id, max(0, self.since_id)))

    def __repr__(self) -> str:
        return f"SSEParser(last_event_id={self.last_event_id!r}, retry={self.retry!r})"
