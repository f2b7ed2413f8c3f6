"""`signalwatch tail` formatting and filters (no broker)."""

from __future__ import annotations

import click
import orjson
import pytest

from streams.cli.alerts import alert_matches, evidence_line, format_alert, print_alert

ALERT = {
    "alert_id": "esc-0123456789abcdef01234567", "type": "escalation", "severity": "high",
    "summary": "ESCALATION — Missile strike on Kharkiv (missile_strike; Russia)", "title": "Missile strike on Kharkiv",
    "item_ids": ["i1"], "categories": ["missile_strike"], "actors": ["Russia", "Ukraine"],
    "stances": [{"category": "missile_strike", "stance": "reported", "evidence": "Missile strike on Kharkiv"}],
    "evidence": ["Missile  strike on KHARKIV.", "Russia launched a missile strike on Kharkiv " + "x" * 300, "second"],
    "locations": ["Kharkiv", "Kyiv"], "escalation_score": 0.8, "negotiation_score": 0.0,
    "published_at": "2026-11-24T11:05:00+02:00",
    "created_at": "2026-11-24T10:11:12.345Z", "lexicon_version": "1",
    "source": "Example Wire", "url": "https://example.org/a",
}


def test_format_alert_says_when_where_and_what_beyond_the_title():
    text = click.unstyle(format_alert(ALERT))
    first, place, evidence, where = text.splitlines()
    # the event time is the item's published_at in UTC, not the alert's creation
    assert first.startswith("2026-11-24T09:05:00Z HIGH") and "escalation" in first and "Missile strike on Kharkiv" in first
    assert place.strip() == "in Kharkiv, Kyiv"
    # the first evidence sentence only differs from the title in case, spacing and stop: the next one is shown
    assert evidence.strip().startswith("“Russia launched a missile strike") and "second" not in evidence
    assert len(evidence) < 200, "long evidence is clipped"
    assert where.strip() == "Example Wire — https://example.org/a"
    assert "\x1b[" in format_alert(ALERT), "severity is coloured (click drops colours off a terminal)"


def test_format_alert_falls_back_to_the_alert_time_and_says_so():
    alert = {k: v for k, v in ALERT.items() if k not in ("published_at", "locations")}
    first, place, *_ = click.unstyle(format_alert(alert)).splitlines()
    assert first.startswith("2026-11-24T10:11:12Z HIGH")
    assert place.strip() == "no place named · time: when the alert was made (no published_at)"


def test_talks_and_trend_alerts_take_their_own_event_time():
    transition = {"type": "negotiation", "severity": "medium", "summary": "Ceasefire: proposed → agreed",
                  "created_at": "2026-11-30T10:00:00Z",
                  "transition": {"kind": "agreed", "from": "proposed", "to": "agreed", "at": "2026-11-20T21:00:00Z"}}
    first, place = click.unstyle(format_alert(transition)).splitlines()
    assert first.startswith("2026-11-20T21:00:00Z MEDIUM")
    assert place.strip() == "no place named · time: the thread's transition"
    trend = {"type": "trend", "severity": "high", "summary": "surge", "created_at": "2026-11-30T10:00:00Z",
             "window_start": "2026-11-20T21:00:00Z", "window_end": "2026-11-20T21:15:00Z", "count": 9, "baseline": 1}
    first, place = click.unstyle(format_alert(trend)).splitlines()
    assert first.startswith("2026-11-20T21:00:00Z HIGH") and first.endswith("(9 vs baseline 1)")
    assert place.strip() == "no place named · time: the window's start"


def test_evidence_line_is_never_the_title():
    assert evidence_line(ALERT).startswith("Russia launched")
    assert evidence_line(dict(ALERT, evidence=["missile strike on kharkiv", " Missile strike on Kharkiv! "])) is None
    assert evidence_line(dict(ALERT, title="", evidence=["Missile strike on Kharkiv"])) == "Missile strike on Kharkiv"
    assert evidence_line({"summary": "s"}) is None


def test_format_alert_keeps_the_terminal_safe():
    hostile = dict(ALERT, locations=["Kyiv\x1b]0;owned\x07", "\u202eassedO"], evidence=["\x1b[2JCleared \x9b31mred"],
                   published_at="2026-11-24T09:05:00Z\x1b[31m")
    text = format_alert(hostile)
    assert "owned" not in text and "\u202e" not in text and "\x9b" not in text and "[2J" not in text
    place = click.unstyle(text).splitlines()[1]
    assert place.strip().startswith("in Kyiv, assedO"), place
    assert "time: when the alert was made" in place  # a published_at that is not a timestamp is not used


def test_format_alert_survives_missing_fields():
    first, place = click.unstyle(format_alert({"summary": "s"})).splitlines()
    assert first.startswith("no time".ljust(20) + " LOW") and place.strip() == "no place named · no time given"


@pytest.mark.parametrize(("filters", "passes"), [
    ({}, True),
    ({"types": ("escalation",)}, True),
    ({"types": ("negotiation", "trend")}, False),
    ({"min_severity": "high"}, True),
    ({"min_severity": "critical"}, False),
    ({"categories": ("Missile_Strike",)}, True),
    ({"categories": ("ceasefire",)}, False),
    ({"actors": ("russia",)}, True),
    ({"actors": ("NATO", "ukraine")}, True),
    ({"actors": ("NATO",)}, False),
    ({"types": ("escalation",), "actors": ("NATO",)}, False),
])
def test_filters(filters, passes):
    assert alert_matches(ALERT, **filters) is passes


def test_print_alert_json_and_filters(capsys):
    value = orjson.dumps(ALERT)
    assert print_alert(value, True, None) is True
    assert orjson.loads(capsys.readouterr().out) == ALERT
    assert print_alert(value, False, "critical") is False
    assert print_alert(value, False, None, categories=("ceasefire",)) is False
    assert capsys.readouterr().out == ""
    assert print_alert(b"{nope", False, None) is False
    assert "not JSON" in capsys.readouterr().err


def test_stance_filter_keeps_negotiation_alerts_of_that_stance():
    rejected = dict(ALERT, type="negotiation", negotiation_stance="rejected", categories=["ceasefire"])
    assert alert_matches(rejected, stances=("rejected",)) is True
    assert alert_matches(rejected, stances=("agreed", "open")) is False
    assert alert_matches(ALERT, stances=("rejected",)) is False  # an escalation alert has no negotiation stance
    assert alert_matches(ALERT, stances=("reported",)) is True  # …but its categories have stances
    assert alert_matches(ALERT, stances=("threatened", "agreed")) is False
    conditional = dict(rejected, stances=[{"category": "peace_talks", "stance": "conditional", "evidence": "e"}])
    assert alert_matches(conditional, stances=("conditional",)) and alert_matches(conditional, stances=("rejected",))
    assert print_alert(orjson.dumps(rejected), True, None, stances=("agreed",)) is False


def test_the_camp_line_is_shown_and_camp_filters_on_the_storys_camps():
    from streams.alerting import corroborated
    from streams.sources import default_registry

    registry = default_registry()
    copies = [registry.attribute({"source": s, "text": "Talks were offered."}).copy(f"c{i}")
              for i, s in enumerate(["TASS", "Ukrinform"])]
    alert = corroborated(dict(ALERT, severity="medium"), registry.corroborate(copies), copies, 2)
    text = click.unstyle(format_alert(alert))
    assert ("reported by Russian state media (TASS) and confirmed by Ukrainian officials (Ukrinform) "
            "[2 origins, 2 camps]") in text
    assert alert_matches(alert, camps=("ukraine-official",)) and alert_matches(alert, camps=("western", "russia-state"))
    assert not alert_matches(alert, camps=("western",))
    assert not alert_matches(ALERT, camps=("russia-state",))  # an alert without corroboration has no camp
    one = corroborated(ALERT, registry.corroborate(copies[:1]), copies[:1], 1)
    assert "claimed by Russian state media only (TASS) [1 origin, 1 camp]" in click.unstyle(format_alert(one))
    assert print_alert(orjson.dumps(alert), True, None, camps=("western",)) is False
