"""Nothing hidden without a count: what the cooldown holds back is counted in the next alert of its key,
and an alert more severe than the last one sent is never held back (streams.analytics.cooldown, shard)."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from streams.analytics import cooldown
from streams.analytics.shard import Config, Entry, StoryShard
from streams.records import validator
from streams.tagging import load_tagger
from tests.unit.shard_inputs import entry

TOWNS = ["Kharkiv", "Odesa", "Zaporizhzhia", "Sumy", "Mykolaiv", "Kherson", "Dnipro", "Poltava", "Chernihiv",
         "Kramatorsk", "Nikopol", "Pavlohrad", "Zhytomyr", "Uman", "Izmail", "Brovary", "Konotop", "Okhtyrka",
         "Shostka", "Chuhuiv"]
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def tagger():
    return load_tagger()


def strike(tagger, i: int, town: str, at: float) -> Entry:
    stamp = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = {"id": f"strike-{i}", "title": f"Artillery shells {town}", "source": "wire", "published_at": stamp,
            "text": f"Russian artillery shelled {town} overnight, local officials said, damaging houses and a "
                    f"school. Residents were asked to stay near shelters."}
    return entry(tagger, item)


def escalations(out) -> list[dict]:
    return [a for a, _ in out.alerts if a["type"] == "escalation"]


def visible(alerts: list[dict]) -> list[tuple[str, str]]:
    """(item id, summary) of every escalation shown: sent alerts' own, and those listed as held back."""
    shown = []
    for a in alerts:
        if a["type"] != "escalation":
            continue
        if not a.get("digest"):
            shown += [(i, a["summary"]) for i in a["item_ids"]]
        held = a.get("suppressed")
        if held:
            assert held["count"] == len(held["item_ids"]) == len(held["summaries"]) <= cooldown.MAX_HELD
            assert not a.get("digest") or a["item_ids"] == held["item_ids"]
            shown += list(zip(held["item_ids"], held["summaries"], strict=True))
        assert not list(validator("alert.v1.json").iter_errors(a)), a
    return shown


def test_twenty_strikes_within_the_cooldown_are_each_sent_or_listed_with_their_summary(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    burst = [strike(tagger, i, town, T0 + 30 * i) for i, town in enumerate(TOWNS)]
    out = shard.decide(burst, offset=0, now=1000.0)
    assert len(out.tagged) == 20  # twenty events, no copies
    sent = escalations(out)
    held = sum(1 for kind, reason in out.suppressed if kind == "escalation" and reason == "cooldown")
    digests = [a for a in sent if a.get("digest")]
    assert len(sent) - len(digests) + held == 20 and len(digests) == (held - 1) // cooldown.MAX_HELD
    later = escalations(shard.decide([strike(tagger, 20, "Lutsk", T0 + 3600)], offset=1, now=1001.0))
    assert [a.get("digest", False) for a in later] == [False]
    assert later[0]["suppressed"]["count"] == held - cooldown.MAX_HELD * len(digests)
    shown = visible(sent + later)
    assert sorted(i for i, _ in shown) == sorted([e.tagged["id"] for e in burst] + ["strike-20"])
    towns = dict(zip((e.tagged["id"] for e in burst), TOWNS, strict=True))
    assert all(f"Artillery shells {towns[i]}" in summary for i, summary in shown if i in towns)
    # the count is released once: the next alert of the key carries nothing held before it
    again = shard.decide([strike(tagger, 21, "Rivne", T0 + 7200)], offset=2, now=1002.0)
    assert "suppressed" not in escalations(again)[0]


def test_a_full_held_list_goes_out_at_once_as_a_digest_and_a_replay_sends_the_same_one(tagger):
    """25 strikes of one key within its cooldown: each is shown once with its summary, in the sent alert, in
    a digest sent when the key's held list was full, or in the next alert's count."""
    towns = TOWNS + ["Lutsk", "Rivne", "Ternopil", "Vinnytsia", "Bucha"]
    burst = [strike(tagger, i, town, T0 + 30 * i) for i, town in enumerate(towns)]
    records = [(burst[:13], 0), (burst[13:], 1)]  # two input records of the same minutes

    def run(shard: StoryShard, now: float) -> list[dict]:
        return [a for entries, offset in records for a in escalations(shard.decide(entries, offset, now))]

    shard = StoryShard(Config(alert_cooldown=1800))
    out = run(shard, T0 + 800)
    digests = [a for a in out if a.get("digest")]
    assert [a["suppressed"]["count"] for a in digests] == [cooldown.MAX_HELD, cooldown.MAX_HELD]
    assert len(out) - len(digests) == 1  # one sent, 24 held: 10 and 10 in digests, 4 left for the next alert
    assert len({a["alert_id"] for a in digests}) == 2
    changes = shard.flush()
    # the second record read again (its state written, its offset not committed): its digest is sent again
    replayed = escalations(shard.decide(*records[1], now=T0 + 900))
    assert [a["alert_id"] for a in replayed if a.get("digest")] == [digests[1]["alert_id"]]
    assert not shard.flush().cooldown  # and nothing is counted twice
    next_strike = strike(tagger, 99, "Irpin", T0 + 3600)
    later = escalations(shard.decide([next_strike], offset=2, now=T0 + 3700))
    assert [a.get("digest", False) for a in later] == [False] and later[0]["suppressed"]["count"] == 4
    shown = visible(out + later)
    ids = [i for i, _ in shown]
    assert sorted(ids) == sorted([e.tagged["id"] for e in burst] + ["strike-99"]) and len(set(ids)) == len(ids)
    summary_of = {f"strike-{i}": f"Artillery shells {town}" for i, town in enumerate(towns)}
    assert all(summary_of[i] in summary for i, summary in shown if i in summary_of)
    # all three records read again after the next alert was sent: nothing is counted again
    states = {k: dict(v) for k, v in shard.last_alert.items()}
    for entries, offset in records + [([next_strike], 2)]:
        shard.decide(entries, offset, now=T0 + 3800)
    assert shard.last_alert == states
    # both records read by a worker restarted from before them: the same digests and the same state
    again = StoryShard(Config(alert_cooldown=1800))
    assert [a["alert_id"] for a in run(again, T0 + 4000) if a.get("digest")] == [a["alert_id"] for a in digests]
    assert again.flush().cooldown == changes.cooldown


def test_several_alerts_of_a_key_from_one_input_are_each_held_once():
    """A surge per window size: one input can raise several alerts of one key; each is counted, a replay
    of that input counts none of them again, also when the list filled up at that input."""
    def alert(n: int) -> dict:
        return {"alert_id": f"a{n}", "item_ids": [f"i{n}"], "summary": f"surge {n}", "severity": "medium"}

    _, _, state = cooldown.decide(None, "a0", "medium", 0.0, 1800.0, position=7)  # sent from position 7
    inputs = [(7, alert(1))] + [(8 + (n - 1) // 3, alert(n)) for n in range(2, 14)]  # up to 3 per position
    for pos, a in inputs:
        state = cooldown.hold(state, a, pos)
    lists = [state["spilled"], state["held"]]
    assert [h["n"] for h in lists] == [10, 3]
    assert [i for h in lists for i in h["ids"]] == [f"i{n}" for n in range(1, 14)]
    assert [s for h in lists for s in h["summaries"]] == [f"surge {n}" for n in range(1, 14)]
    assert state["spilled"]["by"] == state["held"]["first"] == 11  # the list filled up within position 11
    for pos, a in inputs:  # the same inputs read again
        assert cooldown.hold(state, a, pos) is state


def test_a_more_severe_alert_is_never_held_back():
    state = None
    sent, _, state = cooldown.decide(state, "a1", "medium", 0.0, 1800.0)
    assert sent
    send, reason, held = cooldown.decide(state, "a2", "medium", 10.0, 1800.0)
    assert not send and reason == "cooldown"
    state = cooldown.hold(held, {"item_ids": ["i2"], "summary": "second", "severity": "medium"}, 2)
    send, reason, new = cooldown.decide(state, "a3", "high", 20.0, 1800.0)
    assert send and reason == "severity_rises"
    released = cooldown.release(state["held"], {"alert_id": "a3"})
    assert released["suppressed"] == {"count": 1, "item_ids": ["i2"], "summaries": ["second"],
                                      "highest_severity": "medium"}


def test_suppression_metric_reasons_and_replay_counts_nothing_twice(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    burst = [strike(tagger, i, town, T0 + 30 * i) for i, town in enumerate(TOWNS[:5])]
    out = shard.decide(burst, offset=0, now=1000.0)
    assert {r for _, r in out.suppressed} <= {"cooldown", "repeat"} and ("escalation", "cooldown") in out.suppressed
    states = {k: dict(v) for k, v in shard.last_alert.items()}
    shard.decide(burst, offset=0, now=1000.5)  # the same input record again (a crash before the commit)
    assert shard.last_alert == states


def test_the_count_survives_a_restore(tagger):
    shard = StoryShard(Config(alert_cooldown=1800))
    shard.decide([strike(tagger, i, town, T0 + 30 * i) for i, town in enumerate(TOWNS[:4])], offset=0, now=1000.0)
    changes = shard.flush()
    restored = StoryShard(Config(alert_cooldown=1800))
    restored.restore(changes.stories.items(), changes.cooldown.items(), changes.windows.items())
    out = restored.decide([strike(tagger, 9, "Lutsk", T0 + 3600)], offset=1, now=1001.0)
    [alert] = escalations(out)
    assert alert["suppressed"]["count"] >= 1 and alert["suppressed"]["item_ids"][0] in {"strike-1", "strike-2"}


# ---------------------------------------------------------------- digests: held back, and no next alert comes
COOLDOWN = 1800.0


def held_back_burst(tagger) -> tuple[StoryShard, list[Entry], list[dict]]:
    """Five strikes of one key within its cooldown, decided live (wall clock a minute after the last one)."""
    shard = StoryShard(Config(alert_cooldown=COOLDOWN))
    burst = [strike(tagger, i, town, T0 + 30 * i) for i, town in enumerate(TOWNS[:5])]
    sent = escalations(shard.decide(burst, offset=0, now=T0 + 180))
    return shard, burst, sent


def test_held_back_alerts_with_no_follow_up_come_as_one_digest_after_the_cooldown(tagger):
    shard, burst, sent = held_back_burst(tagger)
    held = {key: state["held"] for key, state in shard.last_alert.items() if "held" in state}
    assert sum(h["n"] for key, h in held.items() if key.startswith("escalation|")) + len(sent) == 5
    shard.flush()
    assert not shard.digest(T0 + 600).alerts  # the cooldown is not over: a next alert may still carry them
    assert not shard.flush().cooldown
    out = shard.digest(T0 + 180 + COOLDOWN + 30)  # the feed stayed quiet
    digests = [a for a, _ in out.alerts]
    assert len(digests) == len(held) and any(d["type"] == "escalation" for d in digests)
    sent_ids = {i for a in sent for i in a["item_ids"]}
    for digest in digests:  # escalation and, for the burst's surges, trend
        assert digest["digest"] is True
        key = cooldown.cooldown_key(digest)
        counted = digest["suppressed"]
        assert counted["count"] == held[key]["n"] and digest["summary"].startswith(f"+{counted['count']} more held back: ")
        assert counted["item_ids"] == digest["item_ids"] and counted["summaries"][0] in digest["summary"]
        assert digest["evidence"] == counted["summaries"][1:]  # the summary shows the first, not twice
        if digest["type"] == "escalation":
            assert counted["item_ids"] == [e.tagged["id"] for e in burst if e.tagged["id"] not in sent_ids]
            assert len(counted["summaries"]) == 4 and all("Artillery shells" in s for s in counted["summaries"])
        assert counted["highest_severity"] == digest["severity"] == cooldown.SEVERITIES[held[key]["rank"]]
        assert not list(validator("alert.v1.json").iter_errors(digest)), digest
    changed = shard.flush().cooldown  # the cleared counts are written like every cooldown change
    assert set(changed) == {key.encode() for key in held}
    assert all("held" not in orjson.loads(v) for v in changed.values())
    assert all("held" not in state for state in shard.last_alert.values())


def test_nothing_held_back_gives_no_digest(tagger):
    shard = StoryShard(Config(alert_cooldown=COOLDOWN))
    out = shard.decide([strike(tagger, 0, "Sumy", T0)], offset=0, now=T0 + 60)
    assert len(escalations(out)) == 1
    shard.flush()
    assert not shard.digest(T0 + 60 + 10 * COOLDOWN).alerts and not shard.flush().cooldown


def test_a_digest_is_sent_once_also_after_a_replay_or_a_restore(tagger):
    shard, burst, _ = held_back_burst(tagger)
    before = shard.flush()  # what the tables hold before the digest
    late = T0 + 180 + COOLDOWN + 30
    first = [a for a, _ in shard.digest(late).alerts]
    assert first
    after = shard.flush()
    assert not shard.digest(late + 30).alerts  # the next tick: nothing new held
    # the input record read again (a crash before its offset was committed): nothing counted twice
    shard.decide(burst, offset=0, now=late + 60)
    assert all("held" not in state for state in shard.last_alert.values())
    assert not shard.digest(late + 90).alerts
    # a restart from the tables as they were after the digest: no digest again
    restored = StoryShard(Config(alert_cooldown=COOLDOWN))
    restored.restore(before.stories.items(), {**before.cooldown, **after.cooldown}.items(), before.windows.items(),
                     wall=late + 120)
    assert not restored.digest(late + 120 + COOLDOWN).alerts
    # a crash after the digest was sent but before its state was written: the same digest, same id
    again = StoryShard(Config(alert_cooldown=COOLDOWN))
    again.restore(before.stories.items(), before.cooldown.items(), before.windows.items(), wall=late + 120)
    assert [a["alert_id"] for a, _ in again.digest(late + 120 + COOLDOWN).alerts] == [a["alert_id"] for a in first]


def test_alerts_held_after_a_digest_get_a_digest_of_their_own(tagger):
    shard, _, _ = held_back_burst(tagger)
    late = T0 + 180 + COOLDOWN + 30
    first = [a for a, _ in shard.digest(late).alerts]
    # two more strikes, still within the cooldown of the key's last sent alert by event time (they come late:
    # the event clock goes by their dates, so their digest comes one cooldown after the first sent alert's)
    more = [strike(tagger, 10 + i, town, T0 + 600 + i) for i, town in enumerate(TOWNS[10:12])]
    out = shard.decide(more, offset=1, now=late + 10)
    assert not escalations(out)
    assert not shard.digest(late + 20).alerts
    second = [a for a, _ in shard.digest(late + 10 + COOLDOWN).alerts if a["type"] == "escalation"]
    assert [a["suppressed"]["count"] for a in second] == [2]
    assert second[0]["item_ids"] == ["strike-10", "strike-11"]
    assert {a["alert_id"] for a in second}.isdisjoint({a["alert_id"] for a in first})
