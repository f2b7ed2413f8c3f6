"""Per-item alert rules (pure)."""

from __future__ import annotations

from streams.alerting import alert_id, build_alerts
from streams.tagging import load_tagger


def tagged(title: str, text: str, item_id: str = "item-1") -> dict:
    return {"id": item_id, "title": title, "text": text, "source": "test", **load_tagger().tag(title, text)}


def test_alert_ids_are_deterministic_per_rule_and_item():
    assert alert_id("escalation", "a") == alert_id("escalation", "a")
    assert alert_id("escalation", "a") != alert_id("negotiation", "a")
    assert alert_id("escalation", "a") != alert_id("escalation", "b")


def test_one_alert_per_kind_with_evidence_summary_and_source():
    item = tagged("Russia fires ballistic missiles at Kyiv as Kremlin rejects ceasefire talks", "")
    alerts = {a["type"]: a for a in build_alerts(item, "low")}
    assert set(alerts) == {"escalation", "negotiation"}
    for kind, alert in alerts.items():
        assert alert["alert_id"] == alert_id(kind, "item-1")
        assert alert["item_ids"] == ["item-1"] and alert["source"] == "test"
        assert alert["evidence"] and all(e in item["title"] for e in alert["evidence"])
    assert alerts["escalation"]["summary"].startswith("ESCALATION — Russia fires ballistic missiles")
    assert alerts["negotiation"]["summary"].startswith("REJECTED — Russia fires ballistic missiles")
    assert alerts["negotiation"]["negotiation_stance"] == "rejected" == item["negotiation_stance"]
    assert "negotiation_stance" not in alerts["escalation"]
    assert [s["stance"] for s in alerts["negotiation"]["stances"]] == ["rejected", "rejected"]
    assert build_alerts(item, "low") and [a["alert_id"] for a in build_alerts(item, "low")] == \
        [a["alert_id"] for a in alerts.values()]


def test_an_alert_says_where_and_when_with_scores_and_a_stance_per_category():
    item = dict(tagged("Kremlin rejects ceasefire talks as drones hit Odesa",
                       "Russia launched drones at the port of Odesa overnight. Moscow threatened more strikes on "
                       "Kharkiv. Turkey offered to host peace talks in Istanbul."),
                published_at="2026-11-24T09:05:00Z", url="https://example.org/odesa")
    alerts = {a["type"]: a for a in build_alerts(item, "low")}
    assert set(alerts) == {"escalation", "negotiation"}
    for alert in alerts.values():
        assert alert["locations"] == item["locations"] and {"Odesa", "Kharkiv"} <= set(alert["locations"])
        assert alert["published_at"] == "2026-11-24T09:05:00Z" and alert["url"] == "https://example.org/odesa"
        assert (alert["escalation_score"], alert["negotiation_score"]) == \
            (item["escalation_score"], item["negotiation_score"]) and alert["escalation_score"] > 0.5
        # one entry per category, in the order of alert["categories"]
        assert [s["category"] for s in alert["stances"]] == alert["categories"]
    by_category = {s["category"]: s for s in alerts["escalation"]["stances"]}
    assert by_category["threat_rhetoric"] == {"category": "threat_rhetoric", "stance": "threatened",
                                              "evidence": "Moscow threatened more strikes on Kharkiv."}
    # the headline decides a category's stance, and its evidence is the sentence that carries that stance
    talks = {s["category"]: s for s in alerts["negotiation"]["stances"]}["peace_talks"]
    assert talks["stance"] == "rejected" and talks["evidence"] == item["title"]
    assert alerts["negotiation"]["negotiation_stance"] == "rejected"


def test_an_item_without_places_or_time_gives_an_alert_without_them():
    (alert,) = build_alerts(tagged("Russia fires ballistic missiles", ""), "low")
    assert alert["locations"] == [] and "published_at" not in alert
    assert alert["stances"] and all(s["evidence"] == "Russia fires ballistic missiles" for s in alert["stances"])


def test_minimum_severity_filters_and_neutral_items_raise_nothing():
    assert build_alerts(tagged("Lviv opens a new library", "Readers welcomed the reading room."), "low") == []
    item = tagged("Russia fires ballistic missiles at Kyiv", "")
    assert [a["type"] for a in build_alerts(item, "low")] == ["escalation"]
    weak = dict(item, escalation_score=0.01)
    assert [a["severity"] for a in build_alerts(weak, "low")] == ["low"]
    assert build_alerts(weak, "medium") == []


def test_evidence_is_the_sentence_around_the_signal():
    from streams.alerting import MAX_EVIDENCE_CHARS, evidence_sentence

    doc = "Markets were calm. The Kremlin ruled out a ceasefire on Friday!  Talks may resume."
    start = doc.index("ceasefire")
    assert evidence_sentence(doc, start, start + 9) == "The Kremlin ruled out a ceasefire on Friday!"
    title_doc = "Drone strike on Odesa\nNo casualties were reported."
    assert evidence_sentence(title_doc, 0, 12) == "Drone strike on Odesa"
    long_doc = "word " * 200 + "missile strike " + "word " * 200
    start = long_doc.index("missile")
    snippet = evidence_sentence(long_doc, start, start + 14)
    assert "missile strike" in snippet and snippet.startswith("…") and len(snippet) <= MAX_EVIDENCE_CHARS + 2


def test_alert_evidence_quotes_whole_sentences_of_the_text():
    item = tagged("", "Officials met in Geneva. Russia fired ballistic missiles at Kharkiv overnight. Weather was mild.")
    (alert,) = build_alerts(item, "low")
    assert alert["evidence"] == ["Russia fired ballistic missiles at Kharkiv overnight."]


def test_a_corroborated_alert_keeps_its_id_and_takes_its_severity_from_the_base_and_the_camps():
    from streams.alerting import MAX_COPIES_LISTED, corroborated
    from streams.sources import default_registry

    registry = default_registry()
    tass = {"title": "", "text": "MOSCOW, November 20. /TASS/. Air defences downed drones over Belgorod."}
    copies = [registry.attribute(dict(tass, source=s)).copy(f"c{i}", f"https://{s}/x") for i, s in
              enumerate(["rt.com", "ria.ru", "lenta.ru"])]
    copies.append(registry.attribute({"source": "Ukrinform", "text": "Drones were downed."}).copy("u1"))
    alert = {"alert_id": "esc-1", "type": "escalation", "severity": "medium", "summary": "s"}

    one_camp = corroborated(alert, registry.corroborate(copies[:3]), copies[:3], 3)
    assert one_camp["alert_id"] == "esc-1" and one_camp["severity"] == "medium"
    assert one_camp["base_severity"] == "medium"
    c = one_camp["corroboration"]
    assert (c["origins"]["names"], c["camps"]["names"], c["outlets"]["count"]) == (["TASS"], ["russia-state"], 3)
    assert c["summary"] == "claimed by Russian state media only (TASS)"
    assert c["copies"] == {"count": 3, "listed": [{"id": f"c{i}", "outlet": copies[i]["outlet_name"],
                                                   "url": copies[i]["url"]} for i in range(3)]}

    two_camps = corroborated(one_camp, registry.corroborate(copies), copies, 40)
    assert two_camps["severity"] == "high" and two_camps["base_severity"] == "medium"  # one rule met: +1
    assert two_camps["corroboration"]["copies"]["count"] == 40
    assert len(corroborated(alert, registry.corroborate(copies * 5), copies * 5, 20)["corroboration"]["copies"][
        "listed"]) == MAX_COPIES_LISTED
    assert alert == {"alert_id": "esc-1", "type": "escalation", "severity": "medium", "summary": "s"}  # untouched
    assert corroborated(dict(alert, severity="critical"), registry.corroborate(copies), copies, 4)["severity"] \
        == "critical"


def test_signals_that_do_not_count_raise_no_alert():
    # an agreement to stop strikes is a negotiation, not an escalation
    item = tagged("Sides agree energy truce", "Russia and Ukraine agreed to halt strikes on energy sites for 30 days.")
    assert any(s["kind"] == "escalation" and not s["counts"] for s in item["signals"])  # kept as evidence
    alerts = build_alerts(item, "low")
    assert [a["type"] for a in alerts] == ["negotiation"]
    assert alerts[0]["summary"].startswith("AGREED — Sides agree energy truce")


def test_a_hypothetical_attack_raises_no_alert():
    item = tagged("Warsaw vows a response if Russian drones cross into Poland", "")
    assert build_alerts(item, "low") == []


def test_the_sample_feeds_agreed_truce_raises_no_escalation_alert():
    import json
    from pathlib import Path

    import streams

    feed = Path(streams.__file__).parent / "data" / "sample_feed.jsonl"
    items = [json.loads(line) for line in feed.read_text(encoding="utf-8").splitlines() if line.strip()]
    (truce,) = [it for it in items if it["title"] == "Sides agree energy truce"]
    alerts = build_alerts(tagged(truce["title"], truce["text"], truce["id"]), "medium")
    assert [(a["type"], a["negotiation_stance"]) for a in alerts] == [("negotiation", "agreed")]


def test_a_corroborated_version_keeps_where_and_when():
    from streams.alerting import corroborated
    from streams.sources import default_registry

    registry = default_registry()
    item = dict(tagged("Drones hit the port of Odesa", "Russia launched drones at Odesa overnight."),
                published_at="2026-11-24T09:05:00Z")
    (alert,) = build_alerts(item, "low")
    copies = [registry.attribute({"source": s, "text": item["text"]}).copy(f"c{i}") for i, s in
              enumerate(["Ukrinform", "Reuters"])]
    version = corroborated(alert, registry.corroborate(copies), copies, 2)
    kept = ("locations", "published_at", "escalation_score", "negotiation_score", "stances", "evidence")
    assert {k: version[k] for k in kept} == {k: alert[k] for k in kept}
    assert version["locations"] == ["Odesa"] and version["stances"][0]["stance"] == "reported"
