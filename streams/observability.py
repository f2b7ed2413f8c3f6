"""Runtime observability of a worker that needs the running Faust app: consumer lag.

:func:`install` adds a Faust timer that, every few seconds, reads the end offset (highwater) of every
partition assigned to this worker's consumer and sets ``signalwatch_consumer_lag{topic,partition}`` to
highwater minus the group's committed offset (or, before the first commit, the consumer's position).
Partitions that move to another worker in a rebalance drop out of the gauge, so a sum over all
workers' series is the lag of the consumer group. Table changelog topics are left out: a worker reads
them only to restore state, and nothing ever commits offsets on them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from streams.metrics import Metrics

log = logging.getLogger("signalwatch.observability")

LAG_INTERVAL = 5.0
"""Seconds between two lag updates."""

CHANGELOG_SUFFIX = "-changelog"


class _TP(Protocol):
    topic: str
    partition: int


def compute_lag(assigned: Iterable[_TP], highwaters: Mapping[Any, int | None],
                committed: Mapping[Any, int | None], positions: Mapping[Any, int | None]
                ) -> dict[tuple[str, int], int]:
    """Lag per (topic, partition) of the assigned, non-changelog partitions with a known highwater.

    ``committed`` wins over ``positions`` (Kafka's committed offset is the next offset to read, like a
    position); a partition with neither is skipped rather than guessed. Never negative.
    """
    lags: dict[tuple[str, int], int] = {}
    for tp in assigned:
        if tp.topic.endswith(CHANGELOG_SUFFIX):
            continue
        end = highwaters.get(tp)
        if end is None:
            continue
        done = committed.get(tp)
        if done is None:
            done = positions.get(tp)
        if done is None:
            continue
        lags[(tp.topic, int(tp.partition))] = max(0, int(end) - int(done))
    return lags


async def measure_lag(consumer: Any) -> dict[tuple[str, int], int]:
    """Ask a Faust consumer for its assignment, end offsets and progress; return the lag per partition."""
    assigned = [tp for tp in consumer.assignment() if not tp.topic.endswith(CHANGELOG_SUFFIX)]
    if not assigned:
        return {}
    highwaters = await consumer.highwaters(*assigned)
    committed = {tp: getattr(consumer, "_committed_offset", {}).get(tp) for tp in assigned}
    positions: dict[Any, int | None] = {}
    for tp in assigned:
        if committed[tp] is None:
            try:
                positions[tp] = await consumer.position(tp)
            except Exception:  # partition being revoked: skip it this round
                positions[tp] = None
    return compute_lag(assigned, highwaters, committed, positions)


def install(app: Any, metrics: Metrics, interval: float = LAG_INTERVAL) -> None:
    """Add the consumer-lag timer and the rebalance counter to ``app`` (call before the worker starts)."""

    async def count_rebalance(*_args, **_kw) -> None:
        metrics.rebalances.inc()

    app.on_partitions_assigned.connect(count_rebalance)

    @app.timer(interval=interval, name="signalwatch.consumer_lag")
    async def update_consumer_lag() -> None:
        try:
            lags = await measure_lag(app.consumer)
        except Exception as exc:  # not started yet, rebalancing, broker away: try again next tick
            log.debug("consumer lag not measured: %r", exc)
            return
        metrics.set_consumer_lag(lags)


STALL_AFTER = 30.0
"""Seconds a partition's committed offset may stay unchanged behind its end offset, with nothing in
flight, before the stall guard re-reads it (see :class:`StallGuard`)."""


def _in_flight(app: Any) -> int:
    """Events waiting in the agents' stream queues (0 when every fetched record has been handed on)."""
    total = 0
    for agent in app.agents.values():
        for actor in getattr(agent, "_actors", ()):
            queue = getattr(getattr(getattr(actor, "stream", None), "channel", None), "queue", None)
            total += queue.qsize() if queue is not None else 0
    return total


class StallGuard:
    """Re-read partitions that faust-streaming's recovery race (issue #596, open upstream) left stalled.

    After a restart with tables to recover, Faust can drop records of a partition that it fetched while
    the rebalance or recovery ran (its streams skip records of a stale generation or while flow control is
    off) without re-fetching them: the partition's committed offset stops, nothing more of it is processed
    and the records wait for the next restart. Reproduced by tests/slow/test_crash_restart.py (kill -9
    mid-run, 10k items): in 3 of 6 runs on 2026-11-25 one partition of news.accepted (7, 7, then 0) stayed
    500-800 records behind with an idle worker. When a partition has records past its committed offset
    (broker end offset) and that offset has not moved for ``stall_after`` seconds while no event is in
    flight and no recovery runs, the guard seeks the partition back to its committed offset. Re-read
    records are harmless: every stage is idempotent (seen ids, the story index, trend offsets,
    deterministic alert ids).
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


def install_stall_guard(app: Any, metrics: Metrics, interval: float = 10.0,
                        stall_after: float = STALL_AFTER) -> StallGuard:
    """Add the stall guard's timer to ``app`` (see :class:`StallGuard`)."""
    guard = StallGuard(stall_after)

    @app.timer(interval=interval, name="signalwatch.stall_guard")
    async def reread_stalled_partitions() -> None:
        consumer = app.consumer
        try:
            idle = (not app.in_recovery and app.flow_control.is_active() and _in_flight(app) == 0)
            committed = getattr(consumer, "_committed_offset", {})
            tps = [tp for tp in consumer.assignment() if committed.get(tp) is not None]
            ends = await consumer.highwaters(*tps) if idle and tps else {}
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
