"""Updates and corrections on a real broker and worker (issue 17): a death toll revised under the same id
is revision 2 on news.tagged and an updated alert under the same alert_id; the same text again is a
duplicate. The module's broker sees only these items, so the counts are exact."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import collect, metric_value, send_items
from tests.unit.test_shard_updates import CORRECTED, FIRST

pytestmark = pytest.mark.usefixtures("own_workers")


def test_a_death_toll_correction_is_revision_two_and_an_updated_alert(isolated_kafka):
    worker = isolated_kafka.start_worker()
    settings = worker.settings
    item_id = f"{uuid.uuid4().hex[:8]}-kharkiv-block"

    def ours(v):
        return v.get("id") == item_id

    def our_alerts(a):
        return a.get("item_ids") == [item_id]

    send_items(settings, [dict(FIRST, id=item_id)], [item_id.encode()])
    [first] = collect(settings, settings.topics.tagged, ours, 1, timeout=60)
    assert first["revision"] == 1
    [alert] = collect(settings, settings.topics.escalation, our_alerts, 1, timeout=30)
    assert alert["revision"] == 1 and "kills 5" in alert["summary"]

    send_items(settings, [dict(CORRECTED, id=item_id)], [item_id.encode()])
    tagged = collect(settings, settings.topics.tagged, ours, 2, timeout=60)
    assert [(t["revision"], t["title"]) for t in tagged] == [(1, FIRST["title"]), (2, CORRECTED["title"])]
    alerts = collect(settings, settings.topics.escalation, our_alerts, 2, timeout=30)
    assert [a["alert_id"] for a in alerts] == [alert["alert_id"]] * 2
    assert alerts[1]["revision"] == 2 and "kills 38" in alerts[1]["summary"]
    assert any("killing 38 people" in e for e in alerts[1]["evidence"])

    # the corrected text again: a duplicate of revision 2, nothing sent
    send_items(settings, [dict(CORRECTED, id=item_id)], [item_id.encode()])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and metric_value(worker.metrics(), "signalwatch_items_duplicate_total") < 1:
        time.sleep(0.5)
    metrics = worker.metrics()
    assert metric_value(metrics, "signalwatch_duplicate_reasons_total", '{reason="id"}') == 1
    assert metric_value(metrics, "signalwatch_items_updated_total") == 1
    assert metric_value(metrics, "signalwatch_duplicate_reasons_total", '{reason="redelivered"}') == 0
    assert len(collect(settings, settings.topics.tagged, ours, 3, timeout=3)) == 2
    assert len(collect(settings, settings.topics.escalation, our_alerts, 3, timeout=3)) == 2
