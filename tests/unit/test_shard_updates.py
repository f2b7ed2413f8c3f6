"""Updates and corrections in the story shard (streams.analytics.shard): a known id with changed text is
the story's next revision, not a duplicate; a replay of it re-sends the same revision and counts as
redelivered; the revisions survive a restore from the changelog records."""

from __future__ import annotations

import pytest

from streams.analytics.dedup import Story
from streams.analytics.shard import Config, Entry, StoryShard, batch_records, read_batch
from streams.records import validator
from streams.tagging import load_tagger
from tests.unit.shard_inputs import entry, keep

FIRST = {"id": "kharkiv-block", "source": "Ukrinform", "published_at": "2026-11-30T06:00:00Z",
         "title": "Russian missile strike on Kharkiv apartment block kills 5",
         "text": "A Russian missile hit an apartment block in Kharkiv on Tuesday morning, killing 5 people and "
                 "wounding 12, the regional governor said. Rescuers were searching the rubble."}
CORRECTED = dict(FIRST, title="Russian missile strike on Kharkiv apartment block kills 38",
                 text="A Russian missile hit an apartment block in Kharkiv on Tuesday morning, killing 38 people "
                      "and wounding 70, the regional governor said. Rescuers were searching the rubble.")
"""The death toll revised under the same id: the headline, the evidence and the summary change."""
REWORDED = dict(CORRECTED, text=CORRECTED["text"].replace("searching the rubble", "still at work on the site"))
"""A later sentence without signals reworded: a new revision whose alert says the same."""


@pytest.fixture(scope="module")
def tagger():
    return load_tagger()


def escalation(out) -> dict:
    [alert] = [a for a, _ in out.alerts if a["type"] == "escalation"]
    return alert


def test_a_correction_is_revision_two_with_its_alert_resent_under_the_same_id(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    first = shard.decide([entry(tagger, FIRST)], offset=0, now=1000.0)
    windows = {k: d["n"] for k, d in shard.windows.items()}
    update = shard.decide([entry(tagger, CORRECTED)], offset=1, now=1001.0)
    assert [(t["id"], t["revision"]) for t, _ in first.tagged] == [("kharkiv-block", 1)]
    assert not update.tagged and not update.duplicates and update.redelivered == 0
    [(tagged, _)] = update.updates
    assert tagged["revision"] == 2 and "38" in tagged["title"]
    before, after = escalation(first), escalation(update)
    assert before["alert_id"] == after["alert_id"] and (before["revision"], after["revision"]) == (1, 2)
    assert "kills 38" in after["summary"] and any("killing 38 people" in e for e in after["evidence"])
    assert not any("killing 5 " in e for e in after["evidence"])
    assert not list(validator("tagged-item.v1.json").iter_errors(tagged))
    assert not list(validator("alert.v1.json").iter_errors(after))
    # neither a copy nor a new event: no window counts it, it corroborates nothing
    assert {k: d["n"] for k, d in shard.windows.items()} == windows
    assert update.corroborations == 0 and Story.loads("kharkiv-block", shard.index.records["kharkiv-block"]).copies == 1

    # the same id with the same text again: a duplicate of revision 2
    again = shard.decide([entry(tagger, CORRECTED)], offset=2, now=1002.0)
    assert again.duplicates == ["id"] and not again.updates and not again.alerts
    # a reworded sentence without signals: revision 3 on news.tagged, its alert says the same (not re-sent)
    reworded = shard.decide([entry(tagger, REWORDED)], offset=3, now=1003.0)
    assert [t["revision"] for t, _ in reworded.updates] == [3] and not reworded.alerts


def test_other_outlets_copies_of_either_revision_are_copies_of_the_story(tagger):
    corrected_copy = dict(CORRECTED, id="wire-copy", source="Reuters")
    unaware = StoryShard(Config())  # no correction seen: the other toll is another event
    unaware.decide([entry(tagger, FIRST)], offset=0, now=1000.0)
    assert [t["id"] for t, _ in unaware.decide([entry(tagger, corrected_copy)], 1, 1001.0).tagged] == ["wire-copy"]

    shard = StoryShard(Config())
    shard.decide([entry(tagger, FIRST)], offset=0, now=1000.0)
    shard.decide([entry(tagger, CORRECTED)], offset=1, now=1001.0)
    out = shard.decide([entry(tagger, corrected_copy), entry(tagger, dict(FIRST, id="late-reprint", source="x"))],
                       offset=2, now=1002.0)
    assert not out.tagged and out.duplicates == ["content", "content"]  # the story re-keyed; revision 1 an alias
    assert Story.loads("kharkiv-block", shard.index.records["kharkiv-block"]).copies == 3


def test_a_replayed_update_resends_the_same_revision_and_counts_as_redelivered(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    shard.decide([entry(tagger, FIRST)], offset=0, now=1000.0)
    windows = {k: d["n"] for k, d in shard.windows.items()}
    reprint = dict(FIRST, id="reprint", source="a local paper")  # a copy of revision 1 (an unlisted site)
    update = shard.decide([entry(tagger, CORRECTED), entry(tagger, reprint)], offset=1, now=1001.0)
    cooldowns = {k: dict(v) for k, v in shard.last_alert.items()}
    # a crash before the commit: the same input record again
    replay = shard.decide([entry(tagger, CORRECTED), entry(tagger, reprint)], offset=1, now=1002.0)
    assert [t["revision"] for t, _ in replay.updates] == [t["revision"] for t, _ in update.updates] == [2]
    assert escalation(replay)["alert_id"] == escalation(update)["alert_id"]
    assert escalation(replay)["revision"] == 2 and escalation(replay)["summary"] == escalation(update)["summary"]
    assert update.duplicates == ["content"] and replay.duplicates == [] and replay.redelivered == 2
    assert shard._revisions["kharkiv-block"][0] == 2  # not bumped again
    assert Story.loads("kharkiv-block", shard.index.records["kharkiv-block"]).copies == 2  # the copy, once
    assert {k: d["n"] for k, d in shard.windows.items()} == windows and shard.last_alert == cooldowns
    # after the replay, the corrected text is still a duplicate of revision 2
    assert shard.decide([entry(tagger, CORRECTED)], offset=2, now=1003.0).duplicates == ["id"]


def test_revisions_survive_a_restore_from_the_changelog_records(tagger):
    stored: dict[str, dict] = {"stories": {}, "cooldown": {}, "windows": {}}
    shard = StoryShard(Config(alert_cooldown=1800))
    shard.decide([entry(tagger, FIRST)], offset=0, now=1000.0)
    keep(stored, shard.flush())
    update = shard.decide([entry(tagger, CORRECTED)], offset=1, now=1001.0)
    keep(stored, shard.flush())

    def restored() -> StoryShard:
        s = StoryShard(Config(alert_cooldown=1800))
        s.restore(stored["stories"].items(), stored["cooldown"].items(), stored["windows"].items())
        return s

    # the update's record read again after a restart: the same revision and alert, counted as redelivered
    replay = restored().decide([entry(tagger, CORRECTED)], offset=1, now=1002.0)
    assert [t["revision"] for t, _ in replay.updates] == [2] and replay.redelivered == 1
    assert escalation(replay)["summary"] == escalation(update)["summary"]
    # the corrected text is a duplicate of revision 2, also from another outlet, and revision 1's text too;
    # a further correction is revision 3 and changes the alert
    s = restored()
    copies = [entry(tagger, CORRECTED), entry(tagger, dict(CORRECTED, id="wire-copy", source="Reuters")),
              entry(tagger, dict(FIRST, id="late-reprint", source="x"))]
    assert s.decide(copies, offset=2, now=1003.0).duplicates == ["id", "content", "content"]
    third = dict(CORRECTED, title="Russian missile strike on Kharkiv apartment block kills 41")
    out = s.decide([entry(tagger, third)], offset=3, now=1004.0)
    assert [t["revision"] for t, _ in out.updates] == [3]
    assert escalation(out)["revision"] == 3 and "kills 41" in escalation(out)["summary"]
    assert escalation(out)["alert_id"] == escalation(update)["alert_id"]


def test_an_update_of_a_forgotten_story_is_a_first_copy_again(tagger):
    shard = StoryShard(Config(dedup_horizon=3600))
    shard.decide([entry(tagger, FIRST)], offset=0, now=1000.0)
    shard.decide([entry(tagger, CORRECTED)], offset=1, now=1001.0)
    shard.decide([], offset=2, now=1000.0 + 3602)  # past the horizon: the story and its revision go
    assert "kharkiv-block" not in shard._revisions and "kharkiv-block" not in shard._alerts
    index = shard.index  # no key of either revision is left behind
    assert not (index.records or index.by_content or index.by_band or index.by_url or index.aliases)
    out = shard.decide([entry(tagger, CORRECTED)], offset=3, now=1000.0 + 3603)
    assert [(t["id"], t["revision"]) for t, _ in out.tagged] == [("kharkiv-block", 1)] and not out.updates


def read_at(e: Entry, partition: int, offset: int) -> Entry:
    """``e`` as read from news.raw at ``partition``/``offset`` (the process stage sets it)."""
    e.raw = (partition, offset)
    return read_batch(batch_records([e.wire()])[0])[0]


def test_items_the_process_stage_sends_again_after_a_crash_are_redelivered_not_duplicates(tagger):
    stored: dict[str, dict] = {"stories": {}, "cooldown": {}, "windows": {}}
    reprint = dict(FIRST, id="reprint", source="a local paper")

    def first_life() -> list[Entry]:
        return [read_at(entry(tagger, FIRST), 2, 10), read_at(entry(tagger, reprint), 2, 11),
                read_at(entry(tagger, CORRECTED), 2, 12)]

    shard = StoryShard(Config(alert_cooldown=1800))
    out = shard.decide(first_life(), offset=0, now=1000.0)
    assert ([t["revision"] for t, _ in out.tagged + out.updates], out.duplicates) == ([1, 2], ["content"])
    keep(stored, shard.flush())
    windows = {k: d["n"] for k, d in shard.windows.items()}

    # the process stage crashed before committing news.raw: the same three items again, in a new record,
    # and one item it had not read before
    fresh = read_at(entry(tagger, dict(FIRST, id="odesa-port", title="Drone strike on Odesa port",
                                       text="Russian drones struck the port of Odesa overnight.",
                                       published_at="2026-11-30T09:00:00Z")), 2, 13)  # windows of its own
    for s in (shard, StoryShard(Config(alert_cooldown=1800))):
        if s is not shard:  # also after a restart: the offsets decided are kept with the segments
            s.restore(stored["stories"].items(), stored["cooldown"].items(), stored["windows"].items())
        again = s.decide([*first_life(), fresh], offset=1, now=1001.0)
        assert again.redelivered == 3 and not again.duplicates and not again.updates
        assert [t["id"] for t, _ in again.tagged] == ["odesa-port"]
        assert all("kharkiv-block" not in a["item_ids"] for a, _ in again.alerts)
        story = Story.loads("kharkiv-block", s.index.records["kharkiv-block"])
        assert story.copies == 2 and s._revisions["kharkiv-block"][0] == 2  # counted once, not bumped
        assert {k: d["n"] for k, d in s.windows.items() if k in windows} == windows

    # a text the story never had at an offset decided before (news.raw recreated): an update all the same
    third = dict(CORRECTED, title="Russian missile strike on Kharkiv apartment block kills 41")
    out = shard.decide([read_at(entry(tagger, third), 2, 5)], offset=2, now=1002.0)
    assert [t["revision"] for t, _ in out.updates] == [3] and out.redelivered == 0
