"""Every workaround for faust-streaming that signalwatch keeps, in one place, for the pinned version.

Each one names the upstream issue or the private attribute it relies on. tests/unit/test_faust_compat.py
fails loudly when an upgrade removes or changes what it relies on: re-check each item below then.

* :func:`create_changelogs_first` / :func:`changelogs_ready`: a changelog topic created while the agents
  run is listed with 0 partitions in the consumer's first metadata, and the table's first write raises
  ``PartitionsMismatch``; the fallback marks the source topic verified in the private
  ``Collection._verified_source_topics_for_partitions``.
* :func:`store`: the story shard writes its tables' changelogs itself, once per batch, as record batches
  (streams.outbox) to the changelog partition of its input, and updates the in-memory store
  (``Table.data``) alongside: Faust's ``send_changelog`` goes through its producer buffer, one record at a
  time, and holds the agents back while that buffer has more than 100 records.
* :class:`StallGuard`: faust-streaming #596 (open): after a restart with tables to recover, records
  fetched during the recovery can be dropped and a partition's committed offset stops; the guard re-reads
  such a partition, also one never committed (Faust's seek to the committed offsets after a recovery
  leaves those where the dropped records left them). Reads the private ``Consumer._committed_offset`` and
  ``Agent._actors``.
* Offsets Faust's fetch loop skipped (private ``Consumer._add_gap``, called by ``_drain_messages`` when an
  offset arrives past the next one expected) are not counted as acked: on our topics a skipped offset is a
  record Faust dropped (#596), and counting it committed past it. The stall guard then re-reads it.
* :func:`kafka_producer`: the story shard sends its records as aiokafka record batches (streams.outbox)
  through the aiokafka producer under Faust's (private ``Producer._ensure_producer``), so that Faust's
  commit, which flushes that producer, also waits for them.
* Concurrency 1 for every agent and ``stream_wait_empty``: faust-streaming #606 (open; fix in PR #707,
  unmerged): with ``concurrency > 1`` acks go out of order and an offset can be committed past a record
  still in flight. Checked by the same test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from streams.kafka_io import create_topics
from streams.metrics import Metrics

log = logging.getLogger("signalwatch.faust")

FAUST_VERSION = "0.15.3"
"""The faust-streaming version these workarounds are written and tested for (pyproject.toml pins it)."""


# ---------------------------------------------------------------- changelog topics
def create_changelogs_first(app: Any, settings: Any, tables: list) -> None:
    """Create the tables' changelog topics in the app's first-start hook, before the consumer fetches its
    first metadata (Faust would create them itself, but only once the agents run: PartitionsMismatch)."""
    names = [table.changelog_topic_name for table in tables]
    first_start = app.on_first_start

    async def on_first_start() -> None:
        try:
            created = await asyncio.to_thread(create_topics, settings, names)
            if created:
                log.info("created topics: %s", ", ".join(created))
        except Exception as exc:  # noqa: BLE001 - Faust creates what is missing itself
            log.warning("could not create topics before start (%s); Faust will create the changelogs", exc)
        await first_start()

    app.on_first_start = on_first_start


async def changelogs_ready(app: Any, *tables, sources: tuple[str, ...] = (), timeout: float = 3.0) -> None:
    """Wait until the consumer's metadata knows the tables' changelog topics; past ``timeout`` skip Faust's
    partition check, which is safe because every table is declared with the partition count of its source
    topic. Logged at info level: it happens to a worker that joins a running group (its consumer's metadata
    lists the changelogs only later); a worker that could not create them has already warned
    (:func:`create_changelogs_first`)."""
    deadline = time.monotonic() + timeout
    for table in tables:
        while not app.consumer.topic_partitions(table.changelog_topic_name):
            if time.monotonic() > deadline:
                log.info("changelog %s not in the metadata snapshot yet; skipping Faust's partition check",
                         table.changelog_topic_name)
                verified = getattr(table, "_verified_source_topics_for_partitions", None)
                if verified is not None:
                    verified.update(sources)
                break
            await asyncio.sleep(0.2)


def store(table: Any, key: bytes, value: bytes | None) -> None:
    """Set ``key`` in ``table``'s in-memory store (``value`` None: delete it), whose changelog the caller
    writes itself (``Table.data``)."""
    if value is None:
        table.data.pop(key, None)
    else:
        table.data[key] = value


def kafka_producer(app: Any) -> Any:
    """The started aiokafka producer under the app's Faust producer (private ``Producer._ensure_producer``)."""
    return app.producer._ensure_producer()


# ---------------------------------------------------------------- private consumer state
def committed_offsets(consumer: Any) -> dict:
    """The consumer's last committed offset per partition (private ``Consumer._committed_offset``)."""
    return getattr(consumer, "_committed_offset", {})


def in_flight(app: Any) -> int:
    """Events waiting in the agents' stream queues (private ``Agent._actors``)."""
    total = 0
    for agent in app.agents.values():
        for actor in getattr(agent, "_actors", ()):
            queue = getattr(getattr(getattr(actor, "stream", None), "channel", None), "queue", None)
            total += queue.qsize() if queue is not None else 0
    return total


# ---------------------------------------------------------------- #596: the stall guard
STALL_AFTER = 10.0
"""Seconds a partition's committed offset may stay unchanged behind its end offset, with nothing in
flight, before the stall guard re-reads it (see :class:`StallGuard`). Short, because a re-read is cheap:
records this process already handled are only acked again (streams.stages.ReadOnce)."""


class StallGuard:
    """Re-read partitions that faust-streaming's recovery race (issue #596, open upstream) left stalled.

    After a restart with tables to recover, Faust can drop records of a partition that it fetched while
    the rebalance or recovery ran, without re-fetching them: the partition's committed offset stops and
    the records wait for the next restart (reproduced by tests/slow/test_crash_restart.py before the
    batched topology: 3 of 6 kill -9 runs). When a partition has records past its committed offset and
    that offset (its log start if it was never committed) has not moved for ``stall_after`` seconds while
    no event is in flight and no recovery runs, the guard seeks the partition back to that offset.
    Re-read records are harmless: the story shard recognises replayed positions and deterministic ids
    make repeats recognisable.
    """

    def __init__(self, stall_after: float = STALL_AFTER) -> None:
        self.stall_after = stall_after
        self._since: dict[Any, tuple[int, float]] = {}  # tp -> (committed offset, first seen stalled at)

    def stalled(self, tp: Any, committed: int | None, end: int | None, idle: bool, now: float) -> bool:
        """Whether ``tp`` is to be re-read now, given its committed offset, the broker's end offset and
        whether the worker is idle (pure: the caller supplies the numbers)."""
        if committed is None or end is None or end <= committed or not idle:
            self._since.pop(tp, None)
            return False
        first = self._since.get(tp)
        if first is None or first[0] != committed:
            self._since[tp] = (committed, now)
            return False
        if now - first[1] < self.stall_after:
            return False
        del self._since[tp]
        return True


async def _keep_skipped_offsets_uncommitted(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Replaces Faust's ``Consumer._add_gap``, which counts offsets its fetch loop skipped as acked: on our
    topics (not compacted, no transactions) offsets are contiguous, so a skipped offset is a record Faust
    dropped (#596), and counting it acked committed past it: the record was lost (a restarted worker's
    record, seen by tests/slow/test_crash_restart.py). Left unacked, the commit stops before it and the
    stall guard re-reads it. (Records deleted by retention before they were read leave a real gap: the
    commit then stays before it; docs/architecture.md.)"""
    log.warning("partition %s[%d]: offsets %d-%d were skipped by Faust's fetch loop; not committing past them "
                "(the stall guard re-reads them)", tp.topic, tp.partition, offset_from, offset_to - 1)


def install_stall_guard(app: Any, metrics: Metrics, interval: float = 5.0,
                        stall_after: float = STALL_AFTER) -> StallGuard:
    """Add the stall guard's timer to ``app`` (see :class:`StallGuard`), and keep offsets Faust skipped from
    being committed (:func:`_keep_skipped_offsets_uncommitted`), so that the guard sees them."""
    from faust.transport.consumer import Consumer

    Consumer._add_gap = _keep_skipped_offsets_uncommitted  # type: ignore[method-assign]
    guard = StallGuard(stall_after)

    @app.timer(interval=interval, name="signalwatch.stall_guard")
    async def reread_stalled_partitions() -> None:
        consumer = app.consumer
        try:
            idle = not app.in_recovery and app.flow_control.is_active() and in_flight(app) == 0
            committed = dict(committed_offsets(consumer))
            tps = [tp for tp in consumer.assignment() if app.topics.acks_enabled_for(tp.topic)]  # no changelogs
            if idle and tps:
                # a partition never committed starts at its log start (consumer_auto_offset_reset="earliest");
                # Faust's seek after recovery skips it, so a record it dropped there is never read otherwise
                never = [tp for tp in tps if committed.get(tp) is None]
                committed.update(await consumer.earliest_offsets(*never) if never else {})
                ends = await consumer.highwaters(*tps)
            else:
                ends = {}
            now = time.monotonic()
            for tp in sorted(tps):
                if guard.stalled(tp, committed.get(tp), ends.get(tp), idle, now):
                    log.warning("partition %s[%d] stalled at committed offset %d (end offset %d, nothing in "
                                "flight): re-reading it (faust-streaming issue #596)", tp.topic, tp.partition,
                                committed[tp], ends[tp])
                    metrics.partition_rereads.inc()
                    await consumer.seek(tp, committed[tp])
        except Exception as exc:  # not started, rebalancing, broker away: look again next tick
            log.debug("stall guard skipped a tick: %r", exc)

    return guard
