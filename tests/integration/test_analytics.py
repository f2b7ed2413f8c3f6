"""Stream analytics on a broker of its own: duplicates, event-time windows, surges, cooldown, restarts.

The module's broker (``isolated_kafka``) sees only these tests' items, so counts are exact. Trend items
carry old ``published_at`` values (a backfill): their windows are far from the other items' windows.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime, timezone

import orjson
import pytest

from streams.analytics import trend
from streams.kafka_io import TopicReader
from tests.conftest import collect, metric_value, send_items

STORY = ("Russian forces launched a massive missile strike on Kyiv overnight, hitting energy infrastructure in "
         "three districts. Ukraine's air force said it shot down 41 of 58 missiles. Power outages were "
         "reported across the capital and in the Kharkiv region, the grid operator said. {rid}")
FILLER = ["reportedly", "officials", "that day", "(AP)", "said", "late", "again", "local"]
NUMBER_WORDS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
NO_STORY_DEDUP = {"SIGNALWATCH_DEDUP_STORIES": "0"}


pytestmark = pytest.mark.usefixtures("own_workers")


def _windows(settings, app_id: str, entries: list[bytes], timeout: float = 90,
             expect: dict[bytes, int] | None = None, base: int = 900) -> dict[bytes, int]:
    """The latest count of each trend window ``entries`` (``size|key|start``) in the app's trend_windows
    changelog: exact per window, unlike the gauge (which shows the last window written). Only ``base``
    windows (the smallest size) are stored; a larger window is the sum of its base windows. With
    ``expect``, stop as soon as every entry has its expected count; without, read for ``timeout`` seconds."""
    reader = TopicReader(settings, [f"{app_id}-trend_windows-changelog"], from_beginning=True)
    stored: dict[bytes, int] = {}

    def count(entry: bytes) -> int | None:
        size, key, start = entry.decode().split("|")
        parts = [_entry(base, key, s) for s in range(int(start), int(start) + int(size), base)]
        found = [stored[part] for part in parts if part in stored]
        return sum(found) if found else None

    counts: dict[bytes, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for record in reader.poll(0.5):
                if record.value and record.key.startswith(f"{base}|".encode()):
                    stored[record.key] = orjson.loads(record.value).get("n", 0)
            counts = {e: n for e in entries if (n := count(e)) is not None}
            if expect is not None and all(counts.get(k) == n for k, n in expect.items()):
                break
    finally:
        reader.close()
    return counts


def _entry(size: int, key: str, start: int) -> bytes:
    return f"{size}|{key}|{start}".encode()


def _edited(text: str, rng: random.Random) -> str:
    """Another outlet's copy: a byline, three plain words replaced or dropped (the run id at the end kept).
    Names, numbers and days are kept: a copy that changes the place or a figure reports another event."""
    words = text.split()
    plain = [i for i, w in enumerate(words[:-1]) if w.isalpha() and w.islower() and w not in NUMBER_WORDS]
    for i in rng.sample(plain, 3):
        words[i] = rng.choice(FILLER) if rng.random() < 0.5 else ""
    return f"By staff reporter {rng.choice(['Ana', 'Ben', 'Oksana', 'Taras'])}. " + " ".join(w for w in words if w)


def _copies(rid: str, n: int, start: int = 0) -> list[dict]:
    rng = random.Random(start)
    text = STORY.format(rid=rid)
    return [{"id": f"{rid}-copy-{i}", "title": "", "text": text if i % 2 == 0 else _edited(text, rng),
             "url": f"https://site{i % 10}.example/news/{rid}/{i}", "source": f"site{i % 10}"}
            for i in range(start, start + n)]


def test_hundred_copies_make_one_tagged_item_and_one_alert_also_after_a_restart(isolated_kafka):
    app_id = f"sw-dedup-{uuid.uuid4().hex[:6]}"
    worker = isolated_kafka.start_worker(app_id=app_id)
    settings = worker.settings
    rid = uuid.uuid4().hex[:10]
    items = _copies(rid, 100)
    send_items(settings, items, [i["id"].encode() for i in items])

    def ours(v):
        return v.get("id", "").startswith(rid)

    tagged = collect(settings, settings.topics.tagged, ours, 1, timeout=60, settle=6)
    assert len(tagged) == 1, [t["id"] for t in tagged]  # the first copy to arrive (partitions interleave)
    first = tagged[0]["id"]
    alerts = collect(settings, settings.topics.escalation, lambda a: any(i.startswith(rid) for i in a["item_ids"]),
                     1, timeout=60, settle=2)
    assert len(alerts) == 1 and alerts[0]["item_ids"] == [first]
    metrics = worker.metrics()
    assert metric_value(metrics, "signalwatch_items_duplicate_total") == 99
    content = metric_value(metrics, "signalwatch_duplicate_reasons_total", '{reason="content"}')
    near = metric_value(metrics, "signalwatch_duplicate_reasons_total", '{reason="near"}')
    assert content + near == 99 and near >= 50  # edited copies are near-duplicates, never exact ones

    # the dedup state survives a restart: 20 more copies after it are all duplicates
    worker.stop()
    again = isolated_kafka.start_worker(app_id=app_id)
    more = _copies(rid, 20, start=100)
    send_items(settings, more, [i["id"].encode() for i in more])
    # (a message the first worker handled but had not committed may come again: counted as redelivered)
    def repeats(text):
        return {r: metric_value(text, "signalwatch_duplicate_reasons_total", f'{{reason="{r}"}}') for r in ("content", "near")}

    deadline = time.monotonic() + 120  # recovery of the dedup table, then 20 items (a loaded machine)
    while time.monotonic() < deadline and sum(repeats(again.metrics()).values()) < 20:
        time.sleep(0.5)
    time.sleep(2)
    got = repeats(again.metrics())
    # the 20 new copies (10 exact, 10 edited), plus at most a few replayed uncommitted ones (at-least-once)
    assert 20 <= sum(got.values()) <= 25 and got["near"] >= 10, got
    assert len(collect(settings, settings.topics.tagged, ours, 2, timeout=3)) == 1
    again.stop()


# ---------------------------------------------------------------- windows, surges, cooldown
def _epoch_range(seed: int) -> int:
    """An hour-aligned start in 2024, distinct per test (its windows meet no other test's)."""
    day = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() + (seed % 300) * 86400
    return int(day)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _shelling(rid: str, i: int, t: float) -> dict:
    return {"id": f"{rid}-s{i}", "title": "", "published_at": _iso(t), "source": "wire",
            "text": f"Russian artillery shelled the town of Nikopol overnight, report {rid} number {i}."}


def _waitmetric_value(worker, name: str, labels: str, value: float, timeout: float = 45) -> float:
    deadline = time.monotonic() + timeout
    got = -1.0
    while time.monotonic() < deadline:
        got = metric_value(worker.metrics(), name, labels)
        if got == value:
            return got
        time.sleep(0.5)
    return got


def test_a_burst_after_a_quiet_baseline_raises_one_surge_alert_and_the_cooldown_holds(isolated_kafka):
    from streams.records import validator

    worker = isolated_kafka.start_worker(extra_env={**NO_STORY_DEDUP, "SIGNALWATCH_ALERT_COOLDOWN": "86400"})
    settings = worker.settings
    rid = uuid.uuid4().hex[:10]
    t0 = _epoch_range(1)
    key = "escalation/shelling"
    quiet = [_shelling(rid, k, t0 + k * 900 + 60) for k in range(8)]  # one item in each of 8 windows
    send_items(settings, quiet, [i["id"].encode() for i in quiet])
    # the whole baseline is counted before the burst comes: each quarter holds 1 item, each hour 4
    baseline = {_entry(900, key, t0 + k * 900): 1 for k in range(8)}
    baseline.update({_entry(3600, key, t0): 4, _entry(3600, key, t0 + 3600): 4})
    got = _windows(settings, settings.app_id, list(baseline), expect=baseline)
    assert got == baseline, got
    burst_start = t0 + 8 * 900
    burst = [_shelling(rid, 100 + j, burst_start + 20 * j) for j in range(12)]
    send_items(settings, burst, [i["id"].encode() for i in burst])

    def ours(a):
        return any(i.startswith(rid) for i in a["item_ids"])

    # every item counted once: 12 in the burst's quarter and in its hour
    after = {_entry(900, key, burst_start): 12, _entry(3600, key, burst_start): 12}
    got = _windows(settings, settings.app_id, list(after), expect=after)
    assert got == after, got
    trends = collect(settings, settings.topics.trend, ours, 1, timeout=60, settle=5)
    assert len(trends) == 1, trends
    surge = trends[0]
    assert surge["key"] == key and surge["rule"] == "surge"
    assert (surge["window_start"], surge["window_end"]) == (trend.iso(burst_start), trend.iso(burst_start + 900))
    assert surge["window_seconds"] == 900 and surge["count"] == 5 and surge["baseline"] == 1.0
    assert surge["severity"] == "high"  # 5 >= 2 * 1 + 3 * 1: the 1-hour surge (medium) cannot pass the cooldown
    assert not list(validator("alert.v1.json").iter_errors(surge)), orjson.dumps(surge)
    # per-item alerts: one (escalation, shelling, Russia) alert within the cooldown, the others (19) held back;
    # the first 10 held fill the key's held list and go out at once as a digest, 9 wait for the next alert
    per_item = collect(settings, settings.topics.escalation, ours, 2, timeout=20, settle=3)
    per_item.sort(key=lambda a: a.get("digest", False))  # (alert ids key them to different partitions)
    assert [a.get("digest", False) for a in per_item] == [False, True], [a["item_ids"] for a in per_item]
    assert per_item[1]["suppressed"]["count"] == len(per_item[1]["item_ids"]) == 10
    assert not set(per_item[0]["item_ids"]) & set(per_item[1]["item_ids"])
    metrics = worker.metrics()
    assert metric_value(metrics, "signalwatch_alerts_suppressed_total", '{reason="cooldown",type="escalation"}') >= 19
    assert metric_value(metrics, "signalwatch_alerts_suppressed_total", '{reason="cooldown",type="trend"}') >= 1  # 1-hour
    worker.stop()


def test_a_restart_in_the_middle_neither_loses_nor_double_counts_a_window(isolated_kafka):
    app_id = f"sw-trend-{uuid.uuid4().hex[:6]}"
    env = {**NO_STORY_DEDUP, "SIGNALWATCH_TREND_WINDOWS": "3600"}
    worker = isolated_kafka.start_worker(app_id=app_id, extra_env=env)
    settings = worker.settings
    rid = uuid.uuid4().hex[:10]
    t0 = _epoch_range(2) + 7200
    entry = [_entry(3600, "escalation/shelling", t0)]
    first = [_shelling(rid, i, t0 + 60 * i) for i in range(17)]
    send_items(settings, first, [i["id"].encode() for i in first])
    assert _windows(settings, app_id, entry, expect={entry[0]: 17}, base=3600) == {entry[0]: 17}
    worker.stop()
    # the restarted worker gets a fresh web port (launch_worker picks a free one)
    again = isolated_kafka.start_worker(app_id=app_id, extra_env=env)
    second = [_shelling(rid, 100 + i, t0 + 1800 + 30 * i) for i in range(9)]
    send_items(settings, second, [i["id"].encode() for i in second])
    assert _windows(settings, app_id, entry, expect={entry[0]: 26}, base=3600) == {entry[0]: 26}
    # and it stays there: nothing replayed after the restart is counted again
    time.sleep(3)
    assert _windows(settings, app_id, entry, timeout=5, base=3600) == {entry[0]: 26}
    again.stop()


def _negotiation(rid: str, i: int, t: float) -> dict:
    return {"id": f"{rid}-n{i}", "title": "", "published_at": _iso(t), "source": "wire",
            "text": f"The Kremlin said it was ready for negotiations with Kyiv, statement {rid} number {i}."}


def test_talks_while_strikes_surge_raise_one_divergence_alert_for_the_right_window(isolated_kafka):
    from streams.records import validator

    env = {**NO_STORY_DEDUP, "SIGNALWATCH_ALERT_COOLDOWN": "86400", "SIGNALWATCH_TREND_WINDOWS": "900"}
    worker = isolated_kafka.start_worker(app_id=f"sw-div-{uuid.uuid4().hex[:6]}", extra_env=env)
    settings = worker.settings
    rid = uuid.uuid4().hex[:10]
    t0 = _epoch_range(3)
    quiet = [make(rid, k, t0 + k * 900 + 60) for k in range(8) for make in (_shelling, _negotiation)]
    send_items(settings, quiet, [i["id"].encode() for i in quiet])
    baseline = {_entry(900, f"{kind}/*", t0 + k * 900): 1 for k in range(8) for kind in ("escalation", "negotiation")}
    got = _windows(settings, worker.settings.app_id, list(baseline), expect=baseline)
    assert got == baseline, got
    burst_start = t0 + 8 * 900
    burst = [make(rid, 100 + j, burst_start + 30 * j) for j in range(8) for make in (_shelling, _negotiation)]
    send_items(settings, burst, [i["id"].encode() for i in burst])
    after = {_entry(900, f"{kind}/*", burst_start): 8 for kind in ("escalation", "negotiation")}
    got = _windows(settings, worker.settings.app_id, list(after), expect=after)
    assert got == after, got

    def ours(a):
        return a.get("rule") == "divergence" and any(i.startswith(rid) for i in a["item_ids"])

    found = collect(settings, settings.topics.trend, ours, 1, timeout=60, settle=5)
    assert len(found) == 1, found  # one window surged; the 8 quiet ones did not
    alert = found[0]
    assert (alert["window_start"], alert["window_end"]) == (trend.iso(burst_start), trend.iso(burst_start + 900))
    # it fires when the second kind reaches the surge threshold: max(min count 5, 1 + 3 * 1) over a baseline of 1
    assert min(alert["counts"].values()) == 5 and max(alert["counts"].values()) <= 8, alert["counts"]
    assert alert["baseline"] == 2.0
    assert not list(validator("alert.v1.json").iter_errors(alert)), orjson.dumps(alert)
    worker.stop()


# ---------------------------------------------------------------- corroboration
TALKS = ("Turkish mediators said they were open to hosting peace talks between Kyiv and Moscow next month, "
         "the foreign ministry in Ankara said on Tuesday. Diplomats described the offer as serious. {rid}")
MINOR = "Officials in Odesa discussed a possible prisoner exchange with local volunteers. {rid}"


def test_one_story_alert_grows_from_one_camp_to_confirmed_across_camps(isolated_kafka):
    """Our own copies of one story arrive in turn: a TASS wire reprinted by three sites, then a Ukrinform
    report, then a Reuters report. One alert id; each version says who reports the story and its severity
    rises one level per registry rule the story meets (second camp, then three camps)."""
    from streams.records import validator

    worker = isolated_kafka.start_worker(app_id=f"sw-corr-{uuid.uuid4().hex[:6]}")
    settings = worker.settings
    rid = uuid.uuid4().hex[:10]
    text = TALKS.format(rid=rid)
    tass = [{"id": f"{rid}-tass-{i}", "title": "", "text": "ANKARA, November 24. /TASS/. " + text, "source": "",
             "url": f"https://{host}/world/{rid}"} for i, host in enumerate(["ria.ru", "www.rt.com", "m.lenta.ru"])]
    ukrinform = {"id": f"{rid}-ukr", "title": "", "text": text, "source": "Ukrinform",
                 "url": f"https://www.ukrinform.net/rubric-polytics/{rid}.html"}
    reuters = {"id": f"{rid}-reu", "title": "", "text": "ANKARA, Nov 24 (Reuters) - " + text, "source": "",
               "url": f"https://www.reuters.com/world/europe/{rid}/"}

    def story(a):  # the story's per-item alert (not the talks tracker's thread transitions)
        return a["item_ids"][0].startswith(rid) and not a["item_ids"][0].startswith(f"{rid}-m") \
            and "thread_id" not in a

    versions = []
    for step, items in enumerate(([*tass], [ukrinform], [reuters]), start=1):
        send_items(settings, items, [i["id"].encode() for i in items])
        versions = collect(settings, settings.topics.negotiation, story, step, timeout=60, settle=4)
        assert len(versions) == step, [v.get("corroboration", {}).get("summary") for v in versions]
    assert len({v["alert_id"] for v in versions}) == 1  # one alert, three versions
    first, second, third = (v["corroboration"] for v in versions)
    assert (first["origins"]["names"], first["camps"]["names"]) == (["TASS"], ["russia-state"])
    assert first["summary"] == "claimed by Russian state media only (TASS)"
    assert (second["origins"]["names"], second["camps"]["names"]) == (["TASS", "Ukrinform"],
                                                                      ["russia-state", "ukraine-official"])
    assert second["summary"] == ("reported by Russian state media (TASS) and confirmed by Ukrainian officials "
                                 "(Ukrinform)")
    assert second["outlets"]["count"] == 4 and second["copies"]["count"] == 4  # the three reprints are kept
    assert third["origins"]["count"] == 3 and third["camps"]["count"] == 3
    assert third["summary"].startswith("confirmed across camps: ") and "(Reuters)" in third["summary"]
    assert [(v["base_severity"], v["severity"]) for v in versions] == \
        [("medium", "medium"), ("medium", "high"), ("medium", "critical")]
    assert [c["rules"] for c in (first, second, third)] == [[], ["second-camp"], ["second-camp", "across-camps"]]
    assert {c["id"] for c in third["copies"]["listed"]} == {i["id"] for i in [*tass, ukrinform, reuters]}
    for v in versions:
        assert not list(validator("alert.v1.json").iter_errors(v)), orjson.dumps(v)

    # a story too minor for an alert becomes one when a second camp reports it
    minor = [{"id": f"{rid}-m{i}", "title": "", "text": MINOR.format(rid=rid), "source": source}
             for i, source in enumerate(["TASS", "Suspilne"])]
    send_items(settings, minor[:1], [minor[0]["id"].encode()])
    assert collect(settings, settings.topics.tagged, lambda v: v.get("id") == minor[0]["id"], 1, timeout=60)
    send_items(settings, minor[1:], [minor[1]["id"].encode()])
    got = collect(settings, settings.topics.negotiation, lambda a: minor[0]["id"] in a["item_ids"], 1,
                  timeout=60, settle=4)
    assert [(a["base_severity"], a["severity"], a["corroboration"]["camps"]["names"]) for a in got] \
        == [("low", "medium", ["russia-state", "ukraine-media"])], got
    metrics = worker.metrics()
    assert metric_value(metrics, "signalwatch_corroborations_total") >= 3
    assert metric_value(metrics, "signalwatch_alerts_by_camp_mix_total", '{camp_mix="russia-state"}') >= 1
    assert metric_value(metrics, "signalwatch_alerts_single_camp_total", '{single="false"}') >= 3
    worker.stop()


def test_strikes_held_back_with_no_follow_up_arrive_as_one_digest(isolated_kafka):
    """Five strikes of one key (escalation, shelling, Russia) within a 5 s cooldown and nothing after them:
    one alert, then, at the stage's next 30 s tick after the cooldown, one digest that counts the other four."""
    from streams.records import validator

    worker = isolated_kafka.start_worker(extra_env={"SIGNALWATCH_ALERT_COOLDOWN": "5"})
    settings = worker.settings
    rid = uuid.uuid4().hex[:10]
    start = time.time() - 30
    towns = ["Sumy", "Kherson", "Nikopol", "Kupiansk", "Izium"]
    strikes = [{"id": f"{rid}-d{i}", "title": f"Artillery shells {town}", "source": "wire",
                "published_at": _iso(start + i),
                "text": f"Russian artillery shelled {town} overnight, local officials said, damaging houses and "
                        f"a school. Residents were asked to stay near shelters. Report {rid}."}
               for i, town in enumerate(towns)]
    send_items(settings, strikes, [i["id"].encode() for i in strikes])

    def ours(a):
        return any(i.startswith(rid) for i in a["item_ids"])

    def digest(a):
        return ours(a) and a.get("digest") is True

    found = collect(settings, settings.topics.escalation, digest, 1, timeout=120, settle=5)
    assert len(found) == 1, found
    alerts = [a for a in collect(settings, settings.topics.escalation, ours, 2, timeout=10) if not a.get("digest")]
    assert len(alerts) == 1, alerts
    sent = set(alerts[0]["item_ids"])
    got = found[0]
    counted = got["suppressed"]
    assert counted["count"] == 4 and set(counted["item_ids"]) == {s["id"] for s in strikes} - sent
    held_towns = {town for town, s in zip(towns, strikes, strict=True) if s["id"] not in sent}
    assert {town for town in towns for line in counted["summaries"] if f"Artillery shells {town}" in line} == held_towns
    assert len(counted["summaries"]) == 4 and got["summary"].startswith("+4 more held back: ")
    assert got["severity"] == counted["highest_severity"] and got["type"] == "escalation"
    assert not list(validator("alert.v1.json").iter_errors(got)), got
    # (this worker also reads the module's earlier items, whose held-back alerts get digests too: at least ours)
    assert metric_value(worker.metrics(), "signalwatch_alert_digests_total", '{type="escalation"}') >= 1
    worker.stop()
