"""The faust-streaming workarounds in streams.faust_compat still hold for the installed Faust.

Each test names what an upgrade would break. When one fails after an upgrade, re-check the workaround it
names in streams/faust_compat.py (and the upstream issue) before changing the test.
"""

from __future__ import annotations

from streams.app import create_app
from streams.faust_compat import FAUST_VERSION
from streams.settings import Settings


def test_the_installed_faust_is_the_pinned_version():
    import faust

    assert faust.__version__ == FAUST_VERSION, (
        f"faust-streaming {faust.__version__} is installed, the workarounds in streams/faust_compat.py are "
        f"for {FAUST_VERSION}: re-check #596 (stall guard), #606 (concurrency 1) and the private attributes "
        "listed there, then update FAUST_VERSION")


def test_every_table_changelog_is_unacked(tmp_path):
    """Faust takes an acked topic for a stream: its stall check then logs an error every 7 s for a changelog
    partition with records (read only while recovering) once the worker is 5 minutes old, and the stall
    guard would re-read it."""
    app = create_app(Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path))
    assert {name: table.changelog_topic.acks for name, table in app.tables.items()} == \
        {name: False for name in app.tables}
    assert "negotiation_threads" in app.tables


def test_an_offset_faust_skipped_is_not_committed(tmp_path):
    """news.raw[6]: 2104 read, 2105 dropped by Faust, 2106 read. Faust counted 2105 as acked and committed past
    it (a lost item after a kill -9 and restart); the commit now stops at 2105, where the stall guard re-reads."""
    import asyncio
    import inspect

    from faust.transport.consumer import Consumer
    from faust.types import TP

    assert "self._add_gap(tp, r_offset + 1, offset)" in inspect.getsource(Consumer._drain_messages)
    assert "self._gap[tp]" in inspect.getsource(Consumer._new_offset)
    consumer = create_app(Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path)).consumer
    tp = TP("news.raw", 6)
    consumer._committed_offset[tp] = 2100
    consumer._acked[tp] = [2100, 2101, 2102, 2103, 2104]
    asyncio.run(consumer._add_gap(tp, 2105, 2106))  # what the fetch loop does when 2106 follows 2104
    consumer._acked[tp].append(2106)
    assert consumer._new_offset(tp) == 2105


def test_the_private_attributes_the_workarounds_read_still_exist(tmp_path):
    import inspect

    from faust.streams import Stream
    from faust.transport.consumer import Consumer

    app = create_app(Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path))
    table = app.tables["story_segments"]
    assert isinstance(table._verified_source_topics_for_partitions, set), "changelogs_ready's fallback"
    assert table.changelog_topic.get_topic_name() == f"{app.conf.id}-story_segments-changelog", "write_state"
    assert hasattr(table.data, "pop"), "store: the in-memory store's update"
    assert "_committed_offset" in inspect.getsource(Consumer.__init__), "committed_offsets (lag, stall guard)"
    assert all(hasattr(agent, "_actors") for agent in app.agents.values()), "in_flight (stall guard)"
    # take_events acks the batch in a finally: why a batch body must never raise (streams.stages)
    source = inspect.getsource(Stream.take_events)
    assert "finally:" in source and "await self.ack(event)" in source, "stages: batch acks in take_events"
    # kafka_producer: the aiokafka producer under Faust's, whose flush Faust's commit awaits (streams.outbox)
    import aiokafka

    producer = app.producer
    assert "_ensure_producer" in type(producer).__dict__, "kafka_producer: Producer._ensure_producer"
    assert "self._producer.flush()" in inspect.getsource(type(producer).flush), "kafka_producer: flush"
    for name in ("create_batch", "send_batch", "partitions_for"):
        assert hasattr(aiokafka.AIOKafkaProducer, name), f"streams.outbox: AIOKafkaProducer.{name}"


def test_every_agent_acks_in_order_and_waits_for_its_stream_on_shutdown(tmp_path):
    app = create_app(Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path))
    assert set(app.agents) == {"decide"}  # news.raw is read by streams.intake, not by an agent
    assert {name: agent.concurrency for name, agent in app.agents.items()} == dict.fromkeys(app.agents, 1)
    assert app.conf.stream_wait_empty  # a graceful stop or rebalance finishes in-flight events first


def test_stall_guard_rereads_a_partition_only_after_it_stayed_behind_while_idle():
    from streams.faust_compat import StallGuard

    guard = StallGuard(stall_after=30.0)
    tp = ("news.processed", 7)
    assert not guard.stalled(tp, committed=334, end=1115, idle=True, now=0.0)  # first seen behind
    assert not guard.stalled(tp, committed=334, end=1115, idle=True, now=29.0)
    assert guard.stalled(tp, committed=334, end=1115, idle=True, now=30.0)  # 30 s without progress
    assert not guard.stalled(tp, committed=334, end=1115, idle=True, now=31.0)  # re-armed after a re-read
    # progress, work in flight, or nothing left to read: never a stall
    assert not guard.stalled(tp, committed=400, end=1115, idle=True, now=70.0)
    assert not guard.stalled(tp, committed=400, end=1115, idle=True, now=95.0)
    assert not guard.stalled(tp, committed=400, end=1115, idle=False, now=120.0)
    assert not guard.stalled(tp, committed=400, end=1115, idle=True, now=125.0)  # the clock starts again
    assert not guard.stalled(tp, committed=1115, end=1115, idle=True, now=500.0)
    assert not guard.stalled(tp, committed=None, end=1115, idle=True, now=600.0)


def test_stall_guard_timer_seeks_a_stalled_partition_back_to_its_committed_offset(monkeypatch):
    """Also a partition never committed (a record dropped there while a restarted worker recovered its
    tables, before the worker's first commit on it): back to its log start."""
    import asyncio

    from faust.types import TP

    from streams import faust_compat
    from streams.metrics import Metrics

    stalled, moving = TP("news.processed", 7), TP("news.processed", 3)
    never, empty, changelog = TP("news.raw", 5), TP("news.raw", 6), TP("sw-story_segments-changelog", 7)

    class Consumer:
        def __init__(self):
            self._committed_offset = {stalled: 334, moving: 10}
            self.seeks = []

        def assignment(self):
            return {stalled, moving, never, empty, changelog}

        async def earliest_offsets(self, *tps):
            assert set(tps) == {never, empty}, "only stream partitions never committed"
            return {never: 40, empty: 12}

        async def highwaters(self, *tps):
            return {stalled: 1115, moving: 500, never: 41, empty: 12, changelog: 900}

        async def seek(self, tp, offset):
            self.seeks.append((tp, offset))

    class Flow:
        def is_active(self):
            return True

    class Topics:
        def acks_enabled_for(self, topic):
            return not topic.endswith("-changelog")  # Faust acks and commits stream topics only

    class App:
        in_recovery = False
        flow_control = Flow()
        topics = Topics()
        agents: dict = {}

        def __init__(self):
            self.consumer = Consumer()
            self.timers = []

        def timer(self, interval, name=None):
            def register(fun):
                self.timers.append(fun)
                return fun
            return register

    app, metrics, clock = App(), Metrics(), [0.0]
    monkeypatch.setattr(faust_compat.time, "monotonic", lambda: clock[0])
    faust_compat.install_stall_guard(app, metrics, stall_after=30.0)
    [tick] = app.timers
    for now in (0.0, 10.0, 20.0):
        clock[0] = now
        app.consumer._committed_offset[moving] += 50  # this one makes progress
        asyncio.run(tick())
    assert app.consumer.seeks == []
    clock[0] = 30.0
    asyncio.run(tick())
    assert sorted(app.consumer.seeks) == sorted([(stalled, 334), (never, 40)])
    assert metrics.registry.get_sample_value("signalwatch_partition_rereads_total") == 2
