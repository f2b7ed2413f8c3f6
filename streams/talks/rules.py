"""The negotiation-track rules (``streams/lexicons/talks.yaml``), compiled for reading sentences.

The rules are data validated against ``schemas/talks.v1.json``. All their phrases (cues, the words a
track or a violation rule requires, venue and mediator names, time words) go into one Aho-Corasick
automaton over text normalised as the tagger does it (``streams.tagging.engine.normalize``), so reading
a sentence is one scan, whatever the number of phrases. The regexes for a stated duration ("a 30-day
truce", "for two weeks") and an announced deadline ("within two weeks", "by Friday", "deadline of
April 30") run only on sentences where the scan saw a time word.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import ahocorasick

from streams.datafile import line_of, load_yaml
from streams.settings import SCHEMA_DIR
from streams.tagging.engine import normalize

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "lexicons" / "talks.yaml"
CUE_KINDS = ("proposed", "scheduled", "held", "agreed", "in_force", "collapsed", "extended")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_DAY = 86400.0


class TalksRulesError(ValueError):
    """Rules that cannot be used (unreadable, not YAML, or not valid against ``schemas/talks.v1.json``)."""


def _alternation(phrases: list[str] | tuple[str, ...]) -> str:
    """A regex group matching any of ``phrases`` (longest first), spaces matching any run of spaces."""
    parts = sorted({re.escape(p).replace("\\ ", r"\s+") for p in phrases}, key=len, reverse=True)
    return "(?:" + "|".join(parts) + ")" if parts else "(?!)"


@dataclass(frozen=True, slots=True)
class ViolationRule:
    key: str  # requires-phrase tag, or "" when the rule requires nothing
    categories: frozenset[str]


@dataclass(frozen=True, slots=True)
class Track:
    id: str
    label: str
    categories: frozenset[str]
    requires: bool
    violated_by: tuple[ViolationRule, ...]
    covers: frozenset[str]  # escalation categories of all violated_by rules


@dataclass(frozen=True, slots=True)
class Reading:
    """What the rules read in one sentence (or a whole item)."""

    tags: frozenset[str]  # "cue:held", "track:energy_truce", "rule:energy_truce:1", ...
    cues: frozenset[str]
    venues: tuple[str, ...]  # in order of first mention
    mediators: tuple[str, ...]  # named by an alias the tagging pack does not know
    duration_days: float | None
    deadline: float | None  # epoch seconds, end of the due day (UTC)


class TalksRules:
    """Compiled talks rules. Build with :func:`load_rules`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.version: str = data["version"]
        self.horizon_s: float = float(data["horizon_days"]) * _DAY
        limits = data["limits"]
        self.max_threads: int = limits["max_threads"]
        self.max_seen_ids: int = limits["max_seen_ids"]
        self.max_history: int = limits["max_history"]
        self.max_violations: int = limits["max_violations"]
        self.severity: dict[str, str] = dict(data.get("severity") or {})
        self.party_of: dict[str, str] = {}
        self.belligerents: frozenset[str] = frozenset(
            p for p, spec in data["parties"].items() if spec.get("belligerent"))
        self.counterpart: dict[str, str] = {
            p: spec["counterpart"] for p, spec in data["parties"].items() if spec.get("counterpart")}
        for party, spec in data["parties"].items():
            for actor in spec["actors"]:
                self.party_of[actor] = party
        self.mediator_of: dict[str, str] = {}
        self.mediator_label: dict[str, str] = {}
        # phrase -> tags; a tag is "group:id" (see Reading.tags)
        phrases: dict[str, set[str]] = {}

        def add(terms, tag: str) -> None:
            for term in terms:
                phrases.setdefault(term, set()).add(tag)

        for med, spec in data["mediators"].items():
            self.mediator_label[med] = spec["label"]
            for actor in spec.get("actors", ()):
                self.mediator_of[actor] = med
            add(spec.get("aliases", ()), f"mediator:{med}")
        self.venue_tagged_as: dict[str, str] = {}
        for venue, spec in data["venues"].items():
            add(spec["aliases"], f"venue:{venue}")
            if spec.get("tagged_as"):
                self.venue_tagged_as[venue] = spec["tagged_as"]
        tracks = []
        for t in data["tracks"]:
            add(t.get("requires", ()), f"track:{t['id']}")
            rules = []
            for i, r in enumerate(t["violated_by"]):
                key = f"rule:{t['id']}:{i}" if r.get("requires") else ""
                add(r.get("requires", ()), key)
                rules.append(ViolationRule(key, frozenset(r["categories"])))
            tracks.append(Track(t["id"], t["label"], frozenset(t["categories"]), bool(t.get("requires")),
                                tuple(rules), frozenset().union(*[r.categories for r in rules])))
        self.tracks: tuple[Track, ...] = tuple(tracks)
        self.track_by_id: dict[str, Track] = {t.id: t for t in self.tracks}
        self.negotiation_categories: frozenset[str] = frozenset().union(*[t.categories for t in self.tracks])
        self.violation_categories: frozenset[str] = frozenset().union(*[t.covers for t in self.tracks])
        cues = data["cues"]
        for kind in CUE_KINDS:
            add(cues[kind], f"cue:{kind}")
        self._numbers: dict[str, int] = dict(data["numbers"])
        self._units: dict[str, float] = dict(data["units"])
        add([*self._units, *(u + "s" for u in self._units)], "time:unit")
        add(cues["date_leads"], "time:lead")
        add([*_WEEKDAYS, *_MONTHS], "time:date")
        self._automaton = ahocorasick.Automaton()
        for phrase, tags in phrases.items():
            key = f" {' '.join(normalize(phrase.lower()).split())} "
            old = self._automaton.get(key, ())
            self._automaton.add_word(key, tuple(sorted({*old, *tags} - {""})))
        self._automaton.make_automaton()
        num = r"(\d{1,3}|" + _alternation(list(self._numbers)) + ")"
        unit = "(" + _alternation(list(self._units)) + ")s?"
        # "30-day", "a two-week", "month-long"; "for 30 days"
        self._duration_res = (
            re.compile(rf"(?<!\w){num}[\s-]{unit}[\s-]long(?!\w)"),
            re.compile(rf"(?<![\w-]){num}-{unit}(?!\w)"),
            re.compile(rf"(?<!\w)()(?<!\d )(?<!-){unit}-long(?!\w)"),
            re.compile(rf"(?<!\w){_alternation(cues['duration_leads'])}\s+{num}\s+{unit}(?!\w)"),
        )
        # "within two weeks", "two weeks to agree"; "by Friday", "deadline of April 30"
        self._deadline_in_res = (
            re.compile(rf"(?<!\w){_alternation(cues['deadline_leads'])}\s+{num}\s+{unit}(?!\w)"),
            re.compile(rf"(?<!\w){num}\s+{unit}\s+to\s+{_alternation(cues['deadline_verbs'])}(?!\w)"),
        )
        lead = _alternation(cues["date_leads"])
        month = "(" + _alternation(_MONTHS) + ")"
        self._deadline_day_re = re.compile(rf"(?<!\w){lead}\s+(?:next\s+)?({_alternation(_WEEKDAYS)})(?!\w)")
        self._deadline_date_res = (
            re.compile(rf"(?<!\w){lead}\s+{month}\s+(\d{{1,2}})(?!\d)"),
            re.compile(rf"(?<!\w){lead}\s+(\d{{1,2}})\s+{month}(?!\w)"),
        )

    # ------------------------------------------------------------------ sentences
    def read(self, low: str, at: float | None = None) -> Reading:
        """What lower-cased ``low`` says: its phrase tags, cues, venues and mediator aliases, and, when
        ``at`` (publication time, epoch seconds) is given, a stated duration and an announced deadline."""
        seen: dict[str, None] = {}  # tags in order of first mention
        for _, found in self._automaton.iter(f" {normalize(low)} "):
            for tag in found:
                seen[tag] = None
        tags = frozenset(seen)
        venues = tuple(t[6:] for t in seen if t[:6] == "venue:")
        mediators = tuple(t[9:] for t in seen if t[:9] == "mediator:")
        cues = frozenset(t[4:] for t in seen if t[:4] == "cue:")
        duration = deadline = None
        if at is not None and "time:unit" in tags:
            duration = self.duration_days(low)
        if at is not None and ("time:unit" in tags or {"time:lead", "time:date"} <= tags):
            deadline = self.deadline(low, at)
        return Reading(tags, cues, venues, mediators, duration, deadline)

    def track_for(self, categories: set[str] | frozenset[str], reading: Reading) -> Track | None:
        """The first track whose categories meet ``categories`` and whose ``requires`` the sentence has."""
        for track in self.tracks:
            if not track.categories.isdisjoint(categories) and (
                    not track.requires or f"track:{track.id}" in reading.tags):
                return track
        return None

    @staticmethod
    def violates(track: Track, category: str, reading: Reading) -> bool:
        """Whether an escalation of ``category`` in a sentence read as ``reading`` breaks ``track``."""
        return any(category in r.categories and (not r.key or r.key in reading.tags) for r in track.violated_by)

    def _amount(self, number: str, unit: str) -> float:
        n = int(number) if number.isdigit() else self._numbers.get(number, 1) if number else 1
        return n * self._units[unit]

    def duration_days(self, low: str) -> float | None:
        """A stated duration in days ("30-day", "a two-week", "month-long", "for 30 days"), else None."""
        for rx in self._duration_res:
            m = rx.search(low)
            if m:
                return self._amount(m.group(1), m.group(2))
        return None

    def deadline(self, low: str, at: float) -> float | None:
        """The earliest deadline announced in ``low`` (epoch seconds, end of the UTC day), else None."""
        day = datetime.fromtimestamp(at, timezone.utc).date()
        dues = []
        for rx in self._deadline_in_res:
            for m in rx.finditer(low):
                dues.append(day + timedelta(days=round(self._amount(m.group(1), m.group(2)))))
        for m in self._deadline_day_re.finditer(low):
            ahead = (_WEEKDAYS.index(m.group(1)) - day.weekday()) % 7 or 7
            dues.append(day + timedelta(days=ahead))
        for i, rx in enumerate(self._deadline_date_res):
            for m in rx.finditer(low):
                month, dom = (m.group(1), m.group(2)) if i == 0 else (m.group(2), m.group(1))
                due = _date(day.year, _MONTHS.index(month) + 1, int(dom))
                if due is not None and due < day:
                    due = _date(day.year + 1, _MONTHS.index(month) + 1, int(dom))
                if due is not None:
                    dues.append(due)
        if not dues:
            return None
        due = min(dues)
        return datetime(due.year, due.month, due.day, 23, 59, 59, tzinfo=timezone.utc).timestamp()


def _date(year: int, month: int, day: int) -> Any:
    try:
        return datetime(year, month, day).date()
    except ValueError:
        return None


# ---------------------------------------------------------------------- loading
@lru_cache(maxsize=1)
def rules_schema() -> dict[str, Any]:
    path = SCHEMA_DIR / "talks.v1.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TalksRulesError(f"talks schema {path} not found: set SIGNALWATCH_SCHEMAS_DIR to the project's "
                              f"schemas/ folder") from exc


def read_rules(path: str | Path | None = None) -> dict[str, Any]:
    """Read, parse and validate a talks rules file; returns the plain data. Raises :class:`TalksRulesError`."""
    p = Path(path) if path is not None else DEFAULT_RULES
    data, root = load_yaml(p, rules_schema(), "talks rules", TalksRulesError)
    for party, spec in data["parties"].items():
        other = spec.get("counterpart")
        if other is not None and other not in data["parties"]:
            raise TalksRulesError(f"{p}:{line_of(root, ['parties', party])}: counterpart {other!r} of {party} "
                                  "is not a party")
    return data


_cache: dict[str, TalksRules] = {}
_lock = threading.Lock()


def load_rules(path: str | Path | None = None, horizon_days: float | None = None) -> TalksRules:
    """The compiled talks rules (default ``streams/lexicons/talks.yaml``), cached per path and horizon;
    ``horizon_days`` overrides the file's (a deployment setting)."""
    key = f"{Path(path).resolve() if path is not None else DEFAULT_RULES}|{horizon_days}"
    rules = _cache.get(key)
    if rules is None:
        with _lock:
            rules = _cache.get(key)
            if rules is None:
                data = read_rules(path)
                if horizon_days is not None:
                    if not horizon_days > 0:
                        raise TalksRulesError(f"talks horizon must be a positive number of days, not {horizon_days}")
                    data = dict(data, horizon_days=horizon_days)
                rules = _cache[key] = TalksRules(data)
    return rules
