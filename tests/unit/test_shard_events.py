"""The story shard keeps distinct events apart: a near-duplicate candidate of the sketch is a copy only
when the two items report the same event (streams.analytics.event_identity), and only real copies
corroborate. Entries are made by the process stage's own function, through the wire format."""

from __future__ import annotations

import dataclasses

import pytest

from streams.analytics import similarity
from streams.analytics.dedup import _HEAD, _HEAD_V2, DedupIndex, Features, Story
from streams.analytics.event_identity import EventKey
from streams.analytics.shard import Config, Entry, StoryShard
from streams.tagging import load_tagger
from tests.unit.shard_inputs import entry

CITIES = ["Kharkiv", "Odesa", "Zaporizhzhia", "Sumy", "Mykolaiv"]
STRIKE = ("Drone strike on {city}", "Russian drones struck energy infrastructure in {city} overnight, regional "
          "officials said, leaving thousands of homes without power. Repair crews were at work by morning.")
"""A templated report: only the city differs, so the sketch alone calls the five cities copies."""
WIRE = ("Artillery shelled the outskirts of Nikopol overnight, local officials said, damaging two houses and a "
        "school. Regional authorities said repair crews would restore water supplies by the evening, and "
        "residents were asked to stay near shelters until the all-clear.")
"""A story whose alert is high, not critical: a corroboration can raise it."""
OUTLETS = [("Nikopol shelled overnight, two houses and a school damaged", WIRE, "Ukrinform"),
           ("Shelling damages school in Nikopol", f"NIKOPOL (Wire) - {WIRE}", "BBC"),
           ("Nikopol: houses and school hit by artillery", WIRE.replace("the all-clear", "the all clear")
            + " Wire services contributed.", "Deutsche Welle")]
"""Three outlets' copies of one wire text: their own headline, a dateline, a light edit, a credit line."""


@pytest.fixture(scope="module")
def tagger():
    return load_tagger()


def strikes(tagger, template=STRIKE, cities=CITIES) -> list[Entry]:
    title, text = template
    return [entry(tagger, {"id": f"strike-{city}", "title": title.format(city=city), "text": text.format(city=city),
                           "source": f"outlet-{k}", "published_at": "2026-11-30T06:00:00Z"})
            for k, city in enumerate(cities)]


def keyless(e: Entry) -> Entry:
    """The entry as the sketch alone sees it (no event key)."""
    return dataclasses.replace(e, features=dataclasses.replace(e.features, event=b""))


def test_five_cities_are_five_stories_where_the_sketch_alone_merges_them(tagger):
    batch = strikes(tagger)
    sketch_only = StoryShard(Config(alert_cooldown=0)).decide([keyless(e) for e in batch], offset=0, now=1000.0)
    assert len(sketch_only.tagged) < 5 and "near" in sketch_only.duplicates  # the check below is needed

    out = StoryShard(Config(alert_cooldown=0)).decide(batch, offset=0, now=1000.0)
    assert [t["id"] for t, _ in out.tagged] == [f"strike-{c}" for c in CITIES] and not out.duplicates
    alerted = {i for a, _ in out.alerts if a["type"] == "escalation" for i in a["item_ids"]}
    assert alerted == {f"strike-{c}" for c in CITIES}


def test_three_outlets_copies_of_one_wire_are_one_story_and_corroborate_it(tagger):
    batch = [entry(tagger, {"id": f"copy-{k}", "title": title, "text": text, "source": source,
                            "url": f"https://site{k}.example/nikopol", "published_at": "2026-11-30T06:00:00Z"})
             for k, (title, text, source) in enumerate(OUTLETS)]
    out = StoryShard(Config(alert_cooldown=0)).decide(batch, offset=0, now=1000.0)
    assert [t["id"] for t, _ in out.tagged] == ["copy-0"] and out.duplicates == ["near", "near"]
    assert out.corroborations >= 1  # a second camp (western media after Ukrainian officials) confirmed it
    latest = [a for a, _ in out.alerts if a["type"] == "escalation"][-1]
    assert latest["item_ids"] == ["copy-0"] and latest["corroboration"]["outlets"]["count"] == 3
    assert latest["corroboration"]["camps"]["names"] == ["ukraine-official", "western"]


def test_reports_of_other_cities_never_corroborate(tagger):
    """Templated reports of the same shelling in other towns, from other sources, raise nothing; copies of
    the same report from other camps do."""
    template = ("Artillery shells {city}", WIRE.replace("Nikopol", "{city}"))
    others = strikes(tagger, template, ["Nikopol", "Kherson", "Pavlohrad", "Orikhiv", "Huliaipole"])
    shard = StoryShard(Config(alert_cooldown=0))
    out = shard.decide(others, offset=0, now=1000.0)
    assert len(out.tagged) == 5 and out.corroborations == 0
    assert all(a["corroboration"]["outlets"]["count"] == 1 for a, _ in out.alerts if a.get("corroboration"))
    copies = [entry(tagger, {"id": f"again-{k}", "title": "Artillery shells Nikopol", "text": f"By {name}. {WIRE}",
                             "source": source}) for k, (name, source) in enumerate([("Ana Koval", "BBC"),
                                                                                    ("Ben Ross", "Ukrinform")])]
    again = shard.decide(copies, offset=1, now=1001.0)
    assert not again.tagged and again.duplicates == ["near", "near"] and again.corroborations >= 1
    raised = [a for a, _ in again.alerts if a["type"] == "escalation"]
    assert raised and all(a["item_ids"] == ["strike-Nikopol"] for a in raised)
    assert raised[-1]["corroboration"]["outlets"]["count"] == 3


def test_a_candidate_of_another_event_does_not_hide_the_real_copy(tagger):
    """The first story sharing bands with an item is another city's; the search goes on to the real copy."""
    odesa, kharkiv = strikes(tagger, cities=["Odesa", "Kharkiv"])
    copy = entry(tagger, {"id": "kharkiv-copy", "title": "Drone strike on Kharkiv",
                          "text": STRIKE[1].format(city="Kharkiv") + " (Wire)", "source": "outlet-z"})
    index = DedupIndex()
    for e in (odesa, kharkiv):
        index.add(Story.first(e.features, 0.0), e.features.bands)
    assert index.check(copy.features) == ("strike-Kharkiv", "near")


def test_the_story_record_keeps_the_event_key_and_old_records_still_load(tagger):
    f = strikes(tagger, cities=["Sumy"])[0].features
    story = Story.first(f, 5.0, position=9)
    again = Story.loads(f.item_id, story.dumps())
    assert again.event == f.event and EventKey.unpack(again.event).places == ("Sumy",)
    assert Story.event_of(story.raw) == f.event and Story.sig_of(story.raw) == f.sig
    # a record of the previous version (no key): still read, and the sketch alone decides for it
    packed = Story.first(dataclasses.replace(f, event=b""), 5.0, 9).dumps()
    v2 = _HEAD_V2.pack(2, *_HEAD.unpack_from(packed)[1:7]) + packed[_HEAD.size:]
    old = Story.loads(f.item_id, v2)
    assert old.event == b"" and old.sig == f.sig and old.sources == ["outlet-0"] and old.first_seen == 5.0
    bare = _HEAD_V2.pack(2, 7.0, 3, 1, bytes(8), bytes(8), 0)  # no signature, no source
    assert Story.first_seen_of(bare) == 7.0 and Story.position_of(bare) == 3
    assert Story.loads("bare", bare).sig is None and Story.event_of(bare) == b""
    index = DedupIndex()
    index.add(old, f.bands)
    other_city = strikes(tagger, cities=["Kharkiv"])[0].features
    assert index.check(other_city)[1] == "near"


def test_features_of_the_previous_wire_format_have_no_event_key(tagger):
    f = strikes(tagger, cities=["Sumy"])[0].features
    wire = f.wire()
    assert len(wire) == 8 and Features.from_wire(wire) == f
    old = Features.from_wire(wire[:6])
    assert old.event == b"" and old.event_key is None and old.sig == f.sig


def test_band_keys_travel_with_the_features_and_equal_the_computed_ones(tagger):
    f = strikes(tagger, cities=["Sumy"])[0].features
    carried = Features.from_wire(f.wire())
    assert "bands" in carried.__dict__  # read from the record, not computed by the shard
    assert carried.bands == similarity.band_keys(f.sig) and len(carried.bands) == similarity.BANDS
    assert Features.from_wire(f.wire()[:7]).bands == carried.bands  # a record without them computes them



REPORT = ("Russian forces launched drones and missiles at {city} overnight, regional officials said, hitting energy "
          "infrastructure and damaging residential buildings. Air defence units shot down most of the drones, the "
          "air force said. Emergency crews worked through the night to put out fires and restore power to homes. "
          "Schools in the district moved to remote lessons for the day, and officials urged residents to conserve "
          "electricity in the evening hours while repairs continued. Local authorities opened heating points in "
          "several neighbourhoods.")


def test_copies_of_a_second_templated_report_find_it_though_the_first_holds_most_bands(tagger):
    """A band keeps a few stories: with one (first writer wins) the second city's report held only the bands
    where it differs from the first, and 3 of these 40 copies of it became new stories."""
    missed = []
    for r in range(40):
        index = DedupIndex()
        first, second, copy = (entry(tagger, {"id": f"{name}{r}", "title": f"Overnight attack on {city}",
                                              "text": REPORT.format(city=city) + f" Ref {r}a." + extra}).features
                               for name, city, extra in (("a", "Kharkiv", ""), ("b", "Odesa", ""),
                                                         ("c", "Odesa", " (Wire)")))
        for f in (first, second):
            assert index.check(f) == (None, "")
            index.add(Story.first(f, 0.0), f.bands)
        if index.check(copy) != (f"b{r}", "near"):
            missed.append(r)
        index.remove(f"b{r}", index.records[f"b{r}"])  # forgetting it leaves the first intact
        assert all(held == f"a{r}" for held in index.by_band.values())
    assert missed == []
