"""The tracker as the story shard's stage runs it: serialised thread records, alerts and a clock (no Kafka).

:class:`ThreadBook` holds the tracker state of the whole cluster. The decide stage (streams.stages) hands
it the first copies each batch sent to news.tagged (sorted by event time here) and ticks it once per batch
and from a timer; it writes :meth:`ThreadBook.flush`'s records to the ``negotiation_threads`` table, whose
changelog is the compacted ``negotiations.threads`` topic, so a restart or a rebalance restores the state
from that topic (:meth:`ThreadBook.restore`).

The clock is event time: the newest ``published_at`` seen (never ahead of the wall clock, so a
future-dated item cannot expire every thread), plus the wall time since it last moved, so that deadlines
still pass while the feed is quiet, and a replay of old news keeps its own dates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter

import orjson

from streams.analytics.trend import EventClock, event_time
from streams.records import epoch, now_iso, stored_json

from .rules import TalksRules, load_rules
from .tracker import (
    TalksText,
    new_state,
    observe,
    state_from_threads,
    thread_title,
    threads_by_state,
    tick,
    transition_alert,
)


def _event_time(item) -> float:
    """An item's event time: the story shard's tagged items carry it (``Tagged.event_time``, read by the
    process stage), so that their ``published_at`` is not parsed again, once to sort and twice to observe."""
    at = getattr(item, "event_time", None)
    return event_time(item) if at is None else at


@dataclass
class TalksUpdate:
    """What one batch or tick changed: alerts to send and numbers for the metrics."""

    alerts: list[dict] = field(default_factory=list)
    """One ``alerts.negotiation`` record per transition, in order."""
    kinds: list[str] = field(default_factory=list)
    """The kind of each transition (the counter's label)."""


class ThreadBook:
    """The tracker state, its pending table writes and its clock (see the module)."""

    def __init__(self, rules: TalksRules | None = None) -> None:
        self.rules = rules or load_rules()
        self.state = new_state(self.rules)
        self.changed: dict[str, None] = {}  # thread ids changed since the last flush, in order
        self.time = EventClock()

    def restore(self, records: Iterable[tuple[bytes, bytes]], wall: float) -> None:
        """Rebuild the state from the stored thread records (any order)."""
        threads = [orjson.loads(value) for _, value in records]
        self.state = state_from_threads(threads, self.rules)
        self.changed = {}
        self.time = EventClock(max((epoch(t["updated_at"]) for t in threads), default=float("-inf")), wall)

    def clock(self, wall: float) -> float:
        """The tracker's now: the event-time watermark plus the wall time since it moved."""
        return self.time.now(wall)

    def observe(self, items: Iterable[dict], wall: float, newest: float | None = None) -> TalksUpdate:
        """Feed tagged items in event-time order (a batch gathers items from several input partitions, each in
        arrival order), then tick at the advanced clock. ``newest``: the newest event time of the batch's
        other items (those the tracker has no use for move its clock too)."""
        out = TalksUpdate()
        for at, item in sorted([(_event_time(item), item) for item in items], key=itemgetter(0)):
            self.time.see(at, wall)
            text = getattr(item, "talks_text", None)  # read by the process stage (``Tagged.talks_text``)
            self._take(observe(self.state, item, at, self.rules, TalksText.from_wire(text) if text else None), out)
        if newest is not None:
            self.time.see(newest, wall)
        return self.tick(wall, out)

    def tick(self, wall: float, out: TalksUpdate | None = None) -> TalksUpdate:
        """Expiries, missed deadlines and quiet threads up to :meth:`clock`."""
        out = out or TalksUpdate()
        if self.time.watermark > float("-inf"):
            self._take(tick(self.state, self.clock(wall), rules=self.rules), out)
        return out

    def _take(self, update: dict, out: TalksUpdate) -> None:
        threads = self.state["threads"]
        created = now_iso()
        for tr in update["transitions"]:  # the alert now: the thread record moves on
            out.alerts.append(transition_alert(tr, threads[tr["thread_id"]], created, self.rules))
            out.kinds.append(tr["kind"])
        for record in update["threads"]:
            self.changed[record["thread_id"]] = None
        for tid in update["dropped"]:
            self.changed[tid] = None

    def flush(self) -> dict[bytes, bytes | None]:
        """Thread records changed since the last flush, serialised once (None: a dropped thread's tombstone)."""
        threads = self.state["threads"]
        changes = {tid.encode(): stored_json(threads[tid]) if tid in threads else None for tid in self.changed}
        self.changed = {}
        return changes

    def by_state(self) -> dict[str, int]:
        return threads_by_state(self.state)

    def threads(self) -> list[dict]:
        """Every thread record, most recently updated first."""
        return sorted(self.state["threads"].values(), key=lambda t: t["updated_at"], reverse=True)



def thread_row(record: dict, rules: TalksRules | None = None, history: int = 5) -> dict:
    """What the CLI and the live page show of a thread record: title, state, dates, last transitions."""
    return {"thread_id": record["thread_id"], "title": thread_title(record, rules), "track": record["track"],
            "state": record["state"], "opened_at": record["opened_at"], "updated_at": record["updated_at"],
            "expires_at": record["expires_at"], "violations": len(record["violations"]),
            "history": [{k: tr[k] for k in ("kind", "from", "to", "at", "summary")}
                        for tr in record["history"][-history:]]}
