"""news.raw's own reader (streams.intake) on the session broker: where a new group starts, what it commits."""

from __future__ import annotations

import contextlib
import time
import uuid

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from streams.settings import Settings
from tests.conftest import metric_value, send_items


def test_an_upgraded_worker_starts_where_fausts_group_left_news_raw(kafka, start_worker):
    """Before the reader, Faust's group (the app id) read news.raw. An upgraded worker's reader group has no
    offsets yet: it must take that group's, not re-read the topic from its start (news older than the dedup
    horizon would be decided as new)."""
    app_id = f"sw-upgrade-{uuid.uuid4().hex[:8]}"
    send_items(Settings(broker=kafka.url), [{"id": f"{app_id}-old-{i}", "text": "read before"} for i in range(5)])
    old = KafkaConsumer(bootstrap_servers=kafka.url.removeprefix("kafka://"), group_id=app_id,
                        enable_auto_commit=False)
    try:
        partitions = [TopicPartition("news.raw", p) for p in old.partitions_for_topic("news.raw")]
        ends = old.end_offsets(partitions)
        assert sum(ends.values()) > 0
        old.assign(partitions)
        old.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in ends.items()})  # Faust's group read all
    finally:
        old.close()

    worker = start_worker(app_id=app_id, ready=False)
    try:
        send_items(worker.settings, [{"id": f"{app_id}-new", "text": "read after the upgrade"}])
        deadline, received = time.monotonic() + 90, 0.0
        while received < 1 and time.monotonic() < deadline:  # another app's worker may tag it: count this one's reads
            time.sleep(1)
            with contextlib.suppress(OSError):
                received = metric_value(worker.metrics(), "signalwatch_items_received_total")
        time.sleep(3)  # more would show now
        assert metric_value(worker.metrics(), "signalwatch_items_received_total") == 1
        reader = KafkaConsumer(bootstrap_servers=kafka.url.removeprefix("kafka://"), group_id=f"{app_id}-process",
                               enable_auto_commit=False)
        try:
            deadline, committed = time.monotonic() + 10, {}
            while time.monotonic() < deadline:  # the new item's batch is committed once its outputs are acked
                committed = {tp: reader.committed(tp) for tp in partitions}
                if sum(c or 0 for c in committed.values()) > sum(ends.values()):
                    break
                time.sleep(0.5)
            # inherited where nothing was read since; one past the new item in its partition
            past = {tp: c - ends[tp] for tp, c in committed.items()}
            assert sorted(past.values()) == [0] * (len(partitions) - 1) + [1], (committed, ends)
        finally:
            reader.close()
    finally:
        worker.stop()  # a worker left running would also tag the next tests' items (its own group)
