"""Guards against faust-streaming's known offset races (issues #596 and #606, both open upstream).

* #606: with ``concurrency > 1`` an agent acks out of order and Faust can commit past a record still being
  processed; a kill -9 then skips it. Every agent here runs with concurrency 1 (acks in offset order).
* #596: a recovery race can leave a gap in the acked offsets that stalls commits; a restart then replays
  from the last commit. Replays are harmless here because every stage is idempotent (seen ids in the tag
  stage, the story index in dedup, each trend entry's last applied offset, deterministic alert ids), which
  tests/slow/test_crash_restart.py checks item by item after kill -9 and broker restarts.
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
