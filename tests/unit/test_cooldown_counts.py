"""Nothing hidden without a count: what the cooldown holds back is counted in the next alert of its key,
and an alert more severe than the last one sent is never held back (streams.analytics.cooldown, shard)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import orjson
import pytest

from streams.analytics import cooldown
from streams.analytics.shard import Config, Entry, StoryShard, batch_records, read_batch
from streams.records import now_iso, validator
from streams.settings import Settings
from streams.stages import process_item
from streams.tagging import load_tagger

TOWNS = ["Kharkiv", "Odesa", "Zaporizhzhia", "Sumy", "Mykolaiv", "Kherson", "Dnipro", "Poltava", "Chernihiv",
         "Kramatorsk", "Nikopol", "Pavlohrad", "Zhytomyr", "Uman", "Izmail", "Brovary", "Konotop", "Okhtyrka",
         "Shostka", "Chuhuiv"]
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def tagger():
    return load_tagger()


def strike(tagger, i: int, town: str, at: float) -> Entry:
    stamp = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = {"id": f"strike-{i}", "title": f"Artillery shells {town}", "source": "wire", "published_at": stamp,
            "text": f"Russian artillery shelled {town} overnight, local officials said, damaging houses and a "
                    f"school. Residents were asked to stay near shelters."}
    made = process_item(orjson.dumps(item), Settings(), tagger, now_iso(), time.time())
    return read_batch(batch_records([made.wire()])[0])[0]


def escalations(out) -> list[dict]:
    return [a for a, _ in out.alerts if a["type"] == "escalation"]


def test_twenty_strikes_within_the_cooldown_are_each_sent_or_counted(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    burst = [strike(tagger, i, town, T0 + 30 * i) for i, town in enumerate(TOWNS)]
    out = shard.decide(burst, offset=0, now=1000.0)
    assert len(out.tagged) == 20  # twenty events, no copies
    sent = escalations(out)
    held = sum(1 for kind, reason in out.suppressed if kind == "escalation" and reason == "cooldown")
    assert sent and len(sent) + held == 20
    later = shard.decide([strike(tagger, 20, "Lutsk", T0 + 3600)], offset=1, now=1001.0)
    [alert] = escalations(later)
    counted = alert["suppressed"]
    assert counted["count"] == held and counted["highest_severity"] in ("medium", "high")
    visible = {i for a in sent for i in a["item_ids"]} | set(counted["item_ids"])
    assert len(counted["item_ids"]) == min(held, cooldown.MAX_HELD_IDS) and visible <= {e.tagged["id"] for e in burst}
    assert len(counted["summaries"]) == min(held, cooldown.MAX_HELD_SUMMARIES)
    assert all("Artillery shells" in s for s in counted["summaries"])
    assert not list(validator("alert.v1.json").iter_errors(alert)), alert
    # the count is released once: the next alert of the key carries nothing held before it
    again = shard.decide([strike(tagger, 21, "Rivne", T0 + 7200)], offset=2, now=1002.0)
    assert "suppressed" not in escalations(again)[0]


def test_a_more_severe_alert_is_never_held_back():
    state = None
    sent, _, state = cooldown.decide(state, "a1", "medium", 0.0, 1800.0)
    assert sent
    send, reason, held = cooldown.decide(state, "a2", "medium", 10.0, 1800.0)
    assert not send and reason == "cooldown"
    state = cooldown.hold(held, {"item_ids": ["i2"], "summary": "second", "severity": "medium"}, 2)
    send, reason, new = cooldown.decide(state, "a3", "high", 20.0, 1800.0)
    assert send and reason == "severity_rises"
    released = cooldown.release(state["held"], {"alert_id": "a3"})
    assert released["suppressed"] == {"count": 1, "item_ids": ["i2"], "summaries": ["second"],
                                      "highest_severity": "medium"}


def test_suppression_metric_reasons_and_replay_counts_nothing_twice(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    burst = [strike(tagger, i, town, T0 + 30 * i) for i, town in enumerate(TOWNS[:5])]
    out = shard.decide(burst, offset=0, now=1000.0)
    assert {r for _, r in out.suppressed} <= {"cooldown", "repeat"} and ("escalation", "cooldown") in out.suppressed
    states = {k: dict(v) for k, v in shard.last_alert.items()}
    shard.decide(burst, offset=0, now=1000.5)  # the same input record again (a crash before the commit)
    assert shard.last_alert == states


def test_the_count_survives_a_restore(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    shard.decide([strike(tagger, i, town, T0 + 30 * i) for i, town in enumerate(TOWNS[:4])], offset=0, now=1000.0)
    changes = shard.flush()
    restored = StoryShard(Config(alert_cooldown=1800))
    restored.restore(changes.stories.items(), changes.cooldown.items(), changes.windows.items())
    out = restored.decide([strike(tagger, 9, "Lutsk", T0 + 3600)], offset=1, now=1001.0)
    [alert] = escalations(out)
    assert alert["suppressed"]["count"] >= 1 and alert["suppressed"]["item_ids"][0] in {"strike-1", "strike-2"}
