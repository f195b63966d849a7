"""The records the simulated API serves: seeded, deterministic, mutable through writes.

Two sorted indexes per kind answer every listing with a bisect: ids ascending, and
``(updated_at_ms, id)`` ascending (the order incremental syncs page through). Writes move a
record in the time index, as a real API's ``updated_at`` ordering would.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from typing import Any

from ._feed import ChangeFeed
from ._timefmt import format_rfc3339, parse_rfc3339_ms

__all__ = ["RESERVED_FIELDS", "DataStore", "Record"]

Record = dict[str, Any]
# Server-owned fields: a write body cannot set them.
RESERVED_FIELDS = frozenset({"id", "version", "updated_at"})

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Radia", "Ken", "Frances", "Leslie")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Perlman", "Thompson")
_COUNTRIES = ("FR", "DE", "US", "GB", "JP", "BR", "IN", "ES", "IT", "NL")
_TIERS = ("free", "pro", "enterprise")
_ADJ = ("Compact", "Sturdy", "Quiet", "Rapid", "Smart", "Classic", "Modular", "Portable")
_NOUN = ("Kettle", "Lamp", "Router", "Chair", "Monitor", "Backpack", "Drill", "Speaker")
_ORDER_STATUS = ("pending", "paid", "shipped", "delivered", "cancelled")


class DataStore:
    """The records the testbed serves, per kind, keyed by id.

    Values handed out are the live dicts: copy before mutating (``get`` copies; the app
    serialises them directly for speed).
    """

    def __init__(
        self,
        kinds: Iterable[str],
        records: int,
        *,
        seed: int,
        epoch: str,
        step_seconds: float,
        same_timestamp_every: int = 1,
        feed: ChangeFeed | None = None,
    ) -> None:
        self.kinds: tuple[str, ...] = tuple(kinds)
        self.feed = feed if feed is not None else ChangeFeed()
        """Every write, touch and deletion after the seeding, in order (what the streams replay)."""
        self._records: dict[str, dict[int, Record]] = {}
        self._ts: dict[str, dict[int, int]] = {}
        self._ids: dict[str, list[int]] = {}
        self._by_time: dict[str, list[tuple[int, int]]] = {}
        self._next_id: dict[str, int] = {}
        # Last version of deleted records: a re-created record continues from it, so an
        # ETag built from (kind, id, version) never names two different contents.
        self._tombstones: dict[str, dict[int, int]] = {kind: {} for kind in self.kinds}
        epoch_ms = parse_rfc3339_ms(epoch)
        step_ms = max(1, round(step_seconds * 1000))
        for kind in self.kinds:
            self._seed_kind(kind, records, seed, epoch_ms, step_ms, same_timestamp_every)

    def _seed_kind(self, kind: str, n: int, seed: int, epoch_ms: int, step_ms: int, every: int) -> None:
        # A string seed is hashed with SHA-512 by random.seed: stable across runs and platforms.
        rng = random.Random(f"{seed}:{kind}")
        # Timestamps follow a seeded permutation of ids, so "by updated_at" and "by id" differ
        # and a client that confuses the two orders is caught.
        order = list(range(1, n + 1))
        rng.shuffle(order)
        ts = {rid: epoch_ms + (rank // every) * step_ms for rank, rid in enumerate(order)}
        records: dict[int, Record] = {}
        for rid in range(1, n + 1):
            record = _generate(kind, rid, rng, n)
            record["version"] = 1
            record["updated_at"] = format_rfc3339(ts[rid])
            records[rid] = record
        self._records[kind] = records
        self._ts[kind] = ts
        self._ids[kind] = list(range(1, n + 1))
        self._by_time[kind] = sorted((t, rid) for rid, t in ts.items())
        self._next_id[kind] = n + 1

    # -- reads ---------------------------------------------------------------------------

    def has_kind(self, kind: str) -> bool:
        """Whether ``kind`` is one of the served kinds."""
        return kind in self._records

    def raw(self, kind: str, rid: int) -> Record | None:
        """The live record (do not mutate), or None."""
        return self._records[kind].get(rid)

    def get(self, kind: str, rid: int) -> Record | None:
        """A copy of a record, or None when absent."""
        record = self._records[kind].get(rid)
        return None if record is None else _copy(record)

    def all(self, kind: str) -> list[Record]:
        """Copies of every record of a kind, by id."""
        records = self._records[kind]
        return [_copy(records[rid]) for rid in self._ids[kind]]

    def count(self, kind: str) -> int:
        """How many records of ``kind`` exist now."""
        return len(self._records[kind])

    def updated_at_ms(self, kind: str, rid: int) -> int:
        """Record ``rid``'s ``updated_at`` in epoch milliseconds."""
        return self._ts[kind][rid]

    def ids_index(self, kind: str) -> list[int]:
        """Sorted ids (live list, do not mutate)."""
        return self._ids[kind]

    def time_index(self, kind: str) -> list[tuple[int, int]]:
        """Sorted ``(updated_at_ms, id)`` pairs (live list, do not mutate)."""
        return self._by_time[kind]

    def __len__(self) -> int:
        return sum(len(r) for r in self._records.values())

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(v)}" for k, v in self._records.items())
        return f"DataStore({counts})"

    # -- writes --------------------------------------------------------------------------

    def upsert(
        self, kind: str, rid: int, patch: Mapping[str, Any], now_ms: int | None = None
    ) -> tuple[Record, bool]:
        """Merge ``patch`` into a record, creating it when absent; the live record, and if it is new.

        The version goes up by one and ``updated_at`` becomes ``now_ms`` (default: now).
        """
        records = self._records[kind]
        record = records.get(rid)
        created = record is None
        if record is None:
            record = {"id": rid, "version": self._tombstones[kind].pop(rid, 0)}
            records[rid] = record
            insort(self._ids[kind], rid)
            self._next_id[kind] = max(self._next_id[kind], rid + 1)
        for key, value in patch.items():
            if key not in RESERVED_FIELDS:
                record[key] = value
        record["version"] += 1
        self._set_time(kind, rid, _now_ms() if now_ms is None else now_ms)
        self.feed.append(kind, "created" if created else "updated", _copy(record), time.time())
        return record, created

    def create(self, kind: str, patch: Mapping[str, Any], now_ms: int | None = None) -> Record:
        """A new record with the next free id, ``patch`` merged in; the live record."""
        rid = self._next_id[kind]
        record, _ = self.upsert(kind, rid, patch, now_ms)
        return record

    def delete(self, kind: str, rid: int) -> bool:
        """Remove record ``rid``; False when it did not exist. A later re-creation continues its version."""
        records = self._records[kind]
        if rid not in records:
            return False
        self._tombstones[kind][rid] = records.pop(rid)["version"]
        ids = self._ids[kind]
        del ids[bisect_left(ids, rid)]
        old = self._ts[kind].pop(rid)
        by_time = self._by_time[kind]
        del by_time[bisect_left(by_time, (old, rid))]
        self.feed.append(kind, "deleted", {"id": rid}, time.time())
        return True

    def touch(self, kind: str, ids: Iterable[int], updated_at: str | float | None = None) -> list[Record]:
        """Change existing records as the upstream would; copies of the touched records.

        The version goes up by one and ``updated_at`` is set (an RFC 3339 string, epoch seconds, or
        now). Unknown ids are skipped.
        """
        if updated_at is None:
            when = _now_ms()
        elif isinstance(updated_at, str):
            when = parse_rfc3339_ms(updated_at)
        else:
            when = round(updated_at * 1000)
        touched: list[Record] = []
        records = self._records[kind]
        for rid in ids:
            record = records.get(rid)
            if record is None:
                continue
            record["version"] += 1
            self._set_time(kind, rid, when)
            touched.append(_copy(record))
            self.feed.append(kind, "updated", touched[-1], time.time())
        return touched

    def _set_time(self, kind: str, rid: int, when: int) -> None:
        by_time = self._by_time[kind]
        old = self._ts[kind].get(rid)
        if old is not None:
            del by_time[bisect_left(by_time, (old, rid))]
        self._ts[kind][rid] = when
        insort(by_time, (when, rid))
        self._records[kind][rid]["updated_at"] = format_rfc3339(when)

    # -- positions for pagination ----------------------------------------------------------

    def start_by_id(self, kind: str, after_id: int | None) -> int:
        """Index in the id order of the first record after ``after_id`` (None: from the start)."""
        ids = self._ids[kind]
        return 0 if after_id is None else bisect_right(ids, after_id)

    def start_by_time(self, kind: str, since_ms: int | None, after: tuple[int, int] | None) -> int:
        """Index in the ``(updated_at_ms, id)`` order of the first record at or after ``since_ms`` and strictly after ``after``."""
        by_time = self._by_time[kind]
        start = 0 if since_ms is None else bisect_left(by_time, (since_ms, -1))
        if after is not None:
            start = max(start, bisect_right(by_time, after))
        return start


def _now_ms() -> int:
    return round(time.time() * 1000)


def _copy(record: Record) -> Record:
    out = dict(record)
    if "items" in out and isinstance(out["items"], list):
        out["items"] = [dict(i) if isinstance(i, dict) else i for i in out["items"]]
    return out


def _generate(kind: str, rid: int, rng: random.Random, n: int) -> Record:
    if kind == "customers":
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        return {
            "id": rid,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{rid}@example.com",
            "country": rng.choice(_COUNTRIES),
            "tier": rng.choice(_TIERS),
            "balance_cents": rng.randrange(0, 1_000_000),
        }
    if kind == "products":
        return {
            "id": rid,
            "name": f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}",
            "sku": f"SKU-{rid:06d}",
            "price_cents": rng.randrange(100, 100_000),
            "currency": "EUR",
            "in_stock": rng.random() < 0.8,
        }
    if kind == "orders":
        # Orders reference customers and products by id (1..records), like a real schema.
        items = [
            {"product_id": rng.randint(1, max(n, 1)), "quantity": rng.randint(1, 5)}
            for _ in range(rng.randint(1, 4))
        ]
        return {
            "id": rid,
            "name": f"Order #{rid:06d}",
            "customer_id": rng.randint(1, max(n, 1)),
            "items": items,
            "status": rng.choice(_ORDER_STATUS),
            "total_cents": sum(i["quantity"] * rng.randrange(100, 10_000) for i in items),
        }
    return {"id": rid, "name": f"{kind} {rid}", "value": rng.randrange(0, 1_000_000)}
