"""The whole pipeline on a real Kafka broker with a real worker process."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.conftest import REPO, collect, send_items

SEEDS = REPO.parent / "shared" / "seeds"

ESCALATION_TEXTS = [
    "Russian forces launched a missile strike on Kharkiv overnight, hitting an apartment block.",
    "Ukraine fired ATACMS missiles at an airfield inside Russia for the first time.",
    "Moscow announced a new wave of mobilisation, calling up 200,000 reservists.",
]
NEGOTIATION_TEXTS = [
    "The Kremlin said it is ready to hold peace talks with Washington in Riyadh next month.",
    "Kyiv and Moscow agreed to a prisoner exchange brokered by the United Arab Emirates.",
]
NEUTRAL_TEXTS = [
    "The city council of Lviv opened a new public library with a children's reading room.",
    "Farmers in the south reported a good sunflower harvest this autumn.",
]


def run_id() -> str:
    return uuid.uuid4().hex[:10]


def test_valid_items_come_out_tagged_with_the_right_labels(worker):
    rid = run_id()
    cases = ([(t, {"escalation"}) for t in ESCALATION_TEXTS] + [(t, {"negotiation"}) for t in NEGOTIATION_TEXTS]
             + [(t, set()) for t in NEUTRAL_TEXTS])
    items = [{"id": f"{rid}-{i}", "title": "", "text": text, "source": "test"} for i, (text, _) in enumerate(cases)]
    send_items(worker.settings, items, [i["id"].encode() for i in items])

    tagged = collect(worker.settings, worker.settings.topics.tagged, lambda v: v["id"].startswith(rid),
                     len(items), settle=2)
    by_id = {t["id"]: t for t in tagged}
    assert len(tagged) == len(items), "every accepted item is tagged exactly once"
    for i, (_, labels) in enumerate(cases):
        out = by_id[f"{rid}-{i}"]
        assert set(out["labels"]) == labels, out
        assert out["lexicon_version"] and out["tagged_at"] and out["received_at"]
        for signal in out["signals"]:
            doc = out["text"] if not out.get("title") else f"{out['title']}\n{out['text']}"
            assert doc[signal["start"]:signal["end"]] == signal["text"]


BAD_MESSAGES = {
    "not_json": b"{this is not json",
    "bad_utf8": b'{"text": "\xff\xfe missile strike"}',
    "not_object": b"[1, 2, 3]",
    "schema": b'{"text": "ceasefire", "title": 42}',
    "no_text": b'{"url": "https://example.org/empty"}',
    "empty": b"",
    "too_large": orjson.dumps({"text": "x" * (1024 * 1024 + 10)}),
}


def test_malformed_messages_are_dead_lettered_and_the_worker_goes_on(worker):
    rid = run_id()
    keys = [f"{rid}-{reason}".encode() for reason in BAD_MESSAGES]
    good = {"id": f"{rid}-good", "text": ESCALATION_TEXTS[0]}
    send_items(worker.settings, [*BAD_MESSAGES.values(), good], [*keys, good["id"].encode()])

    dead = collect(worker.settings, worker.settings.topics.deadletter,
                   lambda v: v.get("key") and base64.b64decode(v["key"]).decode().startswith(rid),
                   len(BAD_MESSAGES), settle=2)
    assert len(dead) == len(BAD_MESSAGES)
    for letter in dead:
        expected = base64.b64decode(letter["key"]).decode().removeprefix(f"{rid}-")
        assert letter["reason"] == expected, letter["detail"]
        assert base64.b64decode(letter["original"]) == BAD_MESSAGES[expected]
        assert letter["topic"] == worker.settings.topics.raw and letter["offset"] >= 0 and letter["detail"]
    tagged = collect(worker.settings, worker.settings.topics.tagged, lambda v: v["id"] == good["id"], 1)
    assert tagged and tagged[0]["labels"] == ["escalation"]
    assert worker.proc.poll() is None


def test_repeated_ids_are_tagged_once(worker):
    rid = run_id()
    item = {"id": f"{rid}-dup", "text": NEGOTIATION_TEXTS[0]}
    send_items(worker.settings, [item, item, item], [item["id"].encode()] * 3)
    tagged = collect(worker.settings, worker.settings.topics.tagged, lambda v: v["id"] == item["id"], 1,
                     settle=3)
    assert len(tagged) == 1
    metrics = worker.metrics()
    duplicates = [line for line in metrics.splitlines() if line.startswith("signalwatch_items_duplicate_total")]
    assert duplicates and float(duplicates[0].split()[-1]) >= 2


def _seed_items(rid: str) -> list[dict]:
    files = sorted(SEEDS.glob("*.txt"))
    if not files:
        pytest.skip(f"the user's seed document is not beside the checkout ({SEEDS})")
    paragraphs = [p.strip() for f in files for p in f.read_text().splitlines() if p.strip()]
    return [{"id": f"{rid}-seed-{i}", "text": p, "source": "seed"} for i, p in enumerate(paragraphs)]


def test_seed_paragraphs_raise_escalation_and_negotiation_alerts_and_tail_shows_them(worker):
    rid = run_id()
    items = _seed_items(rid)
    send_items(worker.settings, items, [i["id"].encode() for i in items])

    def ours(alert):
        return any(i.startswith(rid) for i in alert["item_ids"])

    escalation = collect(worker.settings, worker.settings.topics.escalation, ours, 1, timeout=60)
    negotiation = collect(worker.settings, worker.settings.topics.negotiation, ours, 1, timeout=60)
    assert escalation and negotiation
    for alert in escalation + negotiation:
        assert alert["evidence"] and alert["summary"] and alert["categories"]
        assert alert["alert_id"].startswith(alert["type"][:3])

    tail = subprocess.Popen([sys.executable, "-m", "streams.cli", "tail", "--from-beginning", "--json"],
                            env=worker.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wanted = {a["alert_id"] for a in escalation + negotiation}
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    try:
        while not wanted <= seen and time.monotonic() < deadline:
            line = tail.stdout.readline()
            if not line:
                break
            seen.add(orjson.loads(line)["alert_id"])
    finally:
        tail.terminate()
        tail.wait(timeout=10)
    assert wanted <= seen


def test_metrics_answer(worker):
    text = worker.metrics()
    for name in ("signalwatch_items_received_total", "signalwatch_items_invalid_total",
                 "signalwatch_signals_total", "signalwatch_processing_seconds_bucket", "signalwatch_consumer_lag"):
        assert name in text
    received = [line for line in text.splitlines() if line.startswith("signalwatch_items_received_total")]
    assert float(received[0].split()[-1]) > 0


def test_cli_push_then_classify_agree(worker, tmp_path: Path):
    rid = run_id()
    feed = tmp_path / "feed.jsonl"
    lines = [{"id": f"{rid}-p{i}", "text": t} for i, t in enumerate(ESCALATION_TEXTS + NEGOTIATION_TEXTS)]
    feed.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n{broken\n")
    push = subprocess.run([sys.executable, "-m", "streams.cli", "push", str(feed)], env=worker.env,
                          capture_output=True, text=True, timeout=60)
    assert push.returncode == 0, push.stderr
    assert f"sent {len(lines)} items" in push.stderr and "rejected 1 (not_json 1)" in push.stderr
    tagged = collect(worker.settings, worker.settings.topics.tagged, lambda v: v["id"].startswith(rid), len(lines))
    classify = subprocess.run([sys.executable, "-m", "streams.cli", "classify", str(feed)], capture_output=True,
                              timeout=60)
    offline = [orjson.loads(x) for x in classify.stdout.splitlines()]
    assert len(offline) == len(lines) + 1 and "error" in offline[-1]
    by_id = {t["id"]: t["labels"] for t in tagged}
    assert all(by_id[o["id"]] == o["labels"] for o in offline[:-1])


def test_an_alert_says_where_and_when_and_tail_prints_it(worker):
    """An item with a publication time and a place: its alert on the topic carries both, the scores and a
    stance per category, and ``tail`` prints the time in UTC, the place and a sentence that is not the title."""
    from streams.records import validator

    rid = run_id()
    title = f"Missile strike on Kharkiv apartment block ({rid})"
    item = {"id": f"{rid}-where", "title": title, "source": "Example Wire", "published_at": "2026-11-24T11:05:00+02:00",
            "text": "Russian forces launched a missile strike on Kharkiv overnight, hitting an apartment block. "
                    "The Kremlin threatened further strikes on the city."}
    send_items(worker.settings, [item], [item["id"].encode()])
    (alert,) = collect(worker.settings, worker.settings.topics.escalation, lambda a: a["item_ids"] == [item["id"]], 1)
    assert not list(validator("alert.v1.json").iter_errors(alert)), alert
    assert alert["locations"] == ["Kharkiv"] and alert["published_at"] == item["published_at"]
    assert alert["escalation_score"] > 0.5 and alert["negotiation_score"] == 0.0
    stances = {s["category"]: s for s in alert["stances"]}
    assert list(stances) == alert["categories"]
    assert stances["threat_rhetoric"] == {"category": "threat_rhetoric", "stance": "threatened",
                                          "evidence": "The Kremlin threatened further strikes on the city."}

    tail = subprocess.Popen([sys.executable, "-m", "streams.cli", "tail", "--from-beginning", "--type", "escalation"],
                            env=worker.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = tail.stdout.readline()
            if not line:
                break
            if printed or rid in line:
                printed.append(line.rstrip("\n"))
            if printed and line.strip() == "Example Wire":  # the alert's last line: its source
                break
    finally:
        tail.terminate()
        tail.wait(timeout=10)
    assert printed and printed[-1].strip() == "Example Wire", printed
    first, place, *_, evidence, source = printed
    assert first.startswith("2026-11-24T09:05:00Z CRITICAL"), first
    assert place.strip() == "in Kharkiv", printed
    assert evidence.strip() == "“Russian forces launched a missile strike on Kharkiv overnight, hitting an apartment block.”"
    assert source.strip() == "Example Wire"
