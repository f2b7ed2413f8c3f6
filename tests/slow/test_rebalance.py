"""A second worker joins mid-stream and leaves again (a module of its own: a fresh broker).

``REBALANCE_ITEMS`` (default 10,000) go to news.raw with 5% invalid messages and 5% repeated ids, as in
test_crash_restart.py. When a quarter is tagged a second worker joins the group (two rebalances: the
partitions and maybe the story shard move), when half is tagged it stops (SIGTERM, another rebalance).
Every accepted id must be in news.tagged with one content, every invalid message dead-lettered under its
key, nothing else; and every per-item alert id the tagged items call for is on an alert topic, each alert
id (surges too) with one content.
"""

from __future__ import annotations

import os
from collections import defaultdict

import orjson
import pytest

from streams.alerting import build_alerts
from tests.conftest import TopicDrain, send_items
from tests.slow.test_crash_restart import ENV, _account, _check, _start_run, bound

ITEMS = int(os.environ.get("SIGNALWATCH_REBALANCE_ITEMS", "10000"))
REBALANCE_ENV = {**ENV, "SIGNALWATCH_ALERT_COOLDOWN": "0"}  # every item's alerts go out: countable by id

pytestmark = pytest.mark.timeout(bound(ITEMS))


def _ours(records, rid: str) -> int:
    return sum(1 for r in records if r.key and r.key.decode().startswith(rid))


def test_a_worker_joins_mid_stream_and_leaves(isolated_kafka):
    app_id, first, rid, values, keys, accepted, invalid = _start_run(isolated_kafka, "rebalance", ITEMS)
    first.stop()  # _start_run's worker runs with the default cooldown: restart it with the cooldown off
    first = isolated_kafka.start_worker(app_id=app_id, extra_env=REBALANCE_ENV)
    settings = first.settings
    t = settings.topics
    drain = TopicDrain(settings, [t.tagged, t.deadletter, *t.alerts()])
    try:
        send_items(settings, values, keys)
        assert drain.until(lambda r: _ours(r[t.tagged], rid) >= len(accepted) // 4, timeout=bound(ITEMS) / 4)
        second = isolated_kafka.start_worker(app_id=app_id, extra_env=REBALANCE_ENV, ready=False)
        assert drain.until(lambda r: _ours(r[t.tagged], rid) >= len(accepted) // 2, timeout=bound(ITEMS) / 4)
        second.stop()
        result = _account(drain, settings, rid, accepted, invalid, timeout=bound(ITEMS) / 3)
        drain.until(lambda r: False, timeout=5)  # the last alerts
        alerts = [orjson.loads(r.value) for topic in t.alerts() for r in drain.records[topic]]
    finally:
        drain.close()
    assert first.proc.poll() is None, "the first worker kept running through both rebalances"
    _check(*result, accepted, invalid, "rebalance (a second worker joined and left)", ITEMS)

    tagged = {x["id"]: x for x in result[1]}
    expected = {a["alert_id"]: a for x in tagged.values() for a in build_alerts(x, settings.alert_min_severity)}
    versions = defaultdict(set)
    for a in alerts:
        if any(i.startswith(rid) for i in a.get("item_ids", ())):
            versions[a["alert_id"]].add((a["type"], a["severity"], tuple(a["item_ids"])))
    print(f"alerts: {len(expected)} expected, {len(versions)} ids seen, "
          f"{sum(len(v) for v in versions.values())} distinct versions")
    per_item = {i for i, v in versions.items() if next(iter(v))[0] != "trend"}  # trend: surges, not per item
    assert per_item == set(expected), "every alert the tagged items call for, and no other"
    assert all(len(v) == 1 for v in versions.values()), "each alert id (trend alerts too) with one content"
