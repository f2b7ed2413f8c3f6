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
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from streams.faust_compat import committed_offsets
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


async def measure_lag(consumer: Any, changelogs: frozenset[str] = frozenset()) -> dict[tuple[str, int], int]:
    """Ask a Faust consumer for its assignment, end offsets and progress; return the lag per partition.
    ``changelogs`` names the tables' changelog topics that lack the ``-changelog`` suffix (a table whose
    changelog is a public compacted topic): the worker writes them, so they have no consumer lag."""
    assigned = [tp for tp in consumer.assignment()
                if not tp.topic.endswith(CHANGELOG_SUFFIX) and tp.topic not in changelogs]
    if not assigned:
        return {}
    highwaters = await consumer.highwaters(*assigned)
    committed = {tp: committed_offsets(consumer).get(tp) for tp in assigned}
    positions: dict[Any, int | None] = {}
    for tp in assigned:
        if committed[tp] is None:
            try:
                positions[tp] = await consumer.position(tp)
            except Exception:  # partition being revoked: skip it this round
                positions[tp] = None
    return compute_lag(assigned, highwaters, committed, positions)


def install(app: Any, metrics: Metrics, reader: Any, interval: float = LAG_INTERVAL) -> None:
    """Add the consumer-lag timer and the rebalance counter to ``app`` (call before the worker starts);
    news.raw's lag is ``reader``'s (:class:`streams.intake.RawReader`, which counts its own rebalances)."""

    async def count_rebalance(*_args, **_kw) -> None:
        metrics.rebalances.inc()

    app.on_partitions_assigned.connect(count_rebalance)

    @app.timer(interval=interval, name="signalwatch.consumer_lag")
    async def update_consumer_lag() -> None:
        changelogs = frozenset(table.changelog_topic_name for table in app.tables.values())
        try:
            lags = await measure_lag(app.consumer, changelogs)
            lags.update(await reader.lag())
        except Exception as exc:  # not started yet, rebalancing, broker away: try again next tick
            log.debug("consumer lag not measured: %r", exc)
            return
        metrics.set_consumer_lag(lags)
