"""The negotiation tracker: threads of talks, their states, deadlines and violations (pure, plain dicts).

State is one JSON-ready dict (``new_state()``) that the caller keeps in a changelog-backed store;
:func:`observe` (one tagged item) and :func:`tick` (the clock) change it in place and return what
changed: the transitions (each becomes an ``alerts.negotiation`` alert) and the thread records to
publish on ``negotiations.threads`` (schema ``schemas/negotiation-thread.v1.json``).

A thread is identified by its track, its parties (order-free) and, when the text names them, its venue
and mediators; an item joins the most recently active open thread of the same track and parties
within the horizon whose venue and mediators do not contradict it. States only move forward::

    proposed -> scheduled -> held -> agreed -> in_force -> violated
    any open state -> collapsed;  proposed | scheduled | held -> rejected;  agreed | in_force | violated -> expired

Why cues as well as stances: the tagging pack gives bare mentions of a truce or talks the stance
``agreed`` by default, so an agreement needs the stance *and* an agreement phrase of the talks rules;
scheduled, held, in force and collapsed come from phrases only. Everything is in event time, so a
replay gives the same threads, transitions and alert ids; an item already seen by a thread changes
nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from operator import itemgetter
from typing import Any, NamedTuple

from streams.alerting import MAX_SUMMARY, evidence_sentence
from streams.analytics.trend import event_time, iso
from streams.records import epoch

from .rules import Reading, TalksRules, Track, load_rules

STATES = ("proposed", "scheduled", "held", "agreed", "in_force", "violated", "expired", "collapsed", "rejected")
TRANSITION_KINDS = (*STATES, "extended", "deadline_missed")
_STAGE = {"proposed": 0, "scheduled": 1, "held": 2, "agreed": 3, "in_force": 4, "violated": 5}
TERMINAL = frozenset({"expired", "collapsed", "rejected"})
PRE_AGREEMENT = frozenset({"proposed", "scheduled", "held"})
COVERED = frozenset({"agreed", "in_force"})  # an escalation now is a violation
_AGREEMENT = frozenset({"agreed", "in_force", "violated"})
_OPENING_STANCES = frozenset({"proposed", "open", "conditional"})
_SHOWN = {"in_force": "in force"}
STATE_VERSION = 1


def new_state(rules: TalksRules | None = None) -> dict[str, Any]:
    """An empty tracker state: the threads by id, plus indexes that keep the per-item cost flat in the
    number of threads (thread ids by track and parties; ids of threads under an agreement; how many
    threads hold each seen item id). The indexes are derived: :func:`state_from_threads` rebuilds them."""
    rules = rules or load_rules()
    return {"version": STATE_VERSION, "rules_version": rules.version, "threads": {}, "by_track": {},
            "agreements": [], "seen": {}}


def state_from_threads(threads: Iterable[dict[str, Any]], rules: TalksRules | None = None) -> dict[str, Any]:
    """The tracker state of thread records (e.g. a table keyed by thread id, or the compacted
    ``negotiations.threads`` topic read back after a restart)."""
    state = new_state(rules)
    for thread in sorted(threads, key=itemgetter("thread_id")):
        tid = thread["thread_id"]
        state["threads"][tid] = thread
        state["by_track"].setdefault(_track_key(thread["track"], thread["parties"]), []).append(tid)
        if thread["state"] in _AGREEMENT:
            state["agreements"].append(tid)
        for item_id in thread["seen_item_ids"]:
            state["seen"][item_id] = state["seen"].get(item_id, 0) + 1
    return state


def _track_key(track: str, parties: list[str]) -> str:
    return f"{track}|{'+'.join(parties)}"


def _drop(state: dict[str, Any], tid: str) -> None:
    thread = state["threads"].pop(tid)
    key = _track_key(thread["track"], thread["parties"])
    ids = state["by_track"][key]
    ids.remove(tid)
    if not ids:
        del state["by_track"][key]
    if tid in state["agreements"]:
        state["agreements"].remove(tid)
    _unsee(state["seen"], thread["seen_item_ids"])


def _unsee(seen: dict[str, int], item_ids: list[str]) -> None:
    for item_id in item_ids:
        n = seen.get(item_id, 0) - 1
        if n > 0:
            seen[item_id] = n
        else:
            seen.pop(item_id, None)


def threads_by_state(state: dict[str, Any]) -> dict[str, int]:
    """How many threads are in each state (every state, zeros included): the threads-by-state gauge."""
    counts = dict.fromkeys(STATES, 0)
    for t in state["threads"].values():
        counts[t["state"]] += 1
    return counts


def _empty() -> dict[str, list]:
    return {"transitions": [], "threads": [], "dropped": []}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _doc(item: dict) -> str:
    title, text = item.get("title") or "", item.get("text") or ""
    return f"{title}\n{text}" if title else text


# ---------------------------------------------------------------------- per item
class SentenceReading(NamedTuple):
    """What moves a thread in one negotiation sentence (of :class:`~streams.talks.rules.Reading`)."""

    cues: frozenset[str]
    venues: tuple[str, ...]
    duration_days: float | None
    deadline: float | None


class TrackGroup(NamedTuple):
    """An item's negotiation sentences that one track takes (each sentence goes to the first track it
    matches), with their readings and the stances and actors of their signals."""

    track: str
    sentences: tuple[str, ...]
    readings: tuple[SentenceReading, ...]
    stances: frozenset[str]
    actors: tuple[str, ...]


class TalksText(NamedTuple):
    """What the tracker reads of a talks item's text (:func:`read_text`): the venues and the mediators its
    whole text names, in order of first mention, and its negotiation sentences by track."""

    venues: tuple[str, ...]
    mediators: tuple[str, ...]
    tracks: tuple[TrackGroup, ...] = ()

    def wire(self) -> list:
        """JSON-ready: ``[venues, mediators, [[track, sentences, [[cues, venues, duration, deadline], ...],
        stances, actors], ...]]`` (:meth:`from_wire` reads it back)."""
        return [list(self.venues), list(self.mediators),
                [[g.track, list(g.sentences), [[sorted(r.cues), list(r.venues), r.duration_days, r.deadline]
                                               for r in g.readings], sorted(g.stances), list(g.actors)]
                 for g in self.tracks]]

    @classmethod
    def from_wire(cls, w: list) -> TalksText | None:
        """Inverse of :meth:`wire`; None for the ``[venues, mediators]`` of records written before the
        sentences were read with them (the tracker then reads the item itself)."""
        if len(w) < 3:
            return None
        venues, mediators, tracks = w
        return cls(tuple(venues), tuple(mediators), tuple(
            TrackGroup(track, tuple(sentences), tuple(SentenceReading(frozenset(cues), tuple(at), days, due)
                                                      for cues, at, days, due in readings),
                       frozenset(stances), tuple(actors))
            for track, sentences, readings, stances, actors in tracks))


def negotiation_signals(rules: TalksRules, signals) -> list[dict]:
    """The item's signals that the tracker follows as talks (its rules' negotiation categories)."""
    return [s for s in signals if s["kind"] == "negotiation" and s["category"] in rules.negotiation_categories]


def read_text(rules: TalksRules, item: dict[str, Any], at: float | None = None) -> TalksText:
    """Read a talks item's text (an item with :func:`negotiation_signals`) at event time ``at`` (default its
    own). The process stage does it for every such item, so that the serial story shard does not: reading
    the whole text was a quarter of the tracker's work, and reading the sentences a third of what was left."""
    at = event_time(item) if at is None else float(at)
    neg = negotiation_signals(rules, item.get("signals") or ())
    return _read_whole(rules, item)._replace(tracks=_by_track(rules, _doc(item), neg, at))


def observe(state: dict[str, Any], item: dict[str, Any], at: float | None = None,
            rules: TalksRules | None = None, text: TalksText | None = None) -> dict[str, list]:
    """Feed one tagged item (a ``news.tagged`` record) at event time ``at`` (epoch seconds; default its
    ``published_at``, else ``received_at``); ``text``: :func:`read_text` of it at that time, when already read.
    Returns ``{"transitions", "threads", "dropped"}``: the transitions it caused, the records of the threads
    it changed and the ids of threads evicted to make room. The records are the state's own dicts: serialise
    them before the next call.
    """
    rules = rules or load_rules()
    signals = item.get("signals") or ()
    neg = negotiation_signals(rules, signals)
    esc = [s for s in signals if s["kind"] == "escalation" and s.get("stance") == "reported"
           and s["category"] in rules.violation_categories]
    threads = state["threads"]
    if not neg and not (esc and state["agreements"]):
        return _empty()
    if item["id"] in state["seen"]:
        return _empty()  # a replay: the item already moved or joined the threads it concerns
    at = event_time(item) if at is None else float(at)
    doc = _doc(item)
    out = _empty()
    changed: dict[str, None] = {}
    moved: set[str] = set()
    ignored: set[str] | None = None  # read from the whole text when first needed
    if neg:
        text = text or read_text(rules, item, at)
        ignored = _ignored(rules, text)
        for group in text.tracks:
            _negotiation(state, rules, item, at, text, ignored, rules.track_by_id[group.track], group, out,
                         changed, moved)
    if esc:
        _violations(state, rules, item, at, doc, text, ignored, esc, out, changed, moved)
    out["threads"] = [threads[tid] for tid in changed if tid in threads]
    return out


def _read_whole(rules: TalksRules, item: dict[str, Any]) -> TalksText:
    """The venues and mediators of an item's whole text, without its sentences (an escalation's)."""
    whole = rules.read(_doc(item).lower())
    return TalksText(whole.venues, whole.mediators)


def _by_track(rules: TalksRules, doc: str, neg: list[dict], at: float) -> tuple[TrackGroup, ...]:
    """Negotiation signals grouped by sentence, each sentence given to the first track it matches."""
    sentences: dict[str, list[dict]] = {}
    for s in neg:
        sentences.setdefault(evidence_sentence(doc, s["start"], s["end"]), []).append(s)
    groups: dict[str, tuple[list[str], list[SentenceReading], set[str], list[str]]] = {}
    for sentence, sigs in sentences.items():
        reading = rules.read(sentence.lower(), at)
        track = rules.track_for({s["category"] for s in sigs}, reading)
        if track is None:
            continue
        said, readings, stances, actors = groups.setdefault(track.id, ([], [], set(), []))
        said.append(sentence)
        readings.append(SentenceReading(reading.cues, reading.venues, reading.duration_days, reading.deadline))
        stances.update(s["stance"] for s in sigs if s.get("stance"))
        actors.extend(a for s in sigs for a in s.get("actors", ()))
    return tuple(TrackGroup(track, tuple(said), tuple(readings), frozenset(stances), tuple(actors))
                 for track, (said, readings, stances, actors) in groups.items())


def _ignored(rules: TalksRules, text: TalksText) -> set[str]:
    """The actors the text names only as a venue ("talks in Istanbul": Turkey hosts, it is no party)."""
    return {rules.venue_tagged_as[v] for v in text.venues if v in rules.venue_tagged_as}


def _parties(rules: TalksRules, actors: list[str], ignored: set[str], belligerent_only: bool) -> list[str]:
    parties = {rules.party_of[a] for a in actors if a in rules.party_of and a not in ignored}
    if belligerent_only:
        parties &= rules.belligerents
        parties |= {rules.counterpart[p] for p in parties if p in rules.counterpart}
    return sorted(parties)


def _negotiation(state, rules, item, at, text: TalksText, ignored, track: Track, group: TrackGroup, out, changed,
                 moved) -> None:
    threads = state["threads"]
    item_actors = list(item.get("actors") or ())
    parties = _parties(rules, group.actors or item_actors, ignored, belligerent_only=True)
    if not parties:
        return  # another war, or no side of this one
    readings = group.readings
    venue = next((r.venues[0] for r in readings if r.venues), None) or next(iter(text.venues), None)
    mediators = list(dict.fromkeys(
        [rules.mediator_of[a] for a in [*group.actors, *item_actors]
         if a in rules.mediator_of and a not in ignored and rules.party_of.get(a) not in parties]
        + list(text.mediators)))
    stance = item.get("negotiation_stance")
    stances = {stance} if stance else group.stances
    cues = frozenset().union(*[r.cues for r in readings])
    duration = next((r.duration_days for r in readings if r.duration_days), None)
    deadline = min((r.deadline for r in readings if r.deadline), default=None)
    target = _target(stances, cues, deadline)

    same = [threads[tid] for tid in state["by_track"].get(_track_key(track.id, parties), ())]
    thread = _join(same, at, venue, mediators, rules.horizon_s)
    if thread is None:
        if target is None or target in TERMINAL:
            return
        thread = _open(state, rules, track, parties, venue, mediators, at, out)
    tid = thread["thread_id"]
    evidence = _evidence(item, group.sentences[_evidence_index(readings, target)])
    _adopt(thread, venue, mediators)
    cur = thread["state"]
    if target is not None and _allowed(cur, target):
        if target in ("agreed", "in_force") and thread["agreed_at"] is None:
            thread["agreed_at"] = iso(at)
            days = duration or thread["duration_days"]
            if days:
                thread["expires_at"] = iso(at + days * 86400.0)
        if target in _AGREEMENT:
            for d in thread["deadlines"]:
                if d["status"] == "pending":
                    d["status"] = "met"
        _transition(state, rules, thread, target, target, at, evidence, out)
        moved.add(tid)
    if duration:
        thread["duration_days"] = duration
    if ("extended" in cues and duration and thread["state"] in _AGREEMENT and tid not in moved
            and thread["expires_at"] is not None):
        thread["expires_at"] = iso(max(epoch(thread["expires_at"]), at) + duration * 86400.0)
        _transition(state, rules, thread, "extended", thread["state"], at, evidence, out)
        moved.add(tid)
    if deadline is not None and thread["state"] in PRE_AGREEMENT:
        due = iso(deadline)
        if all(d["due"] != due for d in thread["deadlines"]):
            said = next(i for i, r in enumerate(readings) if r.deadline == deadline)
            thread["deadlines"].append({"due": due, "status": "pending", "announced_at": iso(at),
                                        **_evidence(item, group.sentences[said])})
            del thread["deadlines"][:-rules.max_history]
    _seen(state, rules, thread, item["id"], at)
    changed[tid] = None


def _evidence_index(readings: tuple[SentenceReading, ...], target: str | None) -> int:
    """The sentence that says what moved the thread: the first with the target's cue, else the first."""
    return next((i for i, r in enumerate(readings) if target in r.cues), 0)


def _target(stances: set[str], cues: frozenset[str], deadline: float | None) -> str | None:
    """The state an item's sentences on one track point to (None: no move)."""
    if "collapsed" in cues:
        return "collapsed"
    if "rejected" in stances:
        return "rejected"
    if "in_force" in cues:
        return "in_force"
    if "agreed" in stances and "agreed" in cues:
        return "agreed"
    if "held" in cues:
        return "held"
    if "scheduled" in cues:
        return "scheduled"
    if stances & _OPENING_STANCES or "proposed" in cues or deadline is not None:
        return "proposed"
    return None


def _allowed(cur: str | None, target: str) -> bool:
    if cur in TERMINAL:
        return False
    if target == "collapsed":
        return True
    if target == "rejected":
        return cur in PRE_AGREEMENT
    return _STAGE[target] > _STAGE.get(cur, -1)


def _join(same: list[dict], at: float, venue: str | None, mediators: list[str],
          horizon_s: float) -> dict | None:
    """The open thread an item joins: same track and parties, active within the horizon (or with an
    agreement still running), no contradicting venue (or, when neither names one, no disjoint
    mediators); the most recently active one."""
    best = None
    at_iso, lo, hi = iso(at), iso(at - horizon_s), iso(at + horizon_s)
    for t in same:
        if t["state"] in TERMINAL:
            continue
        if venue and t["venue"] and venue != t["venue"]:
            continue
        if not (venue and t["venue"]) and mediators and t["mediators"] and set(mediators).isdisjoint(t["mediators"]):
            continue
        if not lo <= t["updated_at"] <= hi and not _pending(t, at_iso):
            continue
        if best is None or (t["updated_at"], t["thread_id"]) > (best["updated_at"], best["thread_id"]):
            best = t
    return best


def _open(state, rules, track, parties, venue, mediators, at, out) -> dict:
    threads = state["threads"]
    while len(threads) >= rules.max_threads:
        victim = min(threads.values(), key=lambda t: (t["state"] not in TERMINAL, t["updated_at"], t["thread_id"]))
        _drop(state, victim["thread_id"])
        out["dropped"].append(victim["thread_id"])
    where = venue or (mediators[0] if mediators else "any")
    base = f"{track.id}:{'+'.join(map(_slug, parties))}:{_slug(where)}:{iso(at)[:10]}"
    tid, n = base, 1
    while tid in threads:
        n += 1
        tid = f"{base}-{n}"
    thread = {
        "thread_id": tid, "track": track.id, "track_label": track.label, "parties": parties,
        "venue": venue, "mediators": list(mediators), "state": None, "opened_at": iso(at),
        "updated_at": iso(at), "agreed_at": None, "duration_days": None, "expires_at": None,
        "deadlines": [], "violations": [], "history": [], "seen_item_ids": [], "rules_version": rules.version,
    }
    threads[tid] = thread
    state["by_track"].setdefault(_track_key(track.id, parties), []).append(tid)
    return thread


def _adopt(thread: dict, venue: str | None, mediators: list[str]) -> None:
    if venue and not thread["venue"]:
        thread["venue"] = venue
    for m in mediators:
        if m not in thread["mediators"]:
            thread["mediators"].append(m)


def _seen(state: dict, rules: TalksRules, thread: dict, item_id: str, at: float) -> None:
    seen = thread["seen_item_ids"]
    seen.append(item_id)
    state["seen"][item_id] = state["seen"].get(item_id, 0) + 1
    if len(seen) > rules.max_seen_ids:
        _unsee(state["seen"], seen[:-rules.max_seen_ids])
        del seen[:-rules.max_seen_ids]
    at_iso = iso(at)
    if at_iso > thread["updated_at"]:
        thread["updated_at"] = at_iso


def _evidence(item: dict, sentence: str) -> dict[str, Any]:
    ev: dict[str, Any] = {"item_ids": [item["id"]], "sentence": sentence}
    for field in ("source", "title", "url"):
        if item.get(field):
            ev[field] = item[field]
    return ev


# ---------------------------------------------------------------------- violations
def _violations(state, rules, item, at, doc, text, ignored, esc, out, changed, moved) -> None:
    """``ignored``: None when not read yet (an escalation-only item: most meet no agreement that covers
    them, and reading the whole text was most of the tracker's work on them); ``text``: None when not read
    either."""
    threads = state["threads"]
    candidates = [t for t in map(threads.__getitem__, sorted(state["agreements"]))
                  if t["thread_id"] not in moved and rules.track_by_id[t["track"]].violated_by]
    item_actors = list(item.get("actors") or ())
    sentence_of: dict[tuple[int, int], str] = {}
    readings: dict[str, Reading] = {}
    for thread in candidates:
        if iso(at) < thread["agreed_at"]:
            continue
        track = rules.track_by_id[thread["track"]]
        own = set(thread["parties"])
        for s in esc:
            if s["category"] not in track.covers:
                continue
            if ignored is None:
                ignored = _ignored(rules, text or _read_whole(rules, item))
            parties = _parties(rules, s.get("actors") or item_actors, ignored, belligerent_only=False)
            if not parties or not own.issuperset(parties):
                continue  # another war, or a strike involving a party outside this thread
            span = (s["start"], s["end"])
            sentence = sentence_of.get(span)
            if sentence is None:
                sentence = sentence_of[span] = evidence_sentence(doc, *span)
            reading = readings.get(sentence)
            if reading is None:
                reading = readings[sentence] = rules.read(sentence.lower())
            if not rules.violates(track, s["category"], reading):
                continue
            evidence = _evidence(item, sentence)
            thread["violations"].append({"at": iso(at), "category": s["category"], **evidence})
            del thread["violations"][:-rules.max_violations]
            if thread["state"] in COVERED:
                _transition(state, rules, thread, "violated", "violated", at, evidence, out)
            _seen(state, rules, thread, item["id"], at)
            changed[thread["thread_id"]] = None
            break


# ---------------------------------------------------------------------- clock
def tick(state: dict[str, Any], now: float, rules: TalksRules | None = None) -> dict[str, list]:
    """Advance the clock to ``now`` (epoch seconds): expire agreements past their term, raise
    ``deadline_missed`` for announced deadlines that passed before an agreement, and drop threads quiet
    for longer than the horizon with nothing pending. Transitions carry the expiry or due time, not ``now``,
    so ticking again (or at another moment) changes nothing.
    """
    rules = rules or load_rules()
    out = _empty()
    changed: dict[str, None] = {}
    threads = state["threads"]
    now_iso, quiet_since = iso(now), iso(now - rules.horizon_s)
    for tid in sorted(threads):
        t = threads[tid]
        if t["state"] in _AGREEMENT and t["expires_at"] and t["expires_at"] <= now_iso:
            days = t["duration_days"]
            ev = {"item_ids": [], "sentence": f"the {days:g}-day term agreed on {t['agreed_at'][:10]} ended"}
            _transition(state, rules, t, "expired", "expired", epoch(t["expires_at"]), ev, out)
            changed[tid] = None
        if t["state"] in PRE_AGREEMENT:
            for d in t["deadlines"]:
                if d["status"] == "pending" and d["due"] <= now_iso:
                    d["status"] = "missed"
                    ev = {k: v for k, v in d.items() if k not in ("due", "status", "announced_at")}
                    ev["deadline"] = d["due"]
                    _transition(state, rules, t, "deadline_missed", t["state"], epoch(d["due"]), ev, out)
                    changed[tid] = None
    for tid in sorted(threads):
        t = threads[tid]
        if tid not in changed and t["updated_at"] < quiet_since and not _pending(t, now_iso):
            _drop(state, tid)  # (a thread that moved in this tick is published first, dropped at the next)
            out["dropped"].append(tid)
    out["threads"] = [threads[tid] for tid in changed]
    return out


def _pending(t: dict, now: str) -> bool:
    """Something still due on a thread after ``now``: a running agreement's expiry or an open deadline."""
    if t["state"] in _AGREEMENT and t["expires_at"] and t["expires_at"] > now:
        return True
    return t["state"] in PRE_AGREEMENT and any(d["status"] == "pending" for d in t["deadlines"])


# ---------------------------------------------------------------------- transitions and alerts
def transition_alert_id(thread_id: str, key: str) -> str:
    """Deterministic alert id of one transition of one thread."""
    return "neg-" + hashlib.sha256(f"talks|{thread_id}|{key}".encode()).hexdigest()[:24]


def _transition(state, rules, thread, kind, to, at, evidence, out) -> None:
    frm = thread["state"]
    at_iso = iso(at)
    key = {"extended": f"extended:{thread['expires_at']}",
           "deadline_missed": f"deadline_missed:{evidence.get('deadline')}"}.get(kind, f"{frm}>{to}")
    tr = {"alert_id": transition_alert_id(thread["thread_id"], key), "thread_id": thread["thread_id"],
          "track": thread["track"], "kind": kind, "from": frm, "to": to, "at": at_iso,
          "summary": "", "evidence": evidence}
    thread["state"] = to
    agreements = state["agreements"]
    if to in _AGREEMENT and thread["thread_id"] not in agreements:
        agreements.append(thread["thread_id"])
    elif to not in _AGREEMENT and thread["thread_id"] in agreements:
        agreements.remove(thread["thread_id"])
    if at_iso > thread["updated_at"]:
        thread["updated_at"] = at_iso
    tr["summary"] = summary(thread, tr, rules)
    thread["history"].append(tr)
    del thread["history"][:-rules.max_history]
    out["transitions"].append(tr)


def thread_title(thread: dict, rules: TalksRules | None = None) -> str:
    """'Energy truce (Russia–Ukraine, US-brokered, Riyadh)'."""
    rules = rules or load_rules()
    bits = ["\u2013".join(thread["parties"])]
    if thread["mediators"]:
        med = thread["mediators"][0]
        bits.append(f"{rules.mediator_label.get(med, med)}-brokered")
    if thread["venue"]:
        bits.append(thread["venue"])
    return f"{thread['track_label']} ({', '.join(bits)})"


def summary(thread: dict, tr: dict, rules: TalksRules | None = None) -> str:
    """One line: 'Energy truce (Russia–Ukraine, US-brokered): agreed → violated — strike on Odesa substation'."""
    ev = tr["evidence"]
    detail = " ".join((ev.get("title") or ev.get("sentence") or "").split())
    shown = _SHOWN.get
    if tr["kind"] == "deadline_missed":
        move = f"deadline {tr['at'][:10]} passed without agreement ({shown(tr['to'], tr['to'])})"
    elif tr["kind"] == "extended":
        move = f"{shown(tr['to'], tr['to'])}, extended to {thread['expires_at'][:10]}"
    else:
        frm = tr["from"]
        move = f"{shown(frm, frm) if frm else 'new'} \u2192 {shown(tr['to'], tr['to'])}"
    line = f"{thread_title(thread, rules)}: {move}" + (f" \u2014 {detail}" if detail else "")
    return line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 1] + "\u2026"


def transition_alert(tr: dict, thread: dict, created_at: str, rules: TalksRules | None = None) -> dict:
    """The ``alerts.negotiation`` record (schemas/alert.v1.json) of one transition."""
    rules = rules or load_rules()
    ev = tr["evidence"]
    alert = {
        "alert_id": tr["alert_id"], "type": "negotiation", "severity": rules.severity.get(tr["kind"], "low"),
        "summary": tr["summary"], "item_ids": list(ev.get("item_ids", ())), "categories": [thread["track"]],
        "actors": [*thread["parties"], *thread["mediators"]], "stances": [{"category": thread["track"], "stance": tr["kind"], "evidence": ev.get("sentence") or ""}],
        "evidence": [ev["sentence"]] if ev.get("sentence") else [], "created_at": created_at,
        "lexicon_version": rules.version, "thread_id": thread["thread_id"],
        "transition": {"kind": tr["kind"], "from": tr["from"], "to": tr["to"], "at": tr["at"]},
    }
    for field in ("source", "url", "title"):
        if ev.get(field):
            alert[field] = ev[field]
    return alert
