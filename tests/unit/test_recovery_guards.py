"""Guards against faust-streaming's known offset races (issues #596 and #606, both open upstream).

* #606: with ``concurrency > 1`` an agent acks out of order and Faust can commit past a record still being
  processed; a kill -9 then skips it. Every agent here runs with concurrency 1 (acks in offset order).
* #596: after a restart with tables to recover, records fetched during the recovery can be dropped and a
  partition's committed offset stops (reproduced by tests/slow/test_crash_restart.py). The stall guard
  (streams.observability.StallGuard) re-reads such a partition from its committed offset; replays are
  harmless because every stage is idempotent (seen ids in the tag stage, the story index in dedup, each
  trend entry's last applied offset, deterministic alert ids), which the slow tests check item by item.
"""

from __future__ import annotations

from streams.app import create_app
from streams.settings import Settings


def test_every_agent_acks_in_order_and_waits_for_its_stream_on_shutdown(tmp_path):
    app = create_app(Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path))
    assert set(app.agents) >= {"streams.app.ingest", "streams.app.tag", "streams.agents.analytics.dedup",
                               "streams.agents.analytics.trend_count", "streams.agents.analytics.notify"}
    assert {name: agent.concurrency for name, agent in app.agents.items()} == dict.fromkeys(app.agents, 1)
    assert app.conf.stream_wait_empty  # a graceful stop or rebalance finishes in-flight events first


def test_stall_guard_rereads_a_partition_only_after_it_stayed_behind_while_idle():
    from streams.observability import StallGuard

    guard = StallGuard(stall_after=30.0)
    tp = ("news.accepted", 7)
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
    import asyncio

    from faust.types import TP

    from streams import observability
    from streams.metrics import Metrics

    stalled, moving = TP("news.accepted", 7), TP("news.accepted", 3)

    class Consumer:
        def __init__(self):
            self._committed_offset = {stalled: 334, moving: 10}
            self.seeks = []

        def assignment(self):
            return {stalled, moving, TP("sw-seen_ids-changelog", 7)}  # a changelog: never committed

        async def highwaters(self, *tps):
            return {stalled: 1115, moving: 500}

        async def seek(self, tp, offset):
            self.seeks.append((tp, offset))

    class Flow:
        def is_active(self):
            return True

    class App:
        in_recovery = False
        flow_control = Flow()
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
    monkeypatch.setattr(observability.time, "monotonic", lambda: clock[0])
    observability.install_stall_guard(app, metrics, stall_after=30.0)
    [tick] = app.timers
    for now in (0.0, 10.0, 20.0):
        clock[0] = now
        app.consumer._committed_offset[moving] += 50  # this one makes progress
        asyncio.run(tick())
    assert app.consumer.seeks == []
    clock[0] = 30.0
    asyncio.run(tick())
    assert app.consumer.seeks == [(stalled, 334)]
    assert metrics.registry.get_sample_value("signalwatch_partition_rereads_total") == 1
