"""`signalwatch tail` formatting and filters (no broker)."""

from __future__ import annotations

import click
import orjson
import pytest

from streams.cli.alerts import alert_matches, format_alert, print_alert

ALERT = {
    "alert_id": "esc-0123456789abcdef01234567", "type": "escalation", "severity": "high",
    "summary": "escalation: missile_strike [Russia] — Missile strike on Kharkiv",
    "item_ids": ["i1"], "categories": ["missile_strike"], "actors": ["Russia", "Ukraine"],
    "evidence": ["launched a missile strike on Kharkiv " + "x" * 300, "second"],
    "created_at": "2026-11-24T10:11:12.345Z", "lexicon_version": "1",
    "source": "Example Wire", "url": "https://example.org/a",
}


def test_format_alert_is_readable():
    text = click.unstyle(format_alert(ALERT))
    first, evidence, where = text.splitlines()
    assert first.startswith("10:11:12 HIGH") and "escalation" in first and "Missile strike on Kharkiv" in first
    assert evidence.strip().startswith("“launched a missile strike") and evidence.rstrip().endswith("(+1)")
    assert len(evidence) < 200, "long evidence is clipped"
    assert where.strip() == "Example Wire — https://example.org/a"
    assert "\x1b[" in format_alert(ALERT), "severity is coloured (click drops colours off a terminal)"


def test_format_alert_survives_missing_fields():
    assert click.unstyle(format_alert({"summary": "s"})).startswith("--:--:-- LOW")


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
    assert alert_matches(ALERT, stances=("rejected",)) is False  # an escalation alert has no stance
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
