"""Where a sync job reads: ``SyncSource`` (an upstream listing with a ``since`` filter), the
timestamps on the wire, and ``SyncRecord``, one changed record on its way to a destination."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from .._jsonpath import JsonPath
from .._validate import check_count
from ..core.checkpoint import Position
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..client import Client
    from ..stores.checkpoint import Checkpoint

__all__ = ["SyncRecord", "SyncSource", "TimeFormat", "checkpoint_json", "format_time", "parse_time"]

TimeFormat = Literal["rfc3339", "epoch", "epoch_ms"]
TIME_FORMATS: tuple[str, ...] = ("rfc3339", "epoch", "epoch_ms")
_STYLES = ("auto", "cursor", "offset", "page", "link")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: Any, fmt: str = "rfc3339") -> int:
    """Microseconds since the epoch from an RFC 3339 string or a number of seconds (``epoch``)
    or milliseconds (``epoch_ms``). A timestamp without an offset is taken as UTC."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return round(value * (1000 if fmt == "epoch_ms" else 1_000_000))
    text = str(value).strip()
    if fmt != "rfc3339" or not ("T" in text or "t" in text or "-" in text[1:]):
        try:
            return round(float(text) * (1000 if fmt == "epoch_ms" else 1_000_000))
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_time(micros: int, fmt: str = "rfc3339") -> str:
    """The ``since`` value sent upstream. RFC 3339 in UTC with ``Z``, with only as many
    fraction digits as needed, so an API that keeps milliseconds compares it exactly."""
    if fmt == "epoch":
        seconds, rest = divmod(micros, 1_000_000)
        return str(seconds) if rest == 0 else f"{micros / 1_000_000:.6f}"
    if fmt == "epoch_ms":
        millis, rest = divmod(micros, 1000)
        return str(millis) if rest == 0 else f"{micros / 1000:.3f}"
    seconds, rest = divmod(micros, 1_000_000)
    when = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if rest == 0:
        return when + "Z"
    if rest % 1000 == 0:
        return f"{when}.{rest // 1000:03d}Z"
    return f"{when}.{rest:06d}Z"


def checkpoint_json(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    """A checkpoint as ``Sync.status()`` and ``interlock sync run --json`` both show it:
    ``updated_at`` and ``saved_at`` in RFC 3339 (UTC), and the ``record_id``."""
    if checkpoint is None:
        return None
    saved = round(checkpoint.saved_at * 1_000_000)
    return {
        "updated_at": format_time(checkpoint.updated_at),
        "record_id": checkpoint.record_id,
        "saved_at": format_time(saved) if saved else None,
    }


def _path(owner: str, name: str, spec: str) -> JsonPath:
    path = JsonPath.parse(spec, owner=owner, field=name)
    if path.is_root and name in ("id", "updated_at"):
        raise ConfigError(owner, name, f"needs a JSON path like 'id' or '$.data.id', got {spec!r}")
    return path


@dataclass(frozen=True, eq=False)
class SyncSource:
    """An upstream listing to poll: ``GET path?{since_param}={since}`` through ``client`` (so
    retries, breaker, rate limit and timeouts apply) and its paginator.

    - ``since_param`` / ``time_format``: how the filter is sent (``rfc3339``, ``epoch`` seconds
      or ``epoch_ms``); the API must treat it as inclusive (``updated_at >= since``) and list
      in ``(updated_at, id)`` order, as the testbed and most "updated since" endpoints do.
    - ``id`` / ``updated_at`` / ``version``: JSON paths in each item (``"id"``,
      ``"$.attributes.updated_at"``); ``version`` (optional, an integer) orders two changes
      that share a timestamp; by default the version is ``updated_at``.
    - ``style``, ``page_size``, ``items`` and ``paginate``: passed to ``client.paginate``.
    - ``start``: the ``since`` of the very first poll (default: the epoch, i.e. everything).
    """

    client: Client
    path: str
    since_param: str = "updated_since"
    time_format: TimeFormat = "rfc3339"
    style: str = "auto"
    id: str = "id"
    updated_at: str = "updated_at"
    version: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    page_size: int | None = 100
    items: str = "data"
    start: str | int | float | None = None
    paginate: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = "SyncSource"
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError(owner, "path", f"must be a path like '/customers', got {self.path!r}")
        if not self.since_param:
            raise ConfigError(owner, "since_param", "must name the query parameter, e.g. 'updated_since'")
        if self.time_format not in TIME_FORMATS:
            raise ConfigError(
                owner, "time_format", f"must be one of {', '.join(TIME_FORMATS)}, got {self.time_format!r}"
            )
        if self.style not in _STYLES:
            raise ConfigError(owner, "style", f"must be one of {', '.join(_STYLES)}, got {self.style!r}")
        check_count(owner, "page_size", self.page_size, optional=True)
        object.__setattr__(self, "_id_path", _path(owner, "id", self.id))
        object.__setattr__(self, "_ts_path", _path(owner, "updated_at", self.updated_at))
        object.__setattr__(
            self, "_version_path", _path(owner, "version", self.version) if self.version else None
        )
        if self.start is not None:
            try:
                parse_time(self.start, self.time_format)
            except ValueError as exc:
                raise ConfigError(owner, "start", str(exc)) from None

    @property
    def start_micros(self) -> int:
        """``start`` in microseconds since the epoch (0 when not given)."""
        return 0 if self.start is None else parse_time(self.start, self.time_format)

    def id_field(self) -> str | None:
        """The top-level id key the paginator may dedupe on (None for a nested id)."""
        steps = self._id_path.steps  # type: ignore[attr-defined]
        return steps[0] if len(steps) == 1 and isinstance(steps[0], str) else None

    def record(self, job: str, item: Any) -> SyncRecord:
        """The ``SyncRecord`` for one listed item; ``ValueError`` when it has no usable id or
        timestamp (the job dead-letters such an item)."""
        rid = self._id_path.find(item)  # type: ignore[attr-defined]
        if rid is None or isinstance(rid, dict | list | bool) or rid == "":
            raise ValueError(f"item has no id at {self.id!r}")
        raw_ts = self._ts_path.find(item)  # type: ignore[attr-defined]
        try:
            updated_at = parse_time(raw_ts, self.time_format)
        except ValueError as exc:
            raise ValueError(f"item {rid!r}: {self.updated_at!r} is {exc}") from None
        version = updated_at
        version_path: JsonPath | None = self._version_path  # type: ignore[attr-defined]
        if version_path is not None:
            raw_version = version_path.find(item)
            if not isinstance(raw_version, int) or isinstance(raw_version, bool):
                raise ValueError(f"item {rid!r}: {self.version!r} is {raw_version!r}, not an integer")
            version = raw_version
        return SyncRecord(job, rid, version, Position.of(updated_at, rid), item)


@dataclass(frozen=True, slots=True, eq=False)
class SyncRecord:
    """One changed record: what a destination receives (``ToHandler``'s function, ``ToTable``'s
    ``row``, ``WriteBack``'s ``body``), read from a poll, a webhook or a replay alike."""

    job: str
    """The name of the sync job that read it."""
    id: str | int
    """The record's id as the upstream wrote it: an ``int`` stays an ``int`` (``record.id % 250``
    works), a string stays a string. ``key`` is its text form, which the ledger and the DLQ use."""
    version: int
    """What orders two changes of the record: its ``updated_at`` in microseconds, or the integer
    at ``SyncSource(version=...)``. A version the ledger already applied is skipped."""
    position: Position
    """Where it sits in the listing, ``(updated_at, id)``: what the checkpoint is made of."""
    data: Any
    """The item as the source listed it (or as the webhook carried it)."""

    @property
    def key(self) -> str:
        """The id as text (``"42"`` for ``42``): how the ledger and the DLQ name the record."""
        return self.id if isinstance(self.id, str) else str(self.id)

    @property
    def updated_at(self) -> int:
        """The record's ``updated_at``, in microseconds since the epoch."""
        return self.position.updated_at

    @property
    def idempotency_key(self) -> str:
        """Deterministic per record version: a write replayed after a crash (or a webhook and a
        poll bringing the same change) carries the same key, and the upstream applies it once."""
        return f"sync:{self.job}:{self.key}:{self.version}"

    def to_json(self) -> bytes:
        """The record as a dead letter's body (``from_json`` reads it back for a replay)."""
        doc = {
            "id": self.id,
            "version": self.version,
            "updated_at": self.position.updated_at,
            "data": self.data,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, job: str, body: bytes) -> SyncRecord:
        """The record of job ``job`` that ``to_json`` wrote (its id keeps its JSON type)."""
        doc = json.loads(body)
        return cls(
            job,
            doc["id"],
            int(doc["version"]),
            Position.of(int(doc["updated_at"]), doc["id"]),
            doc["data"],
        )

    def __repr__(self) -> str:
        return f"<SyncRecord {self.job}/{self.key} version={self.version}>"
