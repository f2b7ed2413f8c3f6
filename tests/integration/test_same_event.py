"""Distinct events are never merged, copies of one event are, on a real broker and worker (issue 17).

Templated strike reports about different cities share most of their wording, so the sketch alone calls
them near-duplicates; the story shard keeps them apart by their event keys (places, numbers, actors) and
merges only the outlets' copies of one wire text. The module's broker sees only these items.
"""

from __future__ import annotations

import uuid

import pytest

from streams.analytics.cooldown import MAX_HELD
from tests.conftest import collect, metric_value, send_items
from tests.unit.test_cooldown_counts import visible
from tests.unit.test_shard_events import CITIES, OUTLETS, STRIKE

pytestmark = pytest.mark.usefixtures("own_workers")


def test_five_cities_in_a_minute_are_five_items_and_three_outlets_one(isolated_kafka):
    # no cooldown: each event's own alert shows (holding back same-kind alerts is the cooldown's business)
    worker = isolated_kafka.start_worker(extra_env={"SIGNALWATCH_ALERT_COOLDOWN": "0"})
    settings = worker.settings
    rid = uuid.uuid4().hex[:8]
    title, text = STRIKE
    strikes = [{"id": f"{rid}-{city}", "title": title.format(city=city), "text": text.format(city=city),
                "source": f"outlet-{k}", "published_at": f"2026-11-30T06:00:{10 * k:02d}Z"}
               for k, city in enumerate(CITIES)]
    send_items(settings, strikes, [s["id"].encode() for s in strikes])

    def ours(v):
        return v.get("id", "").startswith(rid)

    tagged = collect(settings, settings.topics.tagged, ours, 5, timeout=60, settle=4)
    assert sorted(t["id"] for t in tagged) == sorted(s["id"] for s in strikes)
    assert sorted(t["locations"][0] for t in tagged) == sorted(CITIES)
    alerts = collect(settings, settings.topics.escalation, lambda a: any(i.startswith(rid) for i in a["item_ids"]),
                     5, timeout=60, settle=3)
    assert sorted(i for a in alerts for i in a["item_ids"]) == sorted(s["id"] for s in strikes)
    # other cities' reports corroborate nothing: each alert names its own outlet only
    assert all(a["corroboration"]["outlets"]["count"] == 1 for a in alerts), alerts
    assert metric_value(worker.metrics(), "signalwatch_duplicate_reasons_total", '{reason="near"}') == 0

    # three outlets' copies of one wire text: one tagged item, its alert corroborated by the three
    copies = [{"id": f"{rid}-copy-{k}", "title": headline, "text": body, "source": source,
               "url": f"https://site{k}.example/{rid}", "published_at": "2026-11-30T07:00:00Z"}
              for k, (headline, body, source) in enumerate(OUTLETS)]
    send_items(settings, copies[:1], [copies[0]["id"].encode()])
    first = copies[0]["id"]
    assert collect(settings, settings.topics.tagged, lambda v: v.get("id") == first, 1, timeout=60)
    send_items(settings, copies[1:], [c["id"].encode() for c in copies[1:]])

    def story(a):
        return first in a["item_ids"]

    alerts = collect(settings, settings.topics.escalation, story, 2, timeout=60, settle=3)
    assert len(alerts) >= 2 and {a["alert_id"] for a in alerts} == {alerts[0]["alert_id"]}, alerts
    assert alerts[-1]["corroboration"]["outlets"]["count"] == 3
    assert alerts[-1]["corroboration"]["camps"]["names"] == ["ukraine-official", "western"]
    tagged = collect(settings, settings.topics.tagged, lambda v: v.get("id", "").startswith(f"{rid}-copy"), 3,
                     timeout=5)
    assert [t["id"] for t in tagged] == [first]
    assert metric_value(worker.metrics(), "signalwatch_duplicate_reasons_total", '{reason="near"}') == 2
    worker.stop()


TOWNS = ["Kharkiv", "Odesa", "Zaporizhzhia", "Sumy", "Mykolaiv", "Kherson", "Dnipro", "Poltava", "Chernihiv",
         "Kramatorsk", "Nikopol", "Pavlohrad", "Zhytomyr", "Uman", "Izmail", "Brovary", "Konotop", "Okhtyrka",
         "Shostka", "Chuhuiv"]


def _shelling(rid: str, k: int, town: str, minute: int) -> dict:
    return {"id": f"{rid}-{k}", "title": f"Artillery shells {town}", "source": "wire",
            "published_at": f"2026-11-30T{8 + minute // 60:02d}:{minute % 60:02d}:00Z",
            "text": f"Russian artillery shelled {town} overnight, local officials said, damaging houses and a "
                    f"school. Residents were asked to stay near shelters."}


def test_twenty_strikes_within_the_cooldown_are_each_sent_or_listed_with_their_summary(isolated_kafka):
    worker = isolated_kafka.start_worker()  # the default cooldown (30 min of event time)
    settings = worker.settings
    rid = uuid.uuid4().hex[:8]
    burst = [_shelling(rid, k, town, k // 2) for k, town in enumerate(TOWNS)]  # 10 minutes
    send_items(settings, burst, [b["id"].encode() for b in burst])

    def ours(v):
        return v.get("id", "").startswith(rid)

    assert len(collect(settings, settings.topics.tagged, ours, 20, timeout=90)) == 20  # twenty events
    late = _shelling(rid, 20, "Lutsk", 120)  # two hours later: past the cooldown
    send_items(settings, [late], [late["id"].encode()])

    def alert_of_ours(a):
        return any(i.startswith(rid) for i in a["item_ids"])

    alerts = collect(settings, settings.topics.escalation, lambda a: late["id"] in a["item_ids"], 1, timeout=60)
    assert alerts, "no alert for the item after the cooldown"
    sent = collect(settings, settings.topics.escalation, alert_of_ours, 30, timeout=5)
    # each strike once: in an alert of its own, in a digest sent when its key's held list was full, or in
    # the late alert's count; each held one with its summary (visible also checks count == ids == summaries)
    shown = visible(sent)
    assert sorted(i for i, _ in shown) == sorted(b["id"] for b in burst + [late]), shown
    titles = {b["id"]: b["title"] for b in burst + [late]}
    assert all(titles[i] in summary for i, summary in shown), shown
    held = sum(a["suppressed"]["count"] for a in sent if "suppressed" in a)
    digests = [a for a in sent if a.get("digest")]
    assert held >= 1 and len(digests) == (held - 1) // MAX_HELD, (held, digests)
    # (this worker's group also reads the module's earlier items: at least these)
    metrics = worker.metrics()
    assert metric_value(metrics, "signalwatch_alerts_suppressed_total", '{reason="cooldown",type="escalation"}') >= held
    assert metric_value(metrics, "signalwatch_alert_digests_total", '{type="escalation"}') >= len(digests)
    worker.stop()
