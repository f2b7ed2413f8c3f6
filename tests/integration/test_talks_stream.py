"""The negotiation tracker in the stream, on a real broker and real workers.

The scripted scenario of tests/unit/test_talks.py (our own sentences, tagged here by the real tagger in the
worker) is dated in the last three weeks, so that the worker's clock (event time, never ahead of the wall
clock) keeps its threads and sees the announced deadline pass. The first half goes through one
worker, which is then stopped; the second half through a new worker of the same app, whose tracker state
comes back from the compacted ``negotiations.threads`` topic (the agreement joins the thread the first
worker opened). Pushing everything again changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from streams.kafka_io import producer, read_table
from tests.conftest import REPO, TopicDrain
from tests.unit.test_talks import CF, ET, EXPECTED, SCENARIO

pytestmark = pytest.mark.timeout(600)

DAYS_AGO = (20.0, 19.5, 19.0, 18.0, 17.0, 16.0)
"""When each scenario item is dated, in days before today's midnight (UTC): all within the tracker's 21-day
horizon of the worker's clock (now), and the deadline announced by the last one (two weeks) already past."""


def dated(days_ago: float) -> str:
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - timedelta(days=days_ago)).isoformat(timespec="seconds").replace("+00:00", "Z")


def raw_items() -> list[dict]:
    """The scenario's items as news.raw records, on the dates of :data:`DAYS_AGO`."""
    out = []
    for it, days_ago in zip(SCENARIO, DAYS_AGO, strict=True):
        raw = {"id": it["id"] + "-talks", "text": it["text"], "source": it["source"], "published_at": dated(days_ago)}
        if it["title"]:
            raw["title"] = it["title"]
        out.append(raw)
    return out


def expected_transitions(items: list[dict]) -> list[tuple]:
    """EXPECTED of the unit scenario on the new dates: same threads, kinds and order."""
    when = {old["published_at"]: new["published_at"] for old, new in zip(SCENARIO, items, strict=True)}
    due = (datetime.fromisoformat(items[5]["published_at"].replace("Z", "+00:00")) + timedelta(days=14))
    when["2026-03-28T23:59:59Z"] = due.replace(hour=23, minute=59, second=59).isoformat().replace("+00:00", "Z")
    opened = {ET: items[0]["published_at"][:10], CF: items[5]["published_at"][:10]}
    return [(tid.rsplit(":", 1)[0] + ":" + opened[tid], kind, frm, to, when[at]) for tid, kind, frm, to, at in EXPECTED]


def push(settings, items: list[dict]) -> None:
    """In order, on one partition: the tracker sees them in the order they are sent."""
    client = producer(settings)
    try:
        for it in items:
            client.send(settings.topics.raw, key=it["id"].encode(), value=orjson.dumps(it), partition=0)
        client.flush(timeout=60)
    finally:
        client.close()


def transitions(drain: TopicDrain, topic: str) -> list[dict]:
    alerts = [orjson.loads(r.value) for r in drain.records[topic]]
    return [a for a in alerts if "transition" in a]


def key(alert: dict) -> tuple:
    tr = alert["transition"]
    return (alert["thread_id"], tr["kind"], tr["from"], tr["to"], tr["at"])


def in_order(alerts: list[dict]) -> list[tuple]:
    """The transitions in event-time order, after checking that each thread's (one partition: the thread
    id is the key) arrived in that order too."""
    keys = [key(a) for a in alerts]
    for tid in {k[0] for k in keys}:
        mine = [k for k in keys if k[0] == tid]
        assert mine == sorted(mine, key=lambda k: k[4]), mine
    return sorted(keys, key=lambda k: k[4])


def metric(worker, name: str, labels: str) -> float:
    series = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in worker.metrics().splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{labels}}} not exported")


def test_scenario_through_the_broker_with_a_restart_and_a_replay(isolated_kafka):
    items = raw_items()
    expected = expected_transitions(items)
    settings = isolated_kafka.settings
    topic = settings.topics.negotiation
    drain = TopicDrain(settings, [topic])
    app_id = f"sw-talks-{uuid.uuid4().hex[:8]}"

    first = isolated_kafka.start_worker(app_id=app_id)
    push(settings, items[:3])  # proposed, scheduled, held
    assert drain.until(lambda r: len(transitions(drain, topic)) >= 3, timeout=90, settle=3)
    assert in_order(transitions(drain, topic)) == expected[:3]
    assert metric(first, "signalwatch_talks_threads", 'state="held"') == 1
    assert metric(first, "signalwatch_talks_transitions_total", 'kind="scheduled"') == 1
    first.stop()

    second = isolated_kafka.start_worker(app_id=app_id)  # restores the thread from negotiations.threads
    push(settings, items[3:])  # agreed (joins the restored thread), violated, a deadline that passed
    assert drain.until(lambda r: len(transitions(drain, topic)) >= len(expected), timeout=90, settle=5)
    got = transitions(drain, topic)
    assert in_order(got) == expected
    assert len({a["alert_id"] for a in got}) == len(got)
    violated = next(a for a in got if a["transition"]["kind"] == "violated")
    assert violated["severity"] == "high" and violated["item_ids"] == ["i5-talks"]
    assert "agreed \u2192 violated" in violated["summary"] and "Odesa" in violated["summary"]

    threads = {k.decode(): orjson.loads(v) for k, v in read_table(settings, settings.topics.threads).items()}
    assert {tid: t["state"] for tid, t in threads.items()} == {expected[0][0]: "violated", expected[5][0]: "proposed"}
    with urllib.request.urlopen(f"{second.base_url}/talks?state=violated", timeout=5) as response:
        page = orjson.loads(response.read())
    assert [row["thread_id"] for row in page] == [expected[0][0]]
    assert [tr["kind"] for tr in page[0]["history"]] == ["proposed", "scheduled", "held", "agreed", "violated"]

    push(settings, items)  # the whole scenario again: copies of items already decided
    deadline = time.monotonic() + 60
    while metric(second, "signalwatch_items_duplicate_total", "") < len(items) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert metric(second, "signalwatch_items_duplicate_total", "") == len(items)
    drain.until(lambda r: False, timeout=5)
    assert in_order(transitions(drain, topic)) == expected
    again = {k.decode(): orjson.loads(v) for k, v in read_table(settings, settings.topics.threads).items()}
    assert again == threads

    cli = subprocess.run([sys.executable, "-m", "streams.cli", "talks", "--broker", settings.broker, "--json",
                          "--state", "violated"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert [orjson.loads(line)["thread_id"] for line in cli.stdout.splitlines()] == [expected[0][0]]
    drain.reader.close()
