"""The process stage's batch work (streams.processing): the same records and rejections in the worker's own
thread and split between helper processes; a helper that dies is reported, not waited on, and a helper
does not outlive a worker killed with -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import orjson
import pytest

from streams.analytics.shard import read_batch
from streams.processing import ProcessPool, process_batch, process_item
from streams.settings import Settings
from streams.sources import default_registry
from streams.tagging import load_tagger

RECEIVED_AT, RECEIVED = "2026-11-30T12:00:00Z", 1_800_000_000.0


def batch() -> list[tuple[bytes | None, int, int]]:
    good = [{"id": f"n{i}", "source": "Example Wire", "published_at": "2026-11-30T10:00:00Z",
             "title": f"Drone strike hits depot number {i} near Kharkiv",
             "text": f"Officials said drone {i} struck a fuel depot overnight; talks on a ceasefire stalled."}
            for i in range(7)]
    messages = [(orjson.dumps(item), 3, 100 + i) for i, item in enumerate(good)]
    messages.insert(2, (b"{not json", 3, 99))
    messages.insert(5, (orjson.dumps({"id": "x", "title": 5}), 4, 7))
    return messages


def described(entry) -> tuple:
    """An entry's tagged record and alerts (but their wall-clock stamps) and where it was read."""
    tagged = orjson.loads(entry.tagged.raw)
    assert tagged.pop("tagged_at")
    alerts = [{k: v for k, v in alert.items() if k != "created_at"} for alert in entry.alerts]
    return tagged, alerts, entry.raw


def run(pool: ProcessPool, messages):
    async def go():
        await pool.ready()
        return await pool.run(messages, RECEIVED_AT, RECEIVED)
    try:
        return asyncio.run(go())
    finally:
        pool.close()


def test_helpers_give_what_the_worker_thread_gives():
    settings, tagger, messages = Settings(), load_tagger(), batch()
    here = run(ProcessPool(settings, tagger, 0), messages)
    apart = run(ProcessPool(settings, tagger, 2), messages)
    ids = [[e.tagged.item_id for e in read_batch(r)] for r in here.records]
    assert ids == [[f"n{i}" for i in range(7)]]
    split = [e for r in apart.records for e in read_batch(r)]
    assert [e.tagged.item_id for e in split] == ids[0]  # in input order, over both helpers' records
    assert [described(e) for e in split] == [described(e) for e in read_batch(here.records[0])]
    assert [(r.index, r.reason) for r in here.rejected] == [(2, "not_json"), (5, "schema")]
    assert [(r.index, r.reason, r.detail) for r in apart.rejected] == \
        [(r.index, r.reason, r.detail) for r in here.rejected]
    assert apart.cpu_seconds > 0 and here.cpu_seconds > 0


def test_a_batch_gives_what_its_items_give_one_by_one():
    settings, tagger, messages = Settings(), load_tagger(), batch()
    result = process_batch(messages, settings, tagger, default_registry(), RECEIVED_AT, RECEIVED)
    alone = []
    for value, partition, offset in messages:
        try:
            entry = process_item(value, settings, tagger, RECEIVED_AT, RECEIVED)
        except Exception:  # noqa: BLE001 - the two invalid messages
            continue
        entry.raw = (partition, offset)
        alone.append(described(entry))
    assert len(alone) == 7
    assert [described(e) for r in result.records for e in read_batch(r)] == alone


def test_a_batch_normalises_each_url_once(monkeypatch):
    """Validation, the id and the dedup features each need an item's url digest, in two steps over the whole
    batch: the digest's cache must hold a batch (normalising is most of its cost)."""
    from streams import records
    from streams.intake import BATCH_SIZE

    calls = []
    real = records.normalise_url
    monkeypatch.setattr(records, "normalise_url", lambda url: calls.append(url) or real(url))
    records.url_digest.cache_clear()
    items = [{"id": f"u{i}", "title": f"Strike on depot {i}", "url": f"https://example.org/story/{i}?utm_source=x"}
             for i in range(BATCH_SIZE)]
    result = process_batch([(orjson.dumps(item), 0, i) for i, item in enumerate(items)], Settings(), load_tagger(),
                           default_registry(), RECEIVED_AT, RECEIVED)
    assert sum(len(read_batch(r)) for r in result.records) == BATCH_SIZE
    assert len(calls) == BATCH_SIZE


class FailsOn:
    """A tagger that raises on one headline: a bug in a step after parsing."""

    def __init__(self, tagger, title: str) -> None:
        self.tagger, self.title = tagger, title

    def tag(self, title: str, text: str) -> dict:
        if title == self.title:
            raise RuntimeError("tagger bug")
        return self.tagger.tag(title, text)


def test_a_bug_on_one_item_dead_letters_it_alone_and_keeps_the_order():
    messages = batch()
    bad = orjson.loads(messages[4][0])["title"]  # n3's
    result = process_batch(messages, Settings(), FailsOn(load_tagger(), bad), default_registry(), RECEIVED_AT,
                           RECEIVED)
    assert [(r.index, r.reason) for r in result.rejected] == [(2, "not_json"), (4, "internal_error"), (5, "schema")]
    assert "tagger bug" in result.rejected[1].detail and "RuntimeError" in result.rejected[1].trace
    assert [e.tagged.item_id for r in result.records for e in read_batch(r)] == ["n0", "n1", "n2", "n4", "n5", "n6"]


def test_a_helper_that_dies_breaks_the_batch():
    pool = ProcessPool(Settings(), load_tagger(), 1)

    async def go():
        await pool.ready()
        loop = asyncio.get_running_loop()
        pid = await loop.run_in_executor(pool._pool(), os.getpid)
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        return await pool.run(batch(), RECEIVED_AT, RECEIVED)

    with pytest.raises(BrokenProcessPool):
        try:
            asyncio.run(go())
        finally:
            pool.close()


def test_a_worker_whose_helper_cannot_start_stops(monkeypatch):
    """Not a worker that looks alive (web, health, partitions) while its process stage never runs."""
    from streams import stages
    from streams.intake import RawReader
    from streams.metrics import Metrics
    from streams.settings import Settings

    class Stopped(Exception):
        pass

    def stop_worker(exc, *_why):
        raise Stopped(exc)

    class Stage:
        async def ready(self):
            raise BrokenProcessPool("A process in the initializer failed")

    monkeypatch.setattr(stages, "stop_worker", stop_worker)
    reader = RawReader(Settings(), Stage(), Metrics(), topic=None)
    with pytest.raises(Stopped, match="initializer failed"):
        asyncio.run(reader.read())


HOLDS_A_POOL = """
import asyncio, sys
from streams.processing import ProcessPool, process_batch, process_item
from streams.sources import default_registry
from streams.settings import Settings
from streams.tagging import load_tagger

async def main():
    pool = ProcessPool(Settings(), load_tagger(), 1)
    await pool.ready()
    pid = await asyncio.get_running_loop().run_in_executor(pool._pool(), __import__("os").getpid)
    print(pid, flush=True)
    await asyncio.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_helper_outlives_no_killed_worker(tmp_path):
    script = tmp_path / "holds_a_pool.py"
    script.write_text(HOLDS_A_POOL)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        helper = int(parent.stdout.readline())
        os.kill(helper, 0)  # alive
        parent.kill()  # SIGKILL: no atexit, no pool shutdown
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and alive(helper):
            time.sleep(0.2)
        assert not alive(helper), "the helper outlived its killed worker"
    finally:
        parent.kill()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_reader_commits_a_batch_after_it_is_finished_in_order_and_only_on_partitions_it_holds():
    from aiokafka import TopicPartition as TP
    from aiokafka.errors import CommitFailedError

    from streams.intake import RawReader
    from streams.metrics import Metrics
    from streams.settings import Settings

    events: list = []

    class Record:
        def __init__(self, partition: int, offset: int) -> None:
            self.topic, self.partition, self.offset, self.key, self.value = "news.raw", partition, offset, None, b"{}"

    class Stage:
        def start(self, messages):
            events.append(("started", [(m.partition, m.offset) for m in messages]))
            future = asyncio.get_running_loop().create_future()
            future.set_result(len(messages))
            return future

        async def finish(self, messages, work):
            events.append(("finished", [(m.partition, m.offset) for m in messages], await work))

    class Consumer:
        held = {TP("news.raw", 0), TP("news.raw", 1)}
        refuse = False

        def assignment(self):
            return self.held

        async def commit(self, offsets):
            if self.refuse:
                raise CommitFailedError("the group rebalanced")
            events.append(("committed", offsets))

    reader = RawReader(Settings(), Stage(), Metrics(), topic=None)
    reader.consumer = Consumer()

    async def two_batches():
        reader._start({TP("news.raw", 0): [Record(0, 7), Record(0, 8)], TP("news.raw", 1): [Record(1, 3)],
                       TP("news.raw", 2): [Record(2, 5)]})  # partition 2 was revoked after this batch was fetched
        reader._start({TP("news.raw", 0): [Record(0, 9)]})
        assert len(reader._in_flight) == 2
        await reader._finish_all()

    asyncio.run(two_batches())
    assert events == [("started", [(0, 7), (0, 8), (1, 3)]), ("started", [(0, 9)]),
                      ("finished", [(0, 7), (0, 8), (1, 3)], 3),
                      ("committed", {TP("news.raw", 0): 9, TP("news.raw", 1): 4}),
                      ("finished", [(0, 9)], 1), ("committed", {TP("news.raw", 0): 10})]
    assert reader._committed == {TP("news.raw", 0): 10, TP("news.raw", 1): 4} and not reader._in_flight

    events.clear()
    reader.consumer.refuse = True  # the group moved on: the next owner re-reads, nothing raises

    async def refused():
        reader._start({TP("news.raw", 0): [Record(0, 10)]})
        await reader._finish_all()

    asyncio.run(refused())
    assert events == [("started", [(0, 10)]), ("finished", [(0, 10)], 1)]
    assert reader._committed[TP("news.raw", 0)] == 10
