"""The two stages of the worker, as classes that :func:`streams.app.create_app` wires to their topics.

* :class:`Process` (stateless, one per news.raw partition, on batches): parse, validate, id, tag,
  sketch, event key (the story shard confirms a near-duplicate with it), attribute (outlet, wire origin,
  camp: streams.sources) and candidate alerts for each message; bad messages go to news.deadletter one by
  one; the accepted items of a batch go to the story shard as one news.processed record (or a few, under
  the size cap).
* :class:`Decide` (the story shard, on batches of those records): dedup, updates, corroboration, cooldown and
  trend windows by :class:`streams.analytics.shard.StoryShard`; sends news.tagged (first copies and
  revisions) and alerts.*, then writes
  the keys the batch changed to the tables' changelogs, once per batch. The negotiation tracker
  (:class:`streams.talks.stream.ThreadBook`) follows the first copies it sent, in the same order.

A batch body never raises: ``take_events`` acks the whole batch in a ``finally``, so an exception would
commit items that were never handled. A bad item is dead-lettered on its own; a failed send (the broker
refuses a record) stops the worker at once, before anything is committed, and the restarted worker
reads the batch again (docs/architecture.md).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson

from streams.alerting import build_alerts
from streams.analytics.dedup import Features
from streams.analytics.event_identity import event_key
from streams.analytics.shard import MAX_ENTRIES, Entry, StoryShard, trend_record
from streams.faust_compat import changelogs_ready, committed_offsets, write_changelog
from streams.metrics import Metrics
from streams.records import InvalidItem, dead_letter, now_iso, parse_item, tagged_item
from streams.settings import Settings
from streams.sources import SourceRegistry, default_registry, is_unknown
from streams.talks.stream import TalksUpdate, ThreadBook

log = logging.getLogger("signalwatch")

SHARD_KEY = b"stories"
"""The Kafka key of every news.processed record: one partition holds the story shard."""
BATCH_SIZE = 500
BATCH_WAIT = 0.1
"""Seconds a stage waits for a batch to fill (added to an alert's latency under light load)."""
MAX_RECORD_BYTES = 900_000
"""A news.processed record holds entries up to this size (under the default 1 MB broker limit); a
larger item travels alone."""
EXIT_SEND_FAILED = 70


def process_item(raw: bytes | None, settings: Settings, tagger: Any, received_at: str, received: float,
                 registry: SourceRegistry | None = None) -> Entry:
    """One message of news.raw to an accepted item's entry (raises :class:`InvalidItem`); its copy record
    says who reported it (outlet, origin, camp), looked up in ``registry`` (the bundled one by default)."""
    item = parse_item(raw, settings.max_item_bytes)
    tags = tagger.tag(item["title"], item["text"])
    event = event_key(item["title"], item["text"], tags) if settings.dedup_stories else None
    features = Features.of(item, settings.dedup_stories, event)
    tagged = tagged_item(item, tags, received_at)
    copy = (registry or default_registry()).attribute(item).copy(item["id"], item.get("url", ""))
    return Entry(tagged, build_alerts(tagged, "low"), features, trend_record(tagged), received, copy)


def batch_records(parts: list[bytes], max_bytes: int = MAX_RECORD_BYTES) -> list[bytes]:
    """Serialised entries joined into news.processed records (``{"v": 1, "entries": [...]}``), each at most
    ``max_bytes`` (an entry larger than that alone) and :data:`MAX_ENTRIES` entries."""
    records, chunk, size = [], [], 0
    for part in parts:
        if chunk and (size + len(part) > max_bytes or len(chunk) >= MAX_ENTRIES):
            records.append(b'{"v":1,"entries":[' + b",".join(chunk) + b"]}")
            chunk, size = [], 0
        chunk.append(part)
        size += len(part) + 1
    if chunk:
        records.append(b'{"v":1,"entries":[' + b",".join(chunk) + b"]}")
    return records


def stop_worker(exc: BaseException) -> None:
    """A record could not be handed to Kafka: stop now, so that nothing of this batch is committed."""
    log.critical("could not send to Kafka (%r): stopping the worker without committing; it re-reads the "
                 "batch when restarted. Check the broker's logs and limits (message.max.bytes).", exc)
    logging.shutdown()
    os._exit(EXIT_SEND_FAILED)


class ReadOnce:
    """The input offsets this process has handled and not yet committed, per partition: a record the stall
    guard re-reads (faust-streaming #596: Faust dropped an earlier record of the partition, so its commits
    stopped; streams.faust_compat.StallGuard) is only acked again, not handled twice, so that the re-read
    costs the dropped records, not everything after them. Outputs of a handled record are already with
    the producer, which Faust flushes before it commits. Forgotten on a rebalance (a replay then re-sends:
    the story shard recognises its positions) and below the committed offset."""

    def __init__(self) -> None:
        self._done: dict[tuple[str, int], set[int]] = {}

    def fresh(self, messages: list) -> list:
        """The messages not handled yet (each marked handled: a batch body never fails half-way)."""
        out = []
        for m in messages:
            done = self._done.setdefault((m.topic, m.partition), set())
            if m.offset not in done:
                done.add(m.offset)
                out.append(m)
        return out

    def prune(self, committed: dict) -> None:
        """Forget offsets below each partition's committed offset (``{tp: offset}``, tp with topic and
        partition)."""
        for tp, offset in committed.items():
            done = self._done.get((tp.topic, tp.partition))
            if done and offset is not None and min(done) < offset:
                done.difference_update([o for o in done if o < offset])

    def clear(self) -> None:
        self._done.clear()


class _Stage:
    def __init__(self, topics: dict[str, Any], metrics: Metrics, app: Any) -> None:
        self.topics = topics
        self.metrics = metrics
        self.app = app
        self.read = ReadOnce()
        self._pruned = time.monotonic()

        async def forget(*_args, **_kw) -> None:
            self.read.clear()
            self.stale = True

        app.on_partitions_assigned.connect(forget)
        app.on_partitions_revoked.connect(forget)

    stale = True
    """Set on a rebalance: the story shard is rebuilt from its tables before its next batch."""

    def fresh(self, messages: list) -> list:
        """The batch without records this process already handled (see :class:`ReadOnce`)."""
        if time.monotonic() - self._pruned > 10.0:
            self._pruned = time.monotonic()
            self.read.prune(committed_offsets(self.app.consumer))
        return self.read.fresh(messages)

    async def dead_letter(self, message: Any, reason: str, detail: str) -> None:
        """The one way to dead-letter a message: its reason, detail, origin and original bytes."""
        self.metrics.items_invalid.labels(reason).inc()
        await self.topics["deadletter"].send(key=message.key, value=dead_letter(
            reason, detail, message.value, topic=message.topic, partition=message.partition,
            offset=message.offset, key=message.key))


class Process(_Stage):
    """The stateless stage (see the module)."""

    def __init__(self, topics: dict[str, Any], metrics: Metrics, settings: Settings, tagger: Any, app: Any) -> None:
        super().__init__(topics, metrics, app)
        self.settings = settings
        self.tagger = tagger
        self.registry = default_registry()

    async def run(self, stream) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT):
            await self.handle(self.fresh([event.message for event in events]))

    async def handle(self, messages: list) -> None:
        try:
            received_at, received = now_iso(), time.time()
            self.metrics.items_received.inc(len(messages))
            parts = []
            cpu = 0.0
            for message in messages:
                try:
                    start = time.thread_time()
                    entry = process_item(message.value, self.settings, self.tagger, received_at, received,
                                         self.registry)
                    entry.raw = (message.partition, message.offset)
                    parts.append(orjson.dumps(entry.wire()))
                    if is_unknown(entry.copy["outlet"]):
                        self.metrics.sources_unknown.inc()
                    cpu += time.thread_time() - start
                except InvalidItem as exc:
                    await self.dead_letter(message, exc.reason, exc.detail)
                except Exception as exc:  # a bug must not stop the worker or lose the message
                    log.exception("processing failed on %s[%s]@%s", message.topic, message.partition,
                                  message.offset)
                    await self.dead_letter(message, "internal_error", repr(exc)[:500])
            self.metrics.stage_cpu_seconds.labels("process").inc(cpu)
            for value in batch_records(parts):
                await self.topics["processed"].send(key=SHARD_KEY, value=value)
        except Exception as exc:  # noqa: BLE001 - see stop_worker
            stop_worker(exc)


class Decide(_Stage):
    """The story shard's stage (see the module)."""

    def __init__(self, topics: dict[str, Any], metrics: Metrics, shard: StoryShard, tables: dict[str, Any],
                 app: Any, talks: ThreadBook) -> None:
        super().__init__(topics, metrics, app)
        self.shard = shard
        self.tables = tables
        self.talks = talks
        self._partition: int | None = None  # of the last input record: where the tracker's timer writes

    async def run(self, stream) -> None:
        await changelogs_ready(self.app, *self.tables.values(), sources=(self.topics["processed"].get_topic_name(),))
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT):
            await self.handle(self.fresh([event.message for event in events]))

    async def handle(self, messages: list) -> None:
        try:
            if self.stale:
                t = self.tables
                self.shard.restore(t["stories"].data.items(), t["cooldown"].data.items(), t["windows"].data.items())
                self.talks.restore(t["threads"].data.items(), time.time())
                self.stale = False
            partition = None
            first_copies: list[dict] = []
            for message in messages:
                if partition is not None and message.partition != partition:
                    self.flush(partition)  # a write goes to the changelog partition of its input
                partition = message.partition
                start = time.thread_time()
                try:
                    entries = [Entry.from_wire(e) for e in orjson.loads(message.value)["entries"]]
                except (ValueError, KeyError, TypeError) as exc:
                    await self.dead_letter(message, "internal_error", f"unreadable news.processed record: {exc!r}")
                    continue
                out = self.shard.decide(entries, message.offset, time.time())
                self.metrics.stage_cpu_seconds.labels("decide").inc(time.thread_time() - start)
                await self.send(out)
                first_copies += [tagged for tagged, _ in out.tagged]
            if first_copies:  # the negotiation tracker, on the batch's first copies (in event time)
                start = time.thread_time()
                talks = self.talks.observe(first_copies, time.time())
                self.metrics.stage_cpu_seconds.labels("talks").inc(time.thread_time() - start)
                await self.send_talks(talks)
            if partition is not None:
                start = time.thread_time()
                self.flush(partition)
                self.metrics.stage_cpu_seconds.labels("decide").inc(time.thread_time() - start)
        except Exception as exc:  # noqa: BLE001 - see stop_worker
            stop_worker(exc)

    async def send(self, out) -> None:
        m, now = self.metrics, time.time()
        for tagged, received in out.tagged:
            await self.topics["tagged"].send(key=tagged["id"].encode(), value=orjson.dumps(tagged))
            m.record_tagged(tagged)
            m.processing_seconds.observe(max(0.0, now - received))
        for tagged, _ in out.updates:
            await self.topics["tagged"].send(key=tagged["id"].encode(), value=orjson.dumps(tagged))
            m.items_updated.inc()
        for alert, received in out.alerts:
            key = alert.get("key", "") if alert["type"] == "trend" else alert["alert_id"]
            await self.topics[alert["type"]].send(key=key.encode(), value=orjson.dumps(alert))
            m.alerts.labels(alert["type"], alert["severity"]).inc()
            if "corroboration" in alert:
                m.record_corroboration(alert["corroboration"])
            if received is not None:
                m.alert_latency_seconds.observe(max(0.0, now - received))
        for reason in out.duplicates:
            m.items_duplicate.inc()
            m.duplicate_reasons.labels(reason).inc()
        if out.redelivered:
            m.duplicate_reasons.labels("redelivered").inc(out.redelivered)
        for alert_type, reason in out.suppressed:
            m.alerts_suppressed.labels(alert_type, reason).inc()
        if out.corroborations:
            m.corroborations.inc(out.corroborations)
        if out.evicted:
            m.state_evictions.labels("stories").inc(out.evicted)
        for (size, key), n in out.window_counts.items():
            m.trend_window_count.labels(str(size), key).set(n)
        for kind, value in out.index.items():
            (m.escalation_index if kind == "escalation" else m.negotiation_index).set(value)

    async def send_talks(self, update: TalksUpdate) -> None:
        """The tracker's transition alerts (keyed by thread: one thread's transitions stay in order) and metrics."""
        for alert in update.alerts:
            await self.topics["negotiation"].send(key=alert["thread_id"].encode(), value=orjson.dumps(alert))
            self.metrics.alerts.labels("negotiation", alert["severity"]).inc()
        for kind in update.kinds:
            self.metrics.talks_transitions.labels(kind).inc()
        for state, n in self.talks.by_state().items():
            self.metrics.talks_threads.labels(state).set(n)

    async def tick_talks(self) -> None:
        """The tracker's timer (deadlines and expiries while no batch comes): only where the shard is held."""
        if self.stale or self._partition is None:
            return
        try:
            await self.send_talks(self.talks.tick(time.time()))
            for key, value in self.talks.flush().items():
                write_changelog(self.tables["threads"], self._partition, key, value)
        except Exception as exc:  # noqa: BLE001 - see stop_worker
            stop_worker(exc)

    def flush(self, partition: int) -> None:
        self._partition = partition
        changes = self.shard.flush()
        for key, value in self.talks.flush().items():
            write_changelog(self.tables["threads"], partition, key, value)
        for name, changed in (("stories", changes.stories), ("cooldown", changes.cooldown),
                              ("windows", changes.windows)):
            for key, value in changed.items():
                write_changelog(self.tables[name], partition, key, value)
