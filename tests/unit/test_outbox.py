"""The outbox (streams.outbox) and the story shard's state writes through it (streams.stages.Decide), with a
fake aiokafka producer that records what it is handed."""

from __future__ import annotations

import asyncio
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner import murmur2

from streams.app import create_app
from streams.outbox import Outbox
from streams.outbox import murmur2 as our_murmur2
from streams.settings import Settings
from streams.tagging import load_tagger
from tests.unit.shard_inputs import entry


class FakeBatch:
    """aiokafka's BatchBuilder as the outbox uses it: appends until ``capacity`` records."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: list[tuple[bytes, bytes | None]] = []

    def append(self, *, key: bytes, value: bytes | None, timestamp: None) -> object | None:
        if len(self.rows) >= self.capacity or (value is not None and len(value) > 1000):
            return None
        self.rows.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.rows)


class FakeProducer:
    def __init__(self, partitions: int = 4, capacity: int = 3) -> None:
        self.partitions, self.capacity = partitions, capacity
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes | None]]]] = []  # topic, partition, records
        self.asked: list[str] = []

    async def partitions_for(self, topic: str) -> set[int]:
        self.asked.append(topic)
        return set(range(self.partitions))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future:
        self.sent.append((topic, partition, batch.rows))
        return self._acked()

    async def send(self, topic: str, value: bytes | None, *, key: bytes, partition: int) -> asyncio.Future:
        self.sent.append((topic, partition, [(key, value)]))
        return self._acked()

    @staticmethod
    def _acked() -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def records(self, topic: str) -> dict[int, list[tuple[bytes, bytes | None]]]:
        out: dict[int, list] = {}
        for sent_topic, partition, rows in self.sent:
            if sent_topic == topic:
                out.setdefault(partition, []).extend(rows)
        return out


def test_records_go_to_their_keys_partition_as_kafka_partitions_or_to_the_one_given_in_order():
    producer = FakeProducer(partitions=4, capacity=3)
    outbox = Outbox(lambda: producer)
    keys = [f"item-{i}".encode() for i in range(10)]
    for i, key in enumerate(keys):
        outbox.add("news.tagged", key, b"v%d" % i)
    outbox.add("changelog", b"segment-7", b"state", 2)
    outbox.add("changelog", b"segment-3", None, 2)  # a deletion stays a tombstone
    outbox.add("changelog", b"big", b"x" * 5000, 1)  # larger than a batch: sent alone
    asyncio.run(outbox.send())

    tagged = producer.records("news.tagged")
    for key in keys:
        partition = (murmur2(key) & 0x7FFFFFFF) % 4  # kafka-python's: the partition Kafka's clients pick
        assert key in [k for k, _ in tagged[partition]]
    for rows in tagged.values():
        assert [int(v[1:]) for _, v in rows] == sorted(int(v[1:]) for _, v in rows)  # in order per partition
    assert sum(map(len, tagged.values())) == 10
    assert all(len(rows) <= 3 for topic, _, rows in producer.sent)  # full batches were closed, none lost
    assert producer.records("changelog") == {2: [(b"segment-7", b"state"), (b"segment-3", None)],
                                             1: [(b"big", b"x" * 5000)]}
    assert producer.asked == ["news.tagged"]  # records with their partition need no metadata
    assert len(outbox) == 0
    asyncio.run(outbox.send())
    assert sum(len(rows) for _, _, rows in producer.sent) == 13  # nothing sent twice


def test_the_story_shard_writes_each_changed_key_to_its_table_and_its_inputs_changelog_partition(tmp_path):
    app = create_app(Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path))
    decide = app.agents["decide"].fun.__self__
    producer = FakeProducer(partitions=8, capacity=100)
    decide.outbox = Outbox(lambda: producer)
    tagger = load_tagger()
    items = [entry(tagger, {"id": f"w-{i}", "source": "wire", "title": title, "text": text,
                            "published_at": "2026-11-30T10:00:00Z", "url": f"https://example.org/w-{i}"})
             for i, (title, text) in enumerate([
                 ("Missiles hit Odesa port", "Russian missiles struck the port of Odesa overnight, officials said."),
                 ("Talks resume in Geneva", "Ukrainian and Russian delegations resumed ceasefire talks in Geneva.")])]
    decide.shard.decide(items, 41, time.time())
    asyncio.run(decide.write_state(5))

    written = 0
    for name in ("story_segments", "alert_cooldown", "trend_windows"):
        table = app.tables[name]
        records = producer.records(table.changelog_topic.get_topic_name())
        assert set(records) <= {5}, f"{name} written to the input's partition only"
        for key, value in records.get(5, []):
            assert table.data.get(key) == value, f"{name}: the table holds what its changelog says"
            written += 1
    assert producer.records(app.tables["story_segments"].changelog_topic.get_topic_name())[5][0][0] == b"%020d" % 41
    assert written >= 3  # a segment, a window per trend key, a cooldown per alert key
    before = len(producer.sent)
    asyncio.run(decide.write_state(5))
    assert len(producer.sent) == before  # nothing changed, nothing written


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=80))
def test_the_key_hash_is_the_one_kafka_clients_partition_by(key):
    assert our_murmur2(key) & 0x7FFFFFFF == murmur2(key) & 0x7FFFFFFF
    assert 0 <= our_murmur2(key) <= 0xFFFFFFFF



def test_a_record_without_a_key_goes_to_some_partition():
    """A dead letter of a message that had no key: Kafka's clients pick any partition for it."""
    producer = FakeProducer(partitions=4, capacity=3)
    outbox = Outbox(lambda: producer)
    for i in range(5):
        outbox.add("news.deadletter", None, b"bad %d" % i)
    asyncio.run(outbox.send())
    sent = producer.records("news.deadletter")
    assert set(sent) <= {0, 1, 2, 3} and sorted(v for rows in sent.values() for _, v in rows) == [
        b"bad %d" % i for i in range(5)]
