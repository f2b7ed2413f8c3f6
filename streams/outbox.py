"""The records a batch body sends, handed to Kafka as record batches (aiokafka's C batch builder).

Faust's ``Topic.send`` costs about 0.1 ms of its own machinery per record; the story shard sends most of
the pipeline's records (news.tagged and alerts), so that cost alone was half of the shard's CPU, the part
of the pipeline that does not scale with workers (docs/architecture.md, "Scale limits"). Here each record
is one append to a batch of its partition, and the body waits until the broker has every batch before it
returns, so the input is acked (and later committed) only after its outputs are written.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable
from typing import Any

_M, _MASK = 0x5BD1E995, 0xFFFFFFFF


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 hash of a record key (``Utils.murmur2`` of the Java client, unsigned): the partition of
    a keyed record is ``(murmur2(key) & 0x7fffffff) % partitions``, as Kafka's default partitioner, aiokafka's
    and so Faust's choose it. Words unpacked in one C call: ~2x aiokafka's Python loop over bytes (0.9 against
    1.3 µs for a 7-byte key, 1.7 against 3.4 for 21 bytes), once per record the story shard sends."""
    n = len(key)
    h = 0x9747B28C ^ n
    for k in struct.unpack_from(f"<{n >> 2}I", key):
        k = (k * _M) & _MASK
        h = ((h * _M) ^ ((k ^ (k >> 24)) * _M)) & _MASK
    tail = n & 3
    if tail:
        end = n - tail
        if tail == 3:
            h ^= key[end + 2] << 16
        if tail > 1:
            h ^= key[end + 1] << 8
        h = ((h ^ key[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


class Outbox:
    """Records to send, grouped by topic and partition: the one given, else the key's (as Kafka's default
    partitioner and Faust choose it)."""

    def __init__(self, producer: Callable[[], Any]) -> None:
        self._producer = producer  # the started aiokafka producer (streams.faust_compat.kafka_producer)
        self._records: dict[str, list[tuple[bytes | None, bytes | None, int | None]]] = {}
        self._partitions: dict[str, list[int]] = {}

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """Queue a record (``value`` None: a tombstone, for a compacted topic)."""
        self._records.setdefault(topic, []).append((key, value, partition))

    def __len__(self) -> int:
        return sum(map(len, self._records.values()))

    async def send(self) -> float:
        """Send everything added, in order per partition, and wait for the broker's acks (raises when a
        record is refused: the caller stops without committing). Returns the thread CPU seconds spent
        building the batches (the stage's own work; the waits are not)."""
        records, self._records = self._records, {}
        if not records:
            return 0.0
        producer = self._producer()
        for topic, rows in records.items():  # a topic's partitions are read once, when a key needs them
            if topic not in self._partitions and any(partition is None for _, _, partition in rows):
                self._partitions[topic] = sorted(await producer.partitions_for(topic))
        start = time.thread_time()
        batches, oversized = [], []
        for topic, queued in records.items():
            partitions = self._partitions.get(topic, [])
            by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
            for key, value, partition in queued:
                if partition is None:  # a record without a key (a dead letter of one) goes anywhere
                    partition = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)] if key is not None else \
                        random.choice(partitions)
                by_partition.setdefault(partition, []).append((key, value))
            for partition, rows in by_partition.items():
                batch = producer.create_batch()
                for key, value in rows:
                    if batch.append(key=key, value=value, timestamp=None) is not None:
                        continue
                    if batch.record_count():
                        batches.append((batch, topic, partition))
                        batch = producer.create_batch()
                        if batch.append(key=key, value=value, timestamp=None) is not None:
                            continue
                    oversized.append((topic, key, value, partition))  # larger than a whole batch: alone
                if batch.record_count():
                    batches.append((batch, topic, partition))
        cpu = time.thread_time() - start
        pending = [await producer.send_batch(batch, topic, partition=partition) for batch, topic, partition in batches]
        pending += [await producer.send(topic, value, key=key, partition=partition)
                    for topic, key, value, partition in oversized]
        await asyncio.gather(*pending)
        return cpu
