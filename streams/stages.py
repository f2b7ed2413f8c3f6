"""The two stages of the worker, as classes that :func:`streams.app.create_app` wires to their topics.

* :class:`Process` (stateless, on the batches :class:`streams.intake.RawReader` reads from the news.raw
  partitions this worker holds): hands each batch to
  :class:`streams.processing.ProcessPool` (parse, validate, id, tag, sketch, event key, attribute and
  candidate alerts for each message, in helper processes); bad messages go to news.deadletter one by
  one; the accepted items of a batch go to the story shard as one news.processed record (or a few, under
  the size cap).
* :class:`Decide` (the story shard, on batches of those records): dedup, updates, corroboration, cooldown and
  trend windows by :class:`streams.analytics.shard.StoryShard`; sends news.tagged (first copies and
  revisions) and alerts.*, then writes
  the keys the batch changed to the tables' changelogs, once per batch. The negotiation tracker
  (:class:`streams.talks.stream.ThreadBook`) follows the first copies it sent, in the same order.

A batch body never raises: the story shard's ``take_events`` acks the whole batch in a ``finally``, and
the reader commits a batch once :meth:`Process.finish` returns, so an exception would commit items that
were never handled. A bad item is dead-lettered on its own; a failed send (the broker
refuses a record) stops the worker at once, before anything is committed, and the restarted worker
reads the batch again (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson

from streams.analytics.shard import StoryShard, read_batch
from streams.faust_compat import changelogs_ready, committed_offsets, kafka_producer, store
from streams.metrics import Metrics
from streams.outbox import Outbox
from streams.processing import ProcessPool
from streams.records import dead_letter, now_iso
from streams.talks.stream import TalksUpdate, ThreadBook

log = logging.getLogger("signalwatch")

SHARD_KEY = b"stories"
"""The Kafka key of every news.processed record: one partition holds the story shard."""
DECIDE_RECORDS = 2
DECIDE_WAIT = 0.02
"""The story shard takes a few news.processed records at a time (each already a batch of up to 500
items): its outputs go out, and its input offset is committed, after every thousand items or so. Deciding
holds the worker's event loop: with 4 records (up to ~0.6 s) the process helper ran out of work while the
reader waited to hand it the next batch (docs/architecture.md, "Process helpers"). Taking 500 records (up
to 250k items) held every output of a backlog back for minutes and left the committed offset still for long
enough that the stall guard took it for faust-streaming #596."""
PROCESSED_PREFETCH = 8
"""news.processed records (up to ~900 KB each) a worker holds for the story shard before it takes them.
With Faust's default (``stream_buffer_maxsize``, 4096 events per stream) the shard's worker may pull up to
4096 of them (~3.6 GB) of a backlog into memory. Full, the buffer holds Faust's consumer back: the rest waits
on the broker (the process stage reads news.raw with a consumer of its own, streams.intake)."""
EXIT_SEND_FAILED = 70


def stop_worker(exc: BaseException, failure: str = "could not send to Kafka",
                fix: str = "Check the broker's logs and limits (message.max.bytes).") -> None:
    """A record could not be handed to Kafka or read from it, or a process helper died: stop now, so that
    nothing of this batch is committed."""
    if isinstance(exc, BrokenProcessPool):
        failure = "a process-stage helper died or could not start"
        fix = "Check the helper's traceback above, and the system log for the OOM killer."
    log.critical("%s (%r): stopping the worker without committing; it re-reads the batch when restarted. %s",
                 failure, exc, fix)
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
        self.outbox = Outbox(lambda: kafka_producer(app))

    def dead_letter(self, message: Any, reason: str, detail: str) -> None:
        """The one way to dead-letter a message: its reason, detail, origin and original bytes (sent with
        the batch's outputs)."""
        self.metrics.items_invalid.labels(reason).inc()
        self.outbox.add(self.topics["deadletter"].get_topic_name(), message.key, dead_letter(
            reason, detail, message.value, topic=message.topic, partition=message.partition,
            offset=message.offset, key=message.key))


class Process(_Stage):
    """The stateless stage (see the module); its per-item work runs in ``pool``, its batches come from
    :class:`streams.intake.RawReader`."""

    def __init__(self, topics: dict[str, Any], metrics: Metrics, pool: ProcessPool, app: Any) -> None:
        super().__init__(topics, metrics, app)
        self.pool = pool

    async def ready(self) -> None:
        await self.pool.ready()

    def start(self, messages: list) -> asyncio.Future:
        """Hand the batch to the helpers now: they work on it while the worker sends an earlier batch's
        outputs or runs the story shard (:meth:`finish` takes the result)."""
        self.metrics.items_received.inc(len(messages))
        return asyncio.ensure_future(self.pool.run([(m.value, m.partition, m.offset) for m in messages],
                                                   now_iso(), time.time()))

    async def finish(self, messages: list, work: asyncio.Future) -> None:
        """The batch's records and dead letters, sent and acked by the broker when this returns."""
        try:
            done = await work
            for rejected in done.rejected:
                message = messages[rejected.index]
                if rejected.trace:
                    log.error("processing failed on %s[%s]@%s:\n%s", message.topic, message.partition,
                              message.offset, rejected.trace)
                self.dead_letter(message, rejected.reason, rejected.detail)
            self.metrics.sources_unknown.inc(done.unknown_sources)
            processed = self.topics["processed"].get_topic_name()
            for value in done.records:
                self.outbox.add(processed, SHARD_KEY, value)
            self.metrics.stage_cpu_seconds.labels("process").inc(done.cpu_seconds + await self.outbox.send())
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
        self.read = ReadOnce()
        self._pruned = time.monotonic()

        async def forget(*_args, **_kw) -> None:
            self.read.clear()
            self.stale = True

        app.on_partitions_assigned.connect(forget)
        app.on_partitions_revoked.connect(forget)
        self._partition: int | None = None  # of the last input record: where the timer's changes are written
        self._busy = asyncio.Lock()  # one batch or one tick at a time: a tick never writes a batch's changes
        # before the batch has sent its outputs

    stale = True
    """Set on a rebalance: the story shard is rebuilt from its tables before its next batch."""

    def fresh(self, messages: list) -> list:
        """The batch without records this process already handled (see :class:`ReadOnce`)."""
        if time.monotonic() - self._pruned > 10.0:
            self._pruned = time.monotonic()
            self.read.prune(committed_offsets(self.app.consumer))
        return self.read.fresh(messages)

    async def run(self, stream) -> None:
        await changelogs_ready(self.app, *self.tables.values(), sources=(self.topics["processed"].get_topic_name(),))
        async for events in stream.take_events(DECIDE_RECORDS, within=DECIDE_WAIT):
            await self.handle(self.fresh([event.message for event in events]))

    async def handle(self, messages: list) -> None:
        async with self._busy:
            await self._handle(messages)

    async def _handle(self, messages: list) -> None:
        try:
            if self.stale:
                t = self.tables
                self.shard.restore(t["stories"].data.items(), t["cooldown"].data.items(), t["windows"].data.items(),
                                   time.time())
                self.talks.restore(t["threads"].data.items(), time.time())
                self.stale = False
            partition = None
            first_copies: list[dict] = []
            newest: float | None = None  # event time of the batch's newest first copy (the tracker's clock)
            for message in messages:
                if partition is not None and message.partition != partition:
                    self.metrics.stage_cpu_seconds.labels("decide").inc(await self.outbox.send())
                    await self.write_state(partition)  # a write goes to the changelog partition of its input
                partition = message.partition
                start = time.thread_time()
                try:
                    entries = read_batch(message.value)
                except (ValueError, KeyError, TypeError) as exc:
                    self.dead_letter(message, "internal_error", f"unreadable news.processed record: {exc!r}")
                    continue
                out = self.shard.decide(entries, message.offset, time.time())
                self.send(out)
                self.metrics.stage_cpu_seconds.labels("decide").inc(time.thread_time() - start)
                first_copies += [tagged for tagged, _ in out.tagged if tagged.talks]
                if out.tagged:
                    newest = max(newest or float("-inf"), *(tagged.event_time for tagged, _ in out.tagged))
            if newest is not None:  # the negotiation tracker, on the batch's first copies it reads (in event time)
                start = time.thread_time()
                self.send_talks(self.talks.observe(first_copies, time.time(), newest))
                self.metrics.stage_cpu_seconds.labels("talks").inc(time.thread_time() - start)
            # before the changelogs: a state write never gets ahead of its outputs
            self.metrics.stage_cpu_seconds.labels("decide").inc(await self.outbox.send())
            if partition is not None:
                await self.write_state(partition)
        except Exception as exc:  # noqa: BLE001 - see stop_worker
            stop_worker(exc)

    def send(self, out) -> None:
        """Queue one input record's outputs in the outbox (sent at the end of the batch) and count them."""
        m, now, topics = self.metrics, time.time(), self.topics
        tagged_topic = topics["tagged"].get_topic_name()
        for tagged, received in out.tagged:
            self.outbox.add(tagged_topic, tagged.item_id.encode(), tagged.raw)
            m.processing_seconds.observe(max(0.0, now - received))
        m.record_tagged(tagged for tagged, _ in out.tagged)
        for tagged, _ in out.updates:
            self.outbox.add(tagged_topic, tagged["id"].encode(), orjson.dumps(tagged))
            m.items_updated.inc()
        for alert, received in out.alerts:
            key = alert.get("key", "") if alert["type"] == "trend" else alert["alert_id"]
            self.outbox.add(topics[alert["type"]].get_topic_name(), key.encode(), orjson.dumps(alert))
            m.alerts.labels(alert["type"], alert["severity"]).inc()
            if alert.get("digest"):
                m.alert_digests.labels(alert["type"]).inc()
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

    def send_talks(self, update: TalksUpdate) -> None:
        """The tracker's transition alerts (keyed by thread: one thread's transitions stay in order) and metrics."""
        topic = self.topics["negotiation"].get_topic_name()
        for alert in update.alerts:
            self.outbox.add(topic, alert["thread_id"].encode(), orjson.dumps(alert))
            self.metrics.alerts.labels("negotiation", alert["severity"]).inc()
        for kind in update.kinds:
            self.metrics.talks_transitions.labels(kind).inc()
        for state, n in self.talks.by_state().items():
            self.metrics.talks_threads.labels(state).set(n)

    async def tick(self) -> None:
        """The stage's timer, for what is due while no batch comes: the cooldown's digests of held-back
        alerts and the tracker's deadlines and expiries. Only where the shard is held (after its first batch)."""
        async with self._busy:
            if self.stale or self._partition is None:
                return
            try:
                start = time.thread_time()
                self.send(self.shard.digest(time.time()))
                self.send_talks(self.talks.tick(time.time()))
                cpu = time.thread_time() - start
                self.metrics.stage_cpu_seconds.labels("decide").inc(cpu + await self.outbox.send())
                await self.write_state(self._partition)
            except Exception as exc:  # noqa: BLE001 - see stop_worker
                stop_worker(exc)

    async def write_state(self, partition: int) -> None:
        """Write the keys the shard and the tracker changed since the last write to the tables and to their
        changelogs' partition ``partition``, acked by the broker when this returns. Through the stage's
        outbox, not Faust's ``send_changelog``: Faust's producer buffer sends one record at a time, and
        while it holds more than 100 Faust delivers no input and its commit waits (docs/architecture.md)."""
        self._partition = partition
        start = time.thread_time()
        changes = self.shard.flush()
        for name, changed in (("threads", self.talks.flush()), ("stories", changes.stories),
                              ("cooldown", changes.cooldown), ("windows", changes.windows)):
            table = self.tables[name]
            topic = table.changelog_topic.get_topic_name()
            for key, value in changed.items():
                self.outbox.add(topic, key, value, partition)
                store(table, key, value)
        cpu = time.thread_time() - start
        self.metrics.stage_cpu_seconds.labels("decide").inc(cpu + await self.outbox.send())
