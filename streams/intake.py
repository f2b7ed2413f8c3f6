"""news.raw, read by the process stage itself: a plain aiokafka consumer in a consumer group of its own.

A Faust agent is handed one event at a time (its fetch loop races two tasks per record, then builds an
event, queues it, iterates it and acks it): ~0.2 ms of CPU per record, against ~0.01 ms for aiokafka's
``getmany`` on the same backlog (docs/architecture.md, "Scale limits"). The process stage keeps no state and
works on whole batches, so it reads them itself. A batch's outputs are acked by the broker before its
offsets are committed, and a rebalance waits for the batches in hand, so a partition changes hands at a
committed offset. Faust keeps what needs it: the story shard's input, its tables and their recovery.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from mode import Service

from streams.metrics import Metrics
from streams.observability import compute_lag
from streams.settings import Settings

log = logging.getLogger("signalwatch")

BATCH_SIZE = 500
"""Records of news.raw the process stage takes at most at a time (one ``getmany``). Under light load a
batch is what has arrived: ``getmany`` returns as soon as the fetcher holds records."""
IN_FLIGHT = 2
"""Batches handed to the process stage's helpers and not yet finished. With one, a helper sat idle while the
worker's event loop sent the last batch's outputs or ran the story shard (~0.3 s for its 2 records):
with two, the next batch is already in the helper's hands (docs/architecture.md, "Scale limits")."""
GROUP_SUFFIX = "-process"
"""news.raw's consumer group is the app id with this suffix (the app id itself is Faust's group)."""


class Batches(Protocol):
    """What the reader feeds: :class:`streams.stages.Process`."""

    async def ready(self) -> None: ...

    def start(self, messages: list) -> asyncio.Future:
        """Start working on the batch (in the helpers)."""

    async def finish(self, messages: list, work: asyncio.Future) -> None:
        """Send the batch's outputs and return once the broker acked them (or stop the worker)."""


def group_id(settings: Settings) -> str:
    return settings.app_id + GROUP_SUFFIX


class RawReader(Service):
    """Reads news.raw in batches for ``stage`` and commits each batch once ``stage`` has handled it."""

    def __init__(self, settings: Settings, stage: Batches, metrics: Metrics, topic: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.stage = stage
        self.metrics = metrics
        self.topic = topic  # the Faust topic: declared (created with its partitions) before it is read
        self.consumer: AIOKafkaConsumer | None = None
        self._batch = asyncio.Lock()  # batches in hand: a rebalance or a stop waits for their commits
        self._in_flight: deque[tuple[dict[TopicPartition, list], list, asyncio.Future]] = deque()
        self._committed: dict[TopicPartition, int] = {}

    async def on_start(self) -> None:
        self.add_future(self.read())

    async def read(self) -> None:
        """Read and hand over batches until the worker stops (or stop it: a dead reader would leave a worker
        that only looks alive)."""
        from streams.stages import stop_worker

        try:
            await self.stage.ready()
        except Exception as exc:  # noqa: BLE001 - a helper that cannot start: the worker would only look alive
            stop_worker(exc)
        await self.topic.maybe_declare()
        name = self.topic.get_topic_name()
        self.consumer = AIOKafkaConsumer(
            group_id=group_id(self.settings), enable_auto_commit=False, auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=8 * 1024 * 1024,
            **self.settings.aiokafka_client_options())
        self.consumer.subscribe([name], listener=_Handover(self))
        try:
            await self.inherit_offsets(name)
            await self.consumer.start()
            while not self.should_stop:
                # while batches are in flight, only what has arrived: nothing new means finish them now
                batch = await self.consumer.getmany(timeout_ms=0 if self._in_flight else 1000,
                                                    max_records=BATCH_SIZE)
                async with self._batch:
                    if batch:
                        self._start(batch)
                    while self._in_flight and (len(self._in_flight) >= IN_FLIGHT or not batch):
                        await self._finish_oldest()
        except ConsumerStoppedError:
            return  # the worker is stopping (on_stop)
        except Exception as exc:  # noqa: BLE001 - a reader that died leaves a worker that only looks alive
            stop_worker(exc, "could not read news.raw", "Check that the broker answers and the worker's Kafka "
                        "settings (SIGNALWATCH_BROKER, SIGNALWATCH_SECURITY_PROTOCOL, SASL and TLS).")

    def _start(self, batch: dict[TopicPartition, list]) -> None:
        assert self.consumer is not None
        mine = self.consumer.assignment()
        batch = {tp: records for tp, records in batch.items() if tp in mine}  # a revoked one is re-read there
        if not batch or self.should_stop:
            return
        messages = [record for records in batch.values() for record in records]
        self._in_flight.append((batch, messages, self.stage.start(messages)))

    async def _finish_oldest(self) -> None:
        """Finish the oldest batch in flight and commit it (batches finish and commit in the order read)."""
        assert self.consumer is not None
        batch, messages, work = self._in_flight.popleft()
        await self.stage.finish(messages, work)
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # the group moved on (a member left or joined): the next owner reads the batch again, and the story
            # shard recognises each item it has decided (docs/architecture.md, "Crash and rebalance")
            log.info("news.raw batch not committed (%s): its partitions' next owner re-reads it", exc)
            return
        self._committed.update(offsets)

    async def _finish_all(self) -> None:
        """Finish and commit every batch in flight (before a stop or before partitions move; under ``_batch``)."""
        while self._in_flight:
            await self._finish_oldest()

    async def on_stop(self) -> None:
        async with self._batch:
            await self._finish_all()  # the batches in hand are finished and committed first
            if self.consumer is not None:
                await self.consumer.stop()

    async def inherit_offsets(self, topic: str) -> None:
        """Before this group first reads news.raw, give it the offsets of Faust's group (the app id), which
        read news.raw before this reader did: reading the topic again from its start would decide news older
        than the dedup horizon as new. Committed before joining, so no fetch can start from elsewhere."""
        options = self.settings.aiokafka_client_options()
        admin = AIOKafkaAdminClient(**options)
        await admin.start()
        try:
            if any(tp.topic == topic for tp in await admin.list_consumer_group_offsets(group_id(self.settings))):
                return
            earlier = {tp: meta.offset for tp, meta in
                       (await admin.list_consumer_group_offsets(self.settings.app_id)).items()
                       if tp.topic == topic and meta.offset >= 0}
        finally:
            await admin.close()
        if not earlier:
            return
        consumer = AIOKafkaConsumer(group_id=group_id(self.settings), enable_auto_commit=False, **options)
        await consumer.start()
        try:
            consumer.assign(list(earlier))
            await consumer.commit(earlier)
            log.info("news.raw: consumer group %s starts where group %s left it (%s)", group_id(self.settings),
                     self.settings.app_id, ", ".join(f"[{tp.partition}] {o}" for tp, o in sorted(earlier.items())))
        except KafkaError as exc:  # another worker of the group joined first, and did this
            log.info("news.raw: offsets not inherited from group %s (%r)", self.settings.app_id, exc)
        finally:
            await consumer.stop()

    async def lag(self) -> dict[tuple[str, int], int]:
        """Messages behind the end of each assigned news.raw partition (the end as of the last fetch)."""
        if self.consumer is None:
            return {}
        assigned = list(self.consumer.assignment())
        highwaters = {tp: self.consumer.highwater(tp) for tp in assigned}
        positions = {tp: await self.consumer.position(tp) for tp in assigned if tp not in self._committed}
        return compute_lag(assigned, highwaters, self._committed, positions)


class _Handover(ConsumerRebalanceListener):
    def __init__(self, reader: RawReader) -> None:
        self.reader = reader

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.reader._batch:
            await self.reader._finish_all()  # the batches in hand are committed before their partitions move
            for tp in revoked:
                self.reader._committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.reader.metrics.rebalances.inc()
