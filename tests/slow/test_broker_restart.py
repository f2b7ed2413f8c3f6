"""Broker stopped and started mid-run (a module of its own: a fresh broker, so no earlier backlog).

Accounting as in test_crash_restart.py.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import TopicDrain, send_items
from tests.slow.test_crash_restart import BOUNCE_ITEMS, ENV, _account, _check, _start_run, bound

pytestmark = pytest.mark.timeout(bound(BOUNCE_ITEMS))


def test_broker_stop_and_start_mid_run(isolated_kafka):
    app_id, worker, rid, values, keys, accepted, invalid = _start_run(isolated_kafka, "bounce", BOUNCE_ITEMS)
    settings = worker.settings
    send_items(settings, values, keys)
    drain = TopicDrain(settings, [settings.topics.tagged, settings.topics.deadletter])
    try:
        drain.until(lambda r: sum(1 for x in r[settings.topics.tagged] if x.key.decode().startswith(rid))
                    >= len(accepted) // 3, timeout=120)
    finally:
        drain.close()
    isolated_kafka.broker.stop()
    time.sleep(3)
    isolated_kafka.broker.start(timeout=120)
    if worker.proc.poll() is not None:  # the worker gave up on the broker: a finding, and restart it
        print(f"\nworker exited with {worker.proc.returncode} while the broker was down; restarting it")
        isolated_kafka.start_worker(app_id=app_id, extra_env=ENV)
    drain = TopicDrain(settings, [settings.topics.tagged, settings.topics.deadletter])
    try:
        result = _account(drain, settings, rid, accepted, invalid, timeout=300)
    finally:
        drain.close()
    _check(*result, accepted, invalid, "broker restart", BOUNCE_ITEMS)
    assert worker.proc.poll() is None, "the worker rode out the broker restart"
