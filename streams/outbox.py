"""The records a batch body sends, handed to Kafka as record batches (aiokafka's C batch builder).

Faust's ``Topic.send`` costs about 0.1 ms of its own machinery per record; the story shard sends most of
the pipeline's records (news.tagged and alerts), so that cost alone was half of the shard's CPU, the part
of the pipeline that does not scale with workers (docs/architecture.md, "Scale limits"). Here each record
is one append to a batch of its partition, and the body waits until the broker has every batch before it
returns, so the input is acked (and later committed) only after its outputs are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

_partition = DefaultPartitioner()


class Outbox:
    """Records to send, grouped by topic and partition (the key's partition, as Kafka's default
    partitioner and Faust choose it)."""

    def __init__(self, producer: Callable[[], Any]) -> None:
        self._producer = producer  # the started aiokafka producer (streams.faust_compat.kafka_producer)
        self._records: dict[str, list[tuple[bytes, bytes]]] = {}

    def add(self, topic: str, key: bytes, value: bytes) -> None:
        self._records.setdefault(topic, []).append((key, value))

    def __len__(self) -> int:
        return sum(map(len, self._records.values()))

    async def send(self) -> None:
        """Send everything added, in order per partition, and wait for the broker's acks (raises when a
        record is refused: the caller stops without committing)."""
        records, self._records = self._records, {}
        if not records:
            return
        producer = self._producer()
        pending = []
        for topic, pairs in records.items():
            partitions = sorted(await producer.partitions_for(topic))
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            for key, value in pairs:
                by_partition.setdefault(_partition(key, partitions, partitions), []).append((key, value))
            for partition, rows in by_partition.items():
                batch = producer.create_batch()
                for key, value in rows:
                    if batch.append(key=key, value=value, timestamp=None) is not None:
                        continue
                    if batch.record_count():
                        pending.append(await producer.send_batch(batch, topic, partition=partition))
                        batch = producer.create_batch()
                        if batch.append(key=key, value=value, timestamp=None) is not None:
                            continue
                    # larger than a whole batch: sent alone (up to the producer's max request size)
                    pending.append(await producer.send(topic, value, key=key, partition=partition))
                    batch = producer.create_batch()
                if batch.record_count():
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
