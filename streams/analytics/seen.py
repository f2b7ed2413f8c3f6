"""What the tag stage remembers of each item it tagged, and when to forget it (pure, no Kafka).

An entry holds the item's receive time, its input partition, its event time and the alerts that a
corroboration could still raise (below critical). Entries expire after the dedup horizon, partition by
partition: a table entry may only be deleted while an event of its own partition is processed, or the
tombstone would land in another changelog partition and the entry would come back after a restart.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson

_ZLIB = b"z"
"""Prefix of a compressed entry: the alerts make an entry ~1.4 KB of JSON, ~0.6 KB compressed (~30 µs)."""


@dataclass
class SeenEntry:
    """One tagged item: when it was received, on which input partition, its event time and alerts."""

    received: float
    partition: int
    at: float
    alerts: list[dict] = field(default_factory=list)

    def dumps(self) -> bytes:
        """The table value: JSON, zlib-compressed (prefix ``z``) when it holds alerts."""
        record: dict = {"r": self.received, "p": self.partition, "at": self.at}
        if not self.alerts:
            return orjson.dumps(record)
        record["a"] = self.alerts
        return _ZLIB + zlib.compress(orjson.dumps(record), 1)

    @classmethod
    def loads(cls, raw: bytes, now: float) -> SeenEntry:
        """Parse a table value; a value of the first version (the receive time as ISO text) has no
        partition (-1: it never expires) and no alerts."""
        if raw[:1] in (b"{", _ZLIB):
            d = orjson.loads(zlib.decompress(raw[1:]) if raw[:1] == _ZLIB else raw)
            return cls(d["r"], d["p"], d["at"], d.get("a") or [])
        try:
            received = datetime.fromisoformat(raw.decode().replace("Z", "+00:00")).timestamp()
        except ValueError:
            received = now
        return cls(received, -1, received)


class Expiry:
    """Keys in arrival order per partition, so the expired ones of a partition come out cheaply."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[tuple[float, bytes]]] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def add(self, partition: int, received: float, key: bytes) -> None:
        """Remember ``key`` of ``partition``, received at ``received`` (epoch seconds)."""
        self._queues.setdefault(partition, deque()).append((received, key))

    def rebuild(self, entries: Iterable[tuple[bytes, SeenEntry]]) -> None:
        """Start over from the table's entries (after a rebalance)."""
        self._queues.clear()
        for key, entry in sorted(entries, key=lambda e: e[1].received):
            if entry.partition >= 0:
                self.add(entry.partition, entry.received, key)

    def expired(self, partition: int, now: float, horizon: float) -> list[bytes]:
        """Take the keys of ``partition`` received more than ``horizon`` seconds before ``now``."""
        queue = self._queues.get(partition)
        out: list[bytes] = []
        while queue and now - queue[0][0] > horizon:
            out.append(queue.popleft()[1])
        return out

    def overflow(self, partition: int, max_keys: int) -> list[bytes]:
        """Take the oldest keys of ``partition`` beyond its ``max_keys`` newest."""
        queue = self._queues.get(partition)
        out: list[bytes] = []
        while queue and len(queue) > max_keys:
            out.append(queue.popleft()[1])
        return out
