"""Pure analytics: near-duplicate sketches, the dedup index, windows and surges, cooldown."""

from __future__ import annotations

import random

import orjson
import pytest

from streams.analytics import cooldown, similarity, trend
from streams.analytics.dedup import DedupIndex, Features, Story
from streams.analytics.event_identity import EventKey

STORY = ("Russian forces launched a massive missile and drone strike on Kyiv overnight, hitting energy "
         "infrastructure in three districts. Ukraine's air force said it shot down 41 of 58 missiles and 120 "
         "drones. Power outages were reported across the capital and in the Kharkiv region.")
OTHER = ("The Kremlin said on Tuesday it was ready to hold peace talks with Washington in Riyadh next month, "
         "but ruled out any territorial concessions and demanded guarantees that Ukraine stays out of NATO.")


def edit(text: str, rng: random.Random, n: int = 3) -> str:
    """A syndicated copy: a few words replaced or dropped, a byline added."""
    words = text.split()
    for _ in range(n):
        i = rng.randrange(len(words))
        if rng.random() < 0.5:
            words[i] = rng.choice(["reportedly", "officials", "on Monday", "(AP)", "said"])
        else:
            del words[i]
    return f"By staff {rng.randrange(100)}. " + " ".join(words)


@pytest.mark.parametrize(("title", "text"), [
    ("Strike on Kyiv", ""), ("", STORY), ("«Strike» on Kyiv…", "— ﬁve DRONES!"), ("Strike on Kyiv", STORY * 30),
    ("Strike on Kyivs", "w " * 1990 + "longword"),  # cut inside a word
    ("Strike on Kyivs", "w " * 2100),  # cut after a space
    ("Strike on Kyiv", "w " * 2100),  # cut at a word's end
])
def test_shingles_are_the_words_and_word_pairs_of_the_folded_text(title, text):
    folded = similarity.fold(title, text)
    words = folded.split()
    assert similarity.shingles(title, text) == words + [f"{a} {b}" for a, b in zip(words[:-1], words[1:], strict=True)]
    assert len(folded) <= similarity.MAX_CHARS


def test_signature_is_deterministic_and_estimates_similarity():
    a = similarity.signature("Strike on Kyiv", STORY)
    assert a == similarity.signature("Strike on Kyiv", STORY)
    assert len(similarity.pack(a)) == similarity.PACKED_SIZE == 2 * similarity.BINS
    assert similarity.similarity(a, a) == 1.0
    assert similarity.similarity(a, similarity.signature("", OTHER)) < 0.3
    assert similarity.signature("", "") is None
    short = similarity.signature("", "ceasefire")  # fewer shingles than bins: densified, still full
    assert len(short) == similarity.BINS


def test_light_edits_stay_near_and_unrelated_items_stay_apart():
    rng = random.Random(4)
    base = similarity.signature("", STORY)
    near = [similarity.similarity(base, similarity.signature("", edit(STORY, rng))) for _ in range(50)]
    assert sum(s >= 0.6 for s in near) == 50
    far = similarity.signature("", OTHER)
    assert similarity.similarity(base, far) < 0.3
    assert not set(similarity.band_keys(similarity.pack(base))) & set(similarity.band_keys(similarity.pack(far)))


def _features(item_id, text, url="", source="s"):
    return Features.of({"id": item_id, "title": "", "text": text, "url": url, "source": source})


def test_index_finds_exact_url_content_and_near_duplicates():
    index = DedupIndex(0.6)
    first = _features("a", STORY, url="https://www.example.org/story?utm_source=x")
    assert index.check(first) == (None, "")
    index.add(Story.first(first, 100.0))
    assert index.check(first) == ("a", "id")
    assert index.check(_features("b", OTHER, url="http://example.org/story/")) == ("a", "url")
    assert index.check(_features("c", "  " + STORY.upper())) == ("a", "content")
    assert index.check(_features("d", edit(STORY, random.Random(1)))) == ("a", "near")
    assert index.check(_features("e", OTHER)) == (None, "")


def test_a_revised_story_is_compared_by_its_new_signature_not_a_kept_one():
    """The index keeps compared stories' signatures as integers (``sig_ints``): a story whose text an update
    changed must be compared by its new text, and the one kept for its old text must go."""
    index = DedupIndex(0.6)
    first = _features("a", STORY)
    index.add(Story.first(first, 100.0))
    assert index.check(_features("b", edit(STORY, random.Random(1)))) == ("a", "near")
    assert "a" in index.sig_ints
    revised = Story.first(first, 100.0).revised(_features("a", OTHER))
    index.replace(revised)
    assert index.check(_features("c", edit(OTHER, random.Random(2)))) == ("a", "near")
    assert index.check(_features("d", edit(STORY, random.Random(3)))) == (None, "")
    index.remove("a", index.records["a"])
    assert "a" not in index.sig_ints and "a" not in index.records


def test_a_revised_story_is_compared_by_its_new_event_not_a_kept_one():
    """The index keeps compared stories' event keys unpacked (``event_keys``): a story whose update moved
    its event elsewhere must be compared by its new event, and the key kept for the old one must go."""
    def keyed(item_id, text, place, *numbers):
        return Features.of({"id": item_id, "title": "", "text": text, "source": "s"},
                        event=EventKey(places=(place,), numbers=frozenset(numbers)))

    index = DedupIndex(0.6)
    first = keyed("a", STORY, "Kharkiv", 3)
    index.add(Story.first(first, 100.0))
    assert index.check(keyed("b", edit(STORY, random.Random(1)), "Kharkiv")) == ("a", "near")
    assert index.event_keys["a"].places == ("Kharkiv",)  # unpacked: the packed keys differ
    assert index.check(keyed("c", edit(STORY, random.Random(4)), "Odesa")) == (None, "")  # another event
    index.replace(Story.first(first, 100.0).revised(keyed("a", OTHER, "Odesa", 5)))
    assert "a" not in index.event_keys
    assert index.check(keyed("d", edit(OTHER, random.Random(2)), "Odesa")) == ("a", "near")
    assert index.check(keyed("e", edit(OTHER, random.Random(3)), "Kharkiv")) == (None, "")
    index.remove("a", index.records["a"])
    assert "a" not in index.event_keys


def test_one_hundred_copies_make_one_story():
    rng = random.Random(9)
    index = DedupIndex(0.6)
    new = 0
    for i in range(100):
        text = STORY if i % 2 == 0 else edit(STORY, rng)
        f = _features(f"copy-{i}", text, url=f"https://site{i % 7}.example/{i}", source=f"site{i % 7}")
        sid, _ = index.check(f)
        if sid is None:
            new += 1
            index.add(Story.first(f, float(i)))
    assert new == 1 and len(index) == 1


def test_index_expires_and_rebuilds_from_stored_stories():
    index = DedupIndex(0.6)
    stories = []
    for i, text in enumerate([STORY, OTHER]):
        story = Story.first(_features(f"s{i}", text, url=f"https://x.org/{i}"), 1000.0 * i)
        stories.append(story)
        index.add(story)
    assert index.expired(now=900.0, horizon=1000.0) == []
    assert index.expired(now=1800.0, horizon=1000.0) == ["s0"]
    index.remove("s0", index.records["s0"])
    assert index.check(_features("z", STORY)) == (None, "")
    assert index.check(_features("y", "x", url="https://x.org/0")) == (None, "")
    held = [*index.by_url.values(), *index.by_content.values(), *index.by_band.values()]
    assert held and "s0" not in held and all(s == "s1" for s in held)  # every key of s0 went, none of s1
    rebuilt = DedupIndex(0.6)
    rebuilt.rebuild(Story.loads(s.story_id, s.dumps()) for s in stories)
    assert rebuilt.check(_features("z", edit(STORY, random.Random(2)))) == ("s0", "near")
    assert rebuilt.check(_features("y", "x", url="https://x.org/1")) == ("s1", "url")


def test_index_overflow_names_the_oldest_stories_beyond_the_cap():
    index = DedupIndex(0.6)
    for i, text in enumerate([STORY, OTHER, "a third story about something else entirely"]):
        index.add(Story.first(_features(f"s{i}", text, url=f"https://x.org/{i}"), float(i)))
    assert index.overflow(3) == []
    assert index.overflow(1) == ["s0", "s1"]
    for sid in index.overflow(1):
        index.remove(sid, index.records[sid])
    assert len(index) == 1 and index.check(_features("z", STORY)) == (None, "")
    assert index.check(_features("y", "x", url="https://x.org/2")) == ("s2", "url")


def test_story_counts_copies_and_distinct_sources():
    story = Story.first(_features("a", STORY, source="reuters"), 0.0)
    assert story.repeat("ap") and not story.repeat("ap") and not story.repeat("reuters")
    again = Story.loads("a", story.dumps())
    assert again.copies == 4 and again.sources == ["reuters", "ap"]


def test_features_travel_in_the_batch_record():
    f = _features("a", STORY, url="https://x.org/1", source="kyiv independent")
    assert Features.from_wire(orjson.loads(orjson.dumps(f.wire()))) == f
    assert Features.of({"id": "a", "text": STORY, "url": "https://x.org"}, stories=False).url == ""


def test_windows_and_event_time():
    assert trend.window_start(3599.9, 900) == 2700 and trend.window_start(3600, 3600) == 3600
    assert trend.event_time({"published_at": "2024-01-01T00:15:00Z", "received_at": "2026-01-01T00:00:00Z"}) \
        == 1704068100.0
    assert trend.event_time({"received_at": "2026-01-01T00:00:00.000Z"}) == 1767225600.0
    assert trend.iso(1704068100) == "2024-01-01T00:15:00Z"


def test_trend_keys():
    item = {"signals": [{"kind": "escalation", "category": "missile_strike"},
                        {"kind": "escalation", "category": "missile_strike"},
                        {"kind": "negotiation", "category": "ceasefire"}], "actors": ["Russia", "Ukraine"]}
    keys = trend.trend_keys(item)
    assert keys == ["escalation/missile_strike", "negotiation/ceasefire", "escalation/*", "negotiation/*",
                    "actor/Russia", "actor/Ukraine"]
    assert trend.trend_keys({"signals": [], "actors": ["Russia"]}) == []
    negated = {"kind": "escalation", "category": "air_strike", "stance": "negated", "counts": False}
    assert trend.trend_keys({"signals": [negated], "actors": ["Russia"]}) == []
    assert trend.trend_keys({"signals": [negated, *item["signals"][2:]], "actors": []}) == [
        "negotiation/ceasefire", "negotiation/*"]


def test_baseline_and_surge_threshold():
    assert trend.baseline([]) == (0.0, 0.0)
    mean, std = trend.baseline([1] * 8)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0)
    assert trend.threshold(mean, std, 5, 3.0) == 5  # quiet: the minimum count decides
    mean, std = trend.baseline([10, 12, 9, 11, 10, 12, 10, 11])
    assert 10 < mean < 11.5 and 0 < std < 2
    assert trend.threshold(mean, std, 5, 3.0) == pytest.approx(mean + 3 * max(std, mean ** 0.5))
    assert trend.index(0, 3.0) == 0 and trend.index(3, 3.0) == 0.5 and trend.index(30, 3.0) > 0.9


def test_trend_alert_ids_are_deterministic_and_records_match_the_schema():
    from streams.records import validator

    a = trend.surge_alert("escalation/missile_strike", 900, 1704067200, 6, 1.0, 0.0, item_ids=["x"],
                          evidence=["e"], actors=["Russia"], lexicon_version="v", created_at="2026-11-24T00:00:00Z")
    b = trend.surge_alert("escalation/missile_strike", 900, 1704067200, 9, 1.0, 0.0, item_ids=["y"],
                          evidence=[], actors=[], lexicon_version="v", created_at="2026-11-24T00:01:00Z")
    assert a["alert_id"] == b["alert_id"] != trend.trend_alert_id("surge", "escalation/missile_strike", 900, 1704068100)
    assert a["window_start"] == "2024-01-01T00:00:00Z" and a["window_end"] == "2024-01-01T00:15:00Z"
    d = trend.divergence_alert(900, 1704067200, {"escalation": 9, "negotiation": 7},
                               {"escalation": 1.0, "negotiation": 0.5}, item_ids=[], lexicon_version="v",
                               created_at="2026-11-24T00:00:00Z")
    for alert in (a, d):
        assert not list(validator("alert.v1.json").iter_errors(alert))
        assert alert["type"] == "trend"


def test_cooldown_holds_unless_severity_rises():
    key = cooldown.cooldown_key({"type": "escalation", "categories": ["missile_strike", "x"],
                                 "actors": ["Russia"]})
    assert key == "escalation|missile_strike|Russia"
    assert cooldown.cooldown_key({"type": "trend", "key": "escalation/shelling"}) == "trend|escalation/shelling|"
    send, reason, state = cooldown.decide(None, "a1", "medium", 1000.0, 1800)
    assert send and reason == "first"
    assert cooldown.decide(state, "a2", "medium", 2000.0, 1800)[:2] == (False, "cooldown")
    assert cooldown.decide(state, "a2", "low", 500.0, 1800)[:2] == (False, "cooldown")  # earlier, in a replay
    assert cooldown.decide(state, "a1", "medium", 1000.0, 1800)[:2] == (False, "repeat")
    send, reason, raised = cooldown.decide(state, "a3", "high", 2000.0, 1800)
    assert send and reason == "severity_rises" and raised["rank"] == 2
    assert cooldown.decide(raised, "a4", "high", 2500.0, 1800)[:2] == (False, "cooldown")
    assert cooldown.decide(state, "a5", "medium", 2800.1, 1800)[:2] == (True, "cooled_down")
    assert cooldown.decide(state, "a6", "medium", 1001.0, 0)[:2] == (True, "cooled_down")
    # a replay of the input position that sent an alert sends it again (its first send may be lost)
    _, _, sent = cooldown.decide(None, "a7", "high", 1000.0, 1800, position=42)
    assert cooldown.decide(sent, "a7", "high", 1000.0, 1800, position=42)[:2] == (True, "replay")
    assert cooldown.decide(sent, "a7", "high", 1000.0, 1800, position=43)[:2] == (False, "repeat")


def test_story_records_are_compact_binary():
    story = Story.first(_features("a", STORY, url="https://x.org/1", source="reuters"), 12.5, position=77)
    raw = story.dumps()
    assert len(raw) < 330 and Story.first_seen_of(raw) == 12.5 and Story.sig_of(raw) == story.sig
    assert Story.position_of(raw) == 77
    again = Story.loads("a", raw)
    assert (again.first_seen, again.url, again.content, again.sig, again.sources) == \
        (12.5, story.url[:16], story.content[:16], story.sig, ["reuters"])


def test_short_texts_need_a_higher_similarity_to_be_one_story():
    index = DedupIndex(0.45)
    kharkiv = _features("k", "Missile strike on Kharkiv")
    assert 0 < kharkiv.shingles < similarity.SHORT
    index.add(Story.first(kharkiv, 0.0))
    # another city is another event: J = 5/9 would pass the default threshold, not the short-text one
    assert index.check(_features("o", "Missile strike on Odesa")) == (None, "")
    headline = _features("h", "Russia launches massive drone attack on Kyiv")
    index.add(Story.first(headline, 0.0))
    assert index.check(_features("n", "Russia launches massive drone attack on Kyiv overnight")) == ("h", "near")
    assert Features.from_wire(kharkiv.wire()) == kharkiv  # the count travels with the sketch
    long = _features("l", STORY)
    assert long.shingles >= similarity.SHORT
    assert similarity.threshold_for(long.shingles, 0.45) == 0.45 == similarity.threshold_for(0, 0.45)


def test_agreement_of_packed_integers_counts_equal_bins_exactly():
    rng = random.Random(8)
    for _ in range(500):
        a = tuple(rng.randrange(65536) for _ in range(similarity.BINS))
        keep = rng.random()
        b = tuple(x if rng.random() < keep else rng.randrange(65536) for x in a)
        b = tuple(x ^ 0x8001 if rng.random() < 0.05 else x for x in b)  # lanes differing only at their edges
        expected = sum(x == y for x, y in zip(a, b, strict=True)) / similarity.BINS
        assert similarity.agreement(similarity.as_int(a), similarity.as_int(b)) == expected
