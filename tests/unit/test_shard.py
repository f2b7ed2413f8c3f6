"""The story shard alone (streams.analytics.shard): dedup, corroboration, cooldown, trend windows, replay,
restore and memory bounds over plain dicts, with entries made by the process stage's own function."""

from __future__ import annotations

import base64
import random
import time
import zlib
from pathlib import Path

import orjson
import pytest

from streams import sources
from streams.analytics import cooldown
from streams.analytics.dedup import Features, Story
from streams.analytics.shard import (
    BuiltAlert,
    Config,
    Entry,
    StoryShard,
    batch_records,
    read_batch,
    read_segment,
    unpack_alerts,
)
from streams.processing import process_item
from streams.records import now_iso
from streams.settings import Settings
from streams.sources import load_registry
from streams.tagging import load_tagger
from tests.unit.shard_inputs import entry, keep

STORY = ("Russian forces launched a massive missile strike on Kyiv overnight, hitting energy infrastructure in "
         "three districts. Ukraine's air force said it shot down 41 of 58 missiles. Power outages were "
         "reported across the capital and in the Kharkiv region, the grid operator said.")
HIGH = ("Artillery shelled the outskirts of Nikopol overnight, local officials said, damaging two houses and a "
        "school. Regional authorities said repair crews would restore water supplies by the evening, and residents "
        "were asked to stay near shelters until the all-clear.")
"""A story whose alert is high, not critical: a corroboration can raise it."""
FILLER = ["reportedly", "officials", "that day", "(AP)", "said", "late", "again", "local"]
NUMBER_WORDS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}


WORDS = ("bakery tram river bridge harvest school clinic market museum choir stadium library orchard factory "
         "ferry tower garden festival hospital depot quarry vineyard mill harbour").split()


@pytest.fixture(scope="module")
def tagger():
    return load_tagger()


def edited(text: str, rng: random.Random) -> str:
    """Another outlet's copy: a byline and three plain words replaced. Names, numbers and days are kept: a
    copy that changes the place or a figure reports another event (streams.analytics.event_identity)."""
    words = text.split()
    plain = [i for i, w in enumerate(words) if w.isalpha() and w.islower() and w not in NUMBER_WORDS]
    for i in rng.sample(plain, 3):
        words[i] = rng.choice(FILLER)
    return f"By staff reporter {rng.choice(['Ana', 'Ben', 'Oksana', 'Taras'])}. " + " ".join(words)


def copies(tagger, n: int, start: int = 0, text: str = STORY) -> list[Entry]:
    rng = random.Random(start)
    return [entry(tagger, {"id": f"copy-{i}", "text": text if i % 2 == 0 else edited(text, rng),
                           "url": f"https://site{i % 10}.example/{i}", "source": f"site{i % 10}",
                           "published_at": "2024-03-01T10:00:00Z"}) for i in range(start, start + n)]


def test_hundred_copies_from_unlisted_sites_make_one_story_and_one_alert(tagger):
    shard = StoryShard(Config(alert_cooldown=0))
    batch = copies(tagger, 100, text=HIGH)
    out = shard.decide(batch[:40], offset=0, now=1000.0)
    out2 = shard.decide(batch[40:], offset=1, now=1001.0)
    assert [t["id"] for t, _ in out.tagged] == ["copy-0"] and not out2.tagged
    assert len(out.duplicates) + len(out2.duplicates) == 99
    assert (out.duplicates + out2.duplicates).count("near") >= 50  # the edited copies
    (alert,) = [a for a, _ in out.alerts if a["type"] == "escalation"]
    assert alert["item_ids"] == ["copy-0"] and alert["corroboration"]["origins"]["names"] == ["site0"]
    assert alert["corroboration"]["camps"]["names"] == ["other"] and alert["severity"] == alert["base_severity"]
    # site1 … site9 are unlisted (camp "other"): they prove little, so they send no new version
    assert out.corroborations == out2.corroborations == 0 and not out2.alerts
    assert [c["outlet_name"] for c in shard.copies("copy-0")] == [f"site{i}" for i in range(10)]  # all kept


def test_a_rule_that_counts_unlisted_sites_makes_their_copies_count(tagger, tmp_path):
    """The shard skips corroborating a copy from an unlisted site only while no rule counts them."""
    bundled = Path(sources.__file__).with_name("registry.yaml").read_text(encoding="utf-8")
    rule = ("    - id: many-sites\n      description: three sites of any kind\n      min_origins: 3\n"
            "      camps: [other]\n")
    assert bundled.count("\n  rules:\n") == 1
    (tmp_path / "registry.yaml").write_text(bundled.replace("\n  rules:\n", "\n  rules:\n" + rule), encoding="utf-8")
    shard = StoryShard(Config(alert_cooldown=0), load_registry(tmp_path / "registry.yaml"))
    out = shard.decide(copies(tagger, 5, text=HIGH), offset=0, now=1000.0)
    assert out.corroborations == 1  # the third site
    (first, again) = [a for a, _ in out.alerts if a["type"] == "escalation"]
    assert first["alert_id"] == again["alert_id"] and again["corroboration"]["rules"] == ["many-sites"]
    assert again["corroboration"]["origins"]["names"] == ["site0", "site1", "site2"]


def test_a_story_rises_as_camps_confirm_it(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    text = ("{lead}Russian air defences shot down Ukrainian drones over the Belgorod region overnight, damaging a "
            "power substation and a school, the regional governor said, and repair crews were sent out.")
    tass = [entry(tagger, {"id": f"t{i}", "text": text.format(lead="MOSCOW, November 20. /TASS/. "),
                           "source": site, "published_at": "2024-03-01T10:00:00Z"})
            for i, site in enumerate(["rt.com", "ria.ru", "lenta.ru"])]
    ukr = entry(tagger, {"id": "u", "text": text.format(lead=""), "source": "Ukrinform",
                         "published_at": "2024-03-01T10:00:00Z"})
    reuters = entry(tagger, {"id": "r", "text": text.format(lead="KYIV, Nov 20 (Reuters) - "),
                             "source": "Reuters", "published_at": "2024-03-01T10:00:00Z"})
    first = shard.decide(tass, offset=0, now=1000.0)
    assert first.duplicates and first.corroborations == 0
    # the first copy's alert; the reprints of the same wire add no origin, so no new version
    (alert,) = [a for a, _ in first.alerts if a["type"] == "escalation"]
    c = alert["corroboration"]
    assert (c["origins"]["names"], c["camps"]["names"], c["outlets"]["count"]) == (["TASS"], ["russia-state"], 1)
    assert c["summary"] == "claimed by Russian state media only (TASS)" and alert["severity"] == alert["base_severity"]
    (second,) = [a for a, _ in shard.decide([ukr], offset=1, now=1001.0).alerts]
    (third,) = [a for a, _ in shard.decide([reuters], offset=2, now=1002.0).alerts]
    assert alert["alert_id"] == second["alert_id"] == third["alert_id"]
    assert second["corroboration"]["camps"]["names"] == ["russia-state", "ukraine-official"]
    assert second["corroboration"]["outlets"]["count"] == 4 and second["corroboration"]["copies"]["count"] == 4
    assert second["corroboration"]["summary"].startswith("reported by Russian state media (TASS) and confirmed by")
    assert third["corroboration"]["origins"]["count"] == 3 and third["corroboration"]["camps"]["count"] == 3
    assert third["corroboration"]["summary"].startswith("confirmed across camps")
    levels = ["low", "medium", "high", "critical"]
    base = levels.index(alert["base_severity"])
    assert [levels.index(a["severity"]) for a in (alert, second, third)] == [base, min(base + 1, 3), min(base + 2, 3)]


def test_changes_are_one_story_segment_per_record_and_one_write_per_changed_key(tagger):
    shard = StoryShard(Config())
    items = [entry(tagger, {"id": f"i{i}", "title": f"Shelling of district {i} in Kharkiv", "text": f"Talk {i}.",
                            "published_at": "2024-03-01T10:00:00Z"}) for i in range(50)]
    shard.decide(items, offset=7, now=1000.0)
    changes = shard.flush()
    assert list(changes.stories) == [b"%020d" % 7]
    assert len(changes.cooldown) <= 2  # per cooldown key, not per alert
    assert 0 < len(changes.windows) < 10  # per window entry changed, not per item and key
    assert len(shard.flush()) == 0


def test_a_replayed_record_resends_its_outputs_and_counts_nothing_twice(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    batch = [entry(tagger, {"id": "a", "title": "Russian missile strike on Kharkiv kills five",
                            "text": STORY, "published_at": "2024-03-01T10:00:00Z"}),
             entry(tagger, {"id": "a", "title": "Russian missile strike on Kharkiv kills five",
                            "text": STORY, "published_at": "2024-03-01T10:00:00Z"})]
    out = shard.decide(batch, offset=3, now=1000.0)
    counts = {k: d["n"] for k, d in shard.windows.items()}
    again = shard.decide(batch, offset=3, now=1001.0)  # a crash before the commit: the record comes again
    assert [t["id"] for t, _ in again.tagged] == [t["id"] for t, _ in out.tagged] == ["a"]
    assert [a["alert_id"] for a, _ in again.alerts] == [a["alert_id"] for a, _ in out.alerts] != []
    assert out.duplicates == ["id"] and out.redelivered == 0
    assert again.duplicates == [] and again.redelivered == 2  # counted apart from real duplicates
    assert {k: d["n"] for k, d in shard.windows.items()} == counts
    assert Story.loads("a", shard.index.records["a"]).copies == 2  # the replayed copy is not counted again
    later = shard.decide(batch[:1], offset=4, now=1002.0)  # the same id later is a duplicate
    assert not later.tagged and later.duplicates == ["id"] and not later.alerts


def test_state_survives_a_restore_from_what_flush_wrote(tagger):
    stored = {"stories": {}, "cooldown": {}, "windows": {}}


    shard = StoryShard(Config(alert_cooldown=1800))
    batch = copies(tagger, 30)
    shard.decide(batch[:2], offset=0, now=1000.0)
    keep(stored, shard.flush())
    shard.decide(batch[2:3], offset=1, now=1000.0)  # a third site
    keep(stored, shard.flush())
    windows = {k: d["n"] for k, d in shard.windows.items()}

    restored = StoryShard(Config(alert_cooldown=1800))
    restored.restore(stored["stories"].items(), stored["cooldown"].items(), stored["windows"].items())
    assert {k: d["n"] for k, d in restored.windows.items()} == windows
    assert restored.last_alert == shard.last_alert
    out = restored.decide(batch[3:], offset=2, now=1001.0)
    assert not out.tagged and len(out.duplicates) == 27
    assert out.corroborations == 0
    assert restored.copies("copy-0")[:3] == shard.copies("copy-0")[:3]  # kept before the restore
    assert len(restored.copies("copy-0")) == 10  # site3 … site9 added after it, no repeat of site0-2
    assert Story.loads("copy-0", restored.index.records["copy-0"]).copies == 30


def test_segments_of_earlier_formats_restore_the_same_state(tagger):
    """A worker upgraded in place restores changelogs written by earlier versions: story segments with their
    records inside the zlib stream (v2), or with records and alerts in base64 inside the compressed JSON."""
    shard = StoryShard(Config(alert_cooldown=1800))
    stored = {"stories": {}, "cooldown": {}, "windows": {}}
    news = [entry(tagger, {"id": f"n{i}", "title": f"Russian missile strike on {city} kills {i + 2}", "text": STORY,
                           "published_at": "2024-03-01T10:00:00Z"}) for i, city in enumerate(["Kharkiv", "Odesa"])]
    for offset, batch in enumerate([news + copies(tagger, 3), copies(tagger, 4, start=3)]):
        shard.decide(batch, offset=offset, now=1000.0 + offset)
        keep(stored, shard.flush())
    first_format, v2 = {}, {}
    for key, value in stored["stories"].items():
        segment, records, alerts = read_segment(value)
        assert segment["v"] == 3 and set(records) <= set(segment["new"]) and set(alerts) <= set(records)
        old = {k: v for k, v in segment.items() if k != "v"} | {
            "new": {sid: base64.b64encode(raw).decode() for sid, raw in records.items()},
            "alerts": {sid: base64.b64encode(blob).decode() for sid, blob in alerts.items()}}
        first_format[key] = zlib.compress(orjson.dumps(old), 1)
        v2[key] = (zlib.compress(orjson.dumps(segment | {"v": 2}) + b"\n" + b"".join(records.values()), 1)
                   + b"".join(alerts.values()))
    assert any(read_segment(v)[2] for v in stored["stories"].values())  # alerts kept, not only records
    restored = {}
    for name, stories in (("v3", stored["stories"]), ("v2", v2), ("first", first_format)):
        restored[name] = StoryShard(Config(alert_cooldown=1800))
        restored[name].restore(stories.items(), stored["cooldown"].items(), stored["windows"].items())
    for s in restored.values():
        assert s.index.records == shard.index.records and s._alerts == shard._alerts
        assert s._copies == shard._copies and s._segment_meta == shard._segment_meta
    with pytest.raises(ValueError):
        read_segment(next(iter(stored["stories"].values()))[:-3])


def report(tagger, item_id: str, title: str, lead: str, i: int, t: int) -> Entry:
    """A report of its own (distinct stories, not near-duplicates: twelve of ``WORDS`` drawn by ``i``)
    published at epoch ``t``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    words = " ".join(random.Random(i).sample(WORDS, 12))
    return entry(tagger, {"id": item_id, "title": title, "text": f"{lead} {words}.", "published_at": stamp})


def shelling(tagger, i: int, t: int) -> Entry:
    return report(tagger, f"s{i}-{t}", f"Shelling of village {i} near Kherson",
                  "Artillery shelled the village overnight.", i, t)


def talks(tagger, i: int, t: int) -> Entry:
    return report(tagger, f"t{i}-{t}", f"Ceasefire talks resume, round {i}",
                  "Ukrainian and Russian delegations met for peace talks on a ceasefire.", i, t)


def test_a_burst_after_a_quiet_baseline_is_one_surge_alert(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    base = 1_709_287_200  # 2024-03-01T10:00:00Z, a window start
    offset = 0

    surges = []
    for w in range(8):  # one item per 15-minute window: the baseline
        offset += 1
        surges += [a for a, _ in shard.decide([shelling(tagger, w, base - (8 - w) * 900)], offset, 1000.0).alerts
                   if a["type"] == "trend" and a["rule"] == "surge"]
    burst = [shelling(tagger, 100 + i, base + 60 + i) for i in range(12)]
    for e in burst:
        offset += 1
        surges += [a for a, _ in shard.decide([e], offset, 1000.0).alerts if a["type"] == "trend"
                   and a["rule"] == "surge"]
    keys = [(a["key"], a["window_seconds"]) for a in surges]
    assert ("escalation/shelling", 900) in keys
    assert len(keys) == len(set(keys))  # one alert per key and window


def test_a_window_under_the_least_surging_count_computes_no_baseline(tagger):
    """A window surges only at ``trend_min_count`` items or more, so a sparser one needs no baseline to tell:
    the shard computes only the baseline that the activity index reads (its kind's total, base window). Each
    window that the latency phase of ``make bench`` opens holds one item: every baseline computed for them
    was ~40% of the shard's instructions on those items."""
    shard = StoryShard(Config(alert_cooldown=1800))
    base = 1_709_287_200
    for w in range(6):  # one item per two hours: every window new, every count 1
        out = shard.decide([shelling(tagger, w, base + w * 7200)], w + 1, 1000.0)
        assert not [a for a, _ in out.alerts if a["type"] == "trend"]
        assert out.index["escalation"] > 0
    assert set(shard._baselines) == {"escalation/*"}
    assert {size for size, _ in shard._baselines["escalation/*"]} == {900}


def test_a_surge_alert_does_not_depend_on_how_the_items_were_batched(tagger):
    """The same items, one per input record or all in one: the same surge alerts, each with the count that
    crossed its threshold. A surge checked once per record, at its last item (9.6% fewer instructions for the
    shard on the bench's items), reported the record's count instead, which depends on the process stage's
    batching: an alert was then no longer a function of the items alone."""
    base = 1_709_287_200

    def surges(batches: list[list[Entry]]) -> list[dict]:
        shard = StoryShard(Config(alert_cooldown=1800))
        found = []
        for offset, batch in enumerate(batches):
            found += [{k: v for k, v in a.items() if k != "created_at"}
                      for a, _ in shard.decide(batch, offset, 1000.0).alerts if a["type"] == "trend"]
        return found

    quiet = [[shelling(tagger, w, base - (8 - w) * 900)] for w in range(8)]
    burst = [shelling(tagger, 100 + i, base + 60 + i) for i in range(12)]
    one_each, all_in_one = surges(quiet + [[e] for e in burst]), surges(quiet + [burst])
    surge = [a for a in all_in_one if a["key"] == "escalation/shelling" and a["window_seconds"] == 900]
    assert len(surge) == 1 and surge[0]["count"] == 5  # max(min count 5, 1 + 3 * 1): the crossing count
    assert all_in_one == one_each


def test_a_cached_trend_baseline_is_the_one_computed_afresh(tagger):
    """Talks reports that lag the shelling reports by an hour (a feed read late): after every record, each
    baseline the shard keeps is the one it computes from the windows as they are. A divergence check reads
    the other kind's baseline at a window that kind has not reached; a later item of that kind, in an
    earlier window of that baseline's lookback, must refresh it."""
    shard = StoryShard(Config(alert_cooldown=1800))
    base = 1_709_287_200
    items = [e for w in range(12) for e in (shelling(tagger, w, base + w * 900 + 60),
                                            talks(tagger, w, base + (w - 4) * 900 + 60))]
    checked = 0
    for offset, e in enumerate(items):
        shard.decide([e], offset, 1000.0)
        kept, high = shard._baselines, shard._baseline_high
        for key, cached in list(kept.items()):
            for (size, start), baseline in cached.items():
                shard._baselines, shard._baseline_high = {}, {}
                assert shard._baseline(size, key, start) == baseline, (offset, key, size, start)
                checked += 1
        shard._baselines, shard._baseline_high = kept, high
    assert checked > 100 and "negotiation/*" in shard._baselines


def test_trend_windows_are_bounded_by_the_story_cap_oldest_first(tagger):
    """A backlog of two days of news, read in a minute of wall time: the windows it opens stay bounded."""
    shard = StoryShard(Config(max_stories=20))
    day0 = 1_709_287_200
    wall = day0 + 8 * 86400.0  # the backlog is read after the fact
    for h in range(48):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day0 + h * 3600))
        e = entry(tagger, {"id": f"hour{h}", "title": f"Missile strike on Odesa port, hour {h}",
                           "text": "Russian missiles hit the port overnight.", "published_at": stamp})
        shard.decide([e], h, now=wall + h)
        shard._last_sweep = float("-inf")  # sweep after every record (it runs every 30 s of wall time)
        assert len(shard.windows) <= 20
    assert min(start for _, _, start in shard.windows) >= day0 + 40 * 3600  # the newest kept
    assert any(v is None for v in shard.flush().windows.values())  # the forgotten ones are deleted from the table


def test_memory_is_bounded_by_the_cap_and_by_the_horizon(tagger):
    shard = StoryShard(Config(max_stories=100, dedup_horizon=3600))
    evicted = 0
    for offset in range(10):
        batch = [entry(tagger, {"id": f"n{offset}-{i}", "title": f"Report {offset} {i}",
                                "text": f"Unrelated words {offset * 100 + i} about weather"}) for i in range(40)]
        evicted += shard.decide(batch, offset, now=1000.0 + offset).evicted
    assert len(shard.index) <= 100 and evicted == 400 - len(shard.index)
    assert len(shard.segments) <= 3
    out = shard.decide([], 11, now=1000.0 + 3601 + 10)  # everything past the horizon
    assert len(shard.index) == 0 and not shard.segments and out.evicted == 0
    assert all(v is None for v in shard.flush().stories.values())


def test_the_story_cap_bounds_the_stories_and_the_bytes_kept_for_them(tagger):
    """Realistic items (bench/items.py: headlines, summaries, articles, repeats and syndicated copies) past a
    cap of 300 stories: the count stays at the cap and what the shard and its table keep stops growing;
    every per-story store forgets an evicted story."""
    import gc
    import tracemalloc

    from bench.items import items as bench_items

    settings = Settings()
    records = [batch_records([process_item(orjson.dumps(x), settings, tagger, now_iso(), 0.0).wire()
                              for _, x in batch])[0]
               for batch in (lambda made: [made[i:i + 100] for i in range(0, 1500, 100)])(bench_items(1500))]
    shard = StoryShard(Config(max_stories=300))
    table: dict[bytes, bytes] = {}  # the story_segments table's data, as the stage keeps it
    traced = []
    gc.collect()
    tracemalloc.start()
    try:
        for offset, value in enumerate(records):
            out = shard.decide(read_batch(value), offset, now=1000.0 + offset)
            for key, segment in shard.flush().stories.items():
                table.pop(key, None) if segment is None else table.__setitem__(key, segment)
            assert len(shard.index) <= 300 and (offset < 3 or out.evicted)
            gc.collect()
            traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    stories = set(shard.index.records)
    assert set(shard._copies) == stories and set(shard._alerts) <= stories  # evicted stories left no trace
    assert {sid for _, ids in shard._segment_meta.values() for sid in ids} >= stories
    assert len(shard._segment_meta) == len(shard.segments) <= 4 and set(table) == {b"%020d" % o for o in shard.segments}
    assert max(traced[5:]) < 1.3 * traced[4], traced  # flat once the cap is reached (15 batches, 5x the cap)


def test_batch_records_respect_the_size_cap(tagger):
    made = [entry(tagger, {"title": f"Talks on a ceasefire resume in Geneva, round {i}"}) for i in range(10)]
    parts = [e.wire() for e in made]
    size = sum(len(head) + len(raw) for head, raw in parts[:3])
    records = batch_records(parts, max_bytes=size + 10)
    assert len(records) == 4 and all(len(r) < size + 200 for r in records)
    entries = [e for r in records for e in read_batch(r)]
    assert [e.tagged["title"] for e in entries] == [f"Talks on a ceasefire resume in Geneva, round {i}" for i in range(10)]
    assert [e.tagged.raw for e in entries] == [e.tagged.raw for e in made]  # the tagged records travel unchanged
    assert [e.features for e in entries] == [e.features for e in made]
    assert batch_records([]) == []


def test_a_record_of_the_previous_version_still_reads(tagger):
    made = entry(tagger, {"title": "Russian missiles strike Odesa port overnight"})
    head = orjson.loads(made.wire()[0])
    v1 = {k: v for k, v in head.items() if k not in ("t", "n", "a", "za")} | {
        "tagged": dict(made.tagged), "alerts": [dict(a) for a in made.alerts], "f": made.features.wire(),
        "c": made.copy}
    [again] = read_batch(orjson.dumps({"v": 1, "entries": [v1]}))
    assert again.tagged.raw == made.tagged.raw and again.tagged.facts() == made.tagged.facts()
    assert again.features == made.features and again.alerts == made.alerts


def test_the_shard_decodes_only_the_alerts_it_sends(tagger):
    """Read from a record, an alert is its header's facts; the whole alert is decoded only when it is sent,
    and is then the alert the process stage built. Three strikes of one key within the cooldown: the first
    is sent, the other two are held back on their facts alone."""
    shard = StoryShard(Config(alert_cooldown=3600))
    made = [entry(tagger, {"id": f"s{i}", "title": title, "published_at": "2024-03-01T10:00:00Z"})
            for i, title in enumerate(["Russian glide bombs strike Zaporizhzhia industrial district",
                                       "Russian glide bombs hit a market in Kharkiv",
                                       "Guided aerial bombs struck Sumy city centre, Russia's army said"])]
    read = read_batch(batch_records([e.wire() for e in made])[0])
    alerts = [a for e in read for a in e.alerts]
    assert all(type(a) is BuiltAlert for a in alerts) and len(alerts) >= 3
    out = shard.decide(read, offset=0, now=1000.0)
    sent = [a for a, _ in out.alerts]
    held = [reason for _, reason in out.suppressed]
    assert len(sent) == 1 and held.count("cooldown") == len(alerts) - 1
    assert sent[0] == made[0].alerts[0] and type(sent[0]) is dict
    assert [a._doc is not None for a in alerts] == [True] + [False] * (len(alerts) - 1)
    assert shard.last_alert[cooldown.cooldown_key(made[0].alerts[0])]["held"]["summaries"] == [
        e.alerts[0]["summary"] for e in made[1:]]


def test_a_record_shorter_than_its_header_is_refused(tagger):
    [record] = batch_records([entry(tagger, {"title": "Drones hit Kharkiv"}).wire()])
    with pytest.raises(ValueError):
        read_batch(record[:-5])


def test_an_entry_with_alert_facts_but_no_packed_alerts_is_refused(tagger):
    """Refused when read (the stage dead-letters the record), not when one of its alerts is sent."""
    e = entry(tagger, {"title": "Russian missiles strike Odesa port overnight"})
    d = orjson.loads(e.wire()[0])
    assert d["a"] and d["za"]
    del d["za"]
    d |= {"f": e.features.wire(), "c": e.copy}  # format 2: the features and the copy record in the header
    with pytest.raises(ValueError, match="packed"):
        read_batch(b'{"v":2,"entries":[' + orjson.dumps(d) + b"]}\n" + e.tagged.raw)


def test_a_record_of_the_previous_format_reads_the_same_entries(tagger):
    """news.processed records written by the previous version (features in the header, in base64) are read
    after an upgrade as the current ones are."""
    entries = copies(tagger, 3, text=HIGH) + [entry(tagger, {"title": "Weather is mild in Lviv"})]
    heads, raws = [], []
    for e in entries:
        d = orjson.loads(e.wire()[0]) | {"f": e.features.wire(), "c": e.copy}
        del d["cn"]
        heads.append(orjson.dumps(d))
        raws.append(e.tagged.raw + e.packed_alerts)
    older = b'{"v":2,"entries":[' + b",".join(heads) + b"]}\n" + b"".join(raws)
    [current] = batch_records([e.wire() for e in entries])
    for old, new, e in zip(read_batch(older), read_batch(current), entries, strict=True):
        assert old.features == new.features == e.features and old.features.bands == new.features.bands
        assert old.tagged.raw == new.tagged.raw and old.packed_alerts == new.packed_alerts
        assert old.copy == new.copy == e.copy


def test_batch_records_match_their_schema(tagger):
    import jsonschema
    from referencing import Registry, Resource

    from streams.records import load_schema

    entries = copies(tagger, 3, text=HIGH) + [entry(tagger, {"title": "Weather is mild in Lviv"})] + [entry(tagger, {
        "title": "Ceasefire talks in Riyadh", "text": "Russian and Ukrainian delegations will meet in Riyadh for "
        "ceasefire talks, with US mediators present."})]  # the tracker's reading of its text in the facts
    assert entries[-1].tagged.talks_text[:2] == [["Riyadh"], []] and entries[-1].tagged.talks_text[2]
    for i, e in enumerate(entries[:2]):
        e.raw = (3, 100 + i)  # where it was read (news.raw partition, offset); absent in older records
    [record] = batch_records([e.wire() for e in entries])
    names = ("processed-batch.v3.json", "tagged-item.v1.json", "alert.v1.json")
    registry = Registry().with_resources(
        (load_schema(n)["$id"], Resource.from_contents(load_schema(n))) for n in names)
    validator = jsonschema.Draft202012Validator(load_schema(names[0]), registry=registry)
    head, _, blob = record.partition(b"\n")
    assert not list(validator.iter_errors(orjson.loads(head)))
    tagged = jsonschema.Draft202012Validator(load_schema(names[1]), registry=registry)
    alert = jsonschema.Draft202012Validator(load_schema(names[2]), registry=registry)
    at = 0
    for e in orjson.loads(head)["entries"]:
        assert not list(tagged.iter_errors(orjson.loads(blob[at:at + e["n"]])))
        at += e["n"]
        if e["a"]:  # the packed alerts follow: the alerts whose facts the header has, with the item's event time
            event_time, alerts = unpack_alerts(blob[at:at + e["za"]])
            assert [BuiltAlert.facts_of(a) for a in alerts] == e["a"] and event_time == e["t"][1]
            assert not [err for a in alerts for err in alert.iter_errors(a)]
            at += e["za"]
        else:
            assert "za" not in e
        n = sum(e["f"][5:8])  # the features' bytes: signature, band keys, event key
        made = next(x for x in entries if x.features.item_id == e["f"][0])
        assert Features.from_parts(e["f"], blob[at:at + n]) == made.features
        at += n
        copy = orjson.loads(blob[at:at + e["cn"]])  # the copy record
        assert copy == made.copy and copy["id"] == made.tagged.item_id and copy["camp"] in (
            "ukraine-official", "ukraine-media", "russia-state", "russia-independent", "western", "international", "other")
        at += e["cn"]
    assert at == len(blob) and sum("za" in e for e in orjson.loads(head)["entries"]) == 4  # all but the weather
    assert list(validator.iter_errors({"v": 3, "entries": [{"t": [], "n": 0, "a": [], "f": [], "trend": None,
                                                           "r": 0}]}))


def test_records_re_read_by_the_stall_guard_are_handled_once():
    from types import SimpleNamespace as M

    from faust.types import TP

    from streams.stages import ReadOnce

    read = ReadOnce()
    batch = [M(topic="news.processed", partition=5, offset=o) for o in (0, 1, 2, 4, 5)]  # 3 was dropped
    assert read.fresh(batch) == batch
    again = [M(topic="news.processed", partition=5, offset=o) for o in range(7)]  # re-read from 0
    assert [m.offset for m in read.fresh(again)] == [3, 6]
    assert [m.offset for m in read.fresh([M(topic="news.raw", partition=5, offset=3)])] == [3]  # other topic
    read.prune({TP("news.processed", 5): 5})
    assert [m.offset for m in read.fresh(again)] == [0, 1, 2, 3, 4]  # below the commit: forgotten
    read.clear()
    assert read.fresh(batch) == batch


def test_a_record_without_packed_alerts_is_read_with_the_same_packed_alerts(tagger):
    """Records written before the process stage packed the alerts: the shard packs them itself, the same."""
    e = copies(tagger, 1, text=HIGH)[0]
    head, raw = e.wire()
    d = orjson.loads(head)
    assert d["za"] == len(e.packed_alerts) > 0
    del d["za"], d["a"]
    d["alerts"] = [dict(a) for a in e.alerts]  # those records carried the whole alerts
    d |= {"f": e.features.wire(), "c": e.copy}  # and the features and copy record in the header (format 2)
    older = b'{"v":2,"entries":[' + orjson.dumps(d) + b"]}\n" + e.tagged.raw
    [read] = read_batch(older)
    assert read.packed_alerts == e.packed_alerts and read.alerts == e.alerts
    assert read_batch(batch_records([e.wire()])[0])[0].packed_alerts == e.packed_alerts
