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
