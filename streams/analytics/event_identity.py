"""Whether two near-duplicate texts report the *same event*: places, numbers, dates, actors, categories.

The MinHash sketch (streams.analytics.similarity) measures shared wording, and news is templated: "Drone
attack on Kharkiv kills 3" and "Drone attack on Odesa kills 5" share most of their shingles, as do two
air-raid alerts for different cities or two daily strike reports. Merging them loses an event and lets
copies of *other* events corroborate it. So a near-duplicate candidate (similarity over the threshold) is
a copy only when :func:`same_event` also holds for the two items' :class:`EventKey`.

A key keeps what tells events apart and what syndicated copies keep unchanged:

* ``places``: the tagger's locations (pack ``places``: cities, oblasts by their centre's name), lead place
  first. The capitals double as governments ("Kyiv said", "Moscow says") and a wire dateline ("ODESA
  (wire) -") says where a report was filed, so they come after the other places.
* ``actors``: the tagger's actors except Russia and Ukraine (named by nearly every item, also through
  "Kyiv" and "Moscow": they tell no event apart); ``categories``: the signals' categories.
* ``weapons`` and ``targets``: classes of the English words for them in the lead (drone, missile, glide
  bomb, artillery; port, energy, residential, hotel, school, refinery, ...): the tagger's categories
  overlap too much (a strike is ``air_strike`` and ``infrastructure_attack`` with either weapon).
* ``counts``: the largest number attached to each kind of thing (killed, injured, drones, missiles,
  prisoners, ...): the largest, because a story adds smaller figures ("12 killed, including 3 children")
  and a revision raises the headline figure. A number belongs to the nearest kind word within ``_WINDOW``
  words in its sentence with no other number in between ("41 of 58 drones": 58 drones).
* ``numbers``: the other numbers (an ordinal "19th package", an age, hours a day);
  ``dates``: calendar days ("Nov 28", "28 November", "2026-11-28") and weekdays ("on Monday").
* ``happened``: whether most escalation signals are reported ("r") or threatened ("t"; a tie: "") -- a
  threat to strike a city and the strike on it are two events. Most, not any: in "Russia threatens strike
  on Kyiv" the tagger calls the headline's "strike" reported, the body's threats outnumber it;
* ``short``: fewer than ``SHORT_WORDS`` words (a bare headline): the strictest check.

The rules of :func:`same_event`, for texts that are not short (a component missing on one side never
separates them: a trimmed copy drops sentences):

* places: the lead place of each is among the other's, and not both name a place the other does not
  ("Air-raid alert in Lviv" / "... in Kyiv": different; a copy adding "Kyiv said": same);
* actors, weapons, targets, numbers, dates: not both naming one the other does not (a number may be a
  count on the other side): "missile strike" / "drone strike" on one city, a hotel and an office
  building / a school and an office building: different;
* categories: not disjoint (the tagger gives a strike several related categories);
* happened: equal when both have escalation signals;
* counts: per kind named by both, the largest values agree. Casualty counts (killed, injured,
  casualties, children) must be *equal*: a death-toll revision (12 -> 14) is a new report the analyst
  has to see, not a copy (the issue counts a hidden revision as a defect). Other counts agree when equal
  or, both at least ``ROUNDED`` (50), within ``REL_TOLERANCE`` (10 %): "about 100 drones" and "103
  drones" are one raid reported at different precision, 12 and 14 missiles are two raids. Numbers that
  count nothing known (an ordinal, an age) must be equal.

Short texts: every component equal (counts within the same tolerance). In a headline a changed word is
a different event as often as an edit, and a missing place or number cannot be assumed to agree.

Use: after tagging, ``key = event_key(title, text, tag_result)``; keep ``key.pack()`` in the story record
of a new story; where the index confirms a near-duplicate on the signature, it is a copy only if
``same_event(EventKey.unpack(stored), key)``; otherwise the search goes on (another band may hold the
real copy) and, with none left, the item is a new story.

Cost: :func:`event_key` is one regex tokenisation of the title and lead (``MAX_CHARS``) and a look at
the few numbers in it; :func:`same_event` a handful of set operations; a key packs into some 60-150
bytes (:meth:`EventKey.pack`) kept with the remembered story (bench/bench_dedup.py measures all three).
"""

from __future__ import annotations

import re
from itertools import compress, count, repeat
from operator import gt, or_
from typing import Any, NamedTuple

SHORT_WORDS = 20
"""Texts with fewer words than this (title and text together: a headline, a headline with a fragment)
get the strict check."""
REL_TOLERANCE = 0.10
ROUNDED = 50
"""Counts other than casualties of at least this size agree within ``REL_TOLERANCE`` of the larger."""
MAX_CHARS = 800
"""Numbers, dates, weapons and targets are read from the first characters of the title and the text: the
lead, where copies agree and an event's figures are given (and a bounded cost for a huge item)."""
_WINDOW = 4
_MAX_NAMES = 8
_BACKGROUND_ACTORS = frozenset({"Russia", "Ukraine"})
_CAPITALS = frozenset({"Kyiv", "Moscow"})

# kind code -> words (English, exact) and stems (Ukrainian / Russian, prefix); one letter each in the key
_KIND_WORDS = {
    "k": "kill kills killed killing dead death deaths died die dies lives fatalities bodies",
    "i": "injure injures injured injuring injuries wound wounds wounded wounding hurt",
    "c": "casualties casualty",
    "h": "child children kids minors",
    "d": "drone drones uav uavs shahed shaheds",
    "m": "missile missiles rocket rockets",
    "b": "bomb bombs",
    "s": "shell shells",
    "p": "prisoner prisoners pows captives",
    "t": "soldiers troops servicemen",
}
_KIND_STEMS = {
    "k": ("загин", "вбит", "убит", "загибл", "погиб"),
    "i": ("поранен", "ранен", "травмов", "постражд", "пострад"),
    "h": ("дит", "дет"),
    "d": ("дрон", "безпілотн", "беспилотн", "шахед"),
    "m": ("ракет",),
    "p": ("полонен", "пленн", "військовополон", "военнопленн"),
}
_KIND_OF = {w: k for k, words in _KIND_WORDS.items() for w in words.split()}
_CASUALTY_KINDS = frozenset("kich")
_WEAPON_WORDS = {
    "drone": "drone drones uav uavs shahed shaheds",
    "missile": "missile missiles rocket rockets ballistic cruise iskander kinzhal kalibr",
    "bomb": "bomb bombs glide",
    "artillery": "shelling shelled shells artillery mortar mortars howitzer howitzers mlrs",
}
_TARGET_WORDS = {
    "energy": "energy power electricity substation substations grid thermal hydroelectric outages blackout",
    "port": "port ports harbour harbor seaport docks",
    "residential": "apartment apartments residential homes houses house dormitory high-rise building buildings",
    "rail": "railway railways train trains rail",
    "hospital": "hospital hospitals clinic maternity",
    "school": "school schools kindergarten university",
    "oil": "refinery refineries oil fuel",
    "gas": "gas",
    "ammunition": "ammunition munitions arsenal",
    "airfield": "airfield airfields airbase airport",
    "hotel": "hotel hotels",
    "market": "market supermarket mall shopping",
    "bridge": "bridge",
    "ships": "ship ships warship warships vessel vessels fleet",
}
_WEAPON_OF = {w: c for c, words in _WEAPON_WORDS.items() for w in words.split()}
_TARGET_OF = {w: c for c, words in _TARGET_WORDS.items() for w in words.split()}
_THING_WORDS = frozenset(_WEAPON_OF) | frozenset(_TARGET_OF)
_NUMBER_WORDS = {w: n for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split()) if n}
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_MONTHS.update({"january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7, "august": 8,
                "sept": 9, "september": 9, "october": 10, "november": 11, "december": 12})
_WEEKDAYS = {d: i for i, d in enumerate("monday tuesday wednesday thursday friday saturday sunday".split())}
_SPECIAL = frozenset(_NUMBER_WORDS) | frozenset(_WEEKDAYS)
_ORDINAL = frozenset({"st", "nd", "rd", "th"})
_STOP = frozenset(".!?;:")
# tokens: numbers ("1,200", "03:40", "1.5"), words (hyphenated ones whole: "nine-storey" and
# "12-year-old" are no counts), sentence ends. A Python loop then looks only at the few numbers and their
# neighbours: a regex with word alternatives and look-arounds costs several times more. The most common
# token, an ASCII word, is tried first (no other alternative starts with a-z).
_TOKEN_RE = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+(?:[,.:]\d+)*(?:-\w+)*|[^\W\d_]+(?:-[^\W\d_]+)*|[.!?;:]")
_ISO_DATE_RE = re.compile(r"\d\d\d\d-([01]\d)-([0-3]\d)")
_DATELINE_RE = re.compile(
    r"\s*([A-ZА-ЯІЇЄҐ][A-ZА-ЯІЇЄҐ'’ -]*[A-ZА-ЯІЇЄҐ])\b[^()/\n]{0,30}(?:\([^()\n]{1,30}\)\s*[-–—]|/[^/\n]{1,20}/)")
"""A wire dateline: "ODESA, Nov 28 (Reuters) -" or "MOSCOW, November 28. /TASS/."."""
_US, _RS = "\x1f", "\x1e"


class EventKey(NamedTuple):
    """What tells an item's event apart from another's (see the module docstring)."""

    places: tuple[str, ...] = ()
    """In order of mention, the lead place first."""
    actors: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    weapons: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()
    counts: tuple[tuple[str, int], ...] = ()
    """(kind code, largest value), sorted by kind."""
    numbers: frozenset[int] = frozenset()
    dates: frozenset[int] = frozenset()
    """month * 100 + day for calendar days, 1000 + weekday (Monday 0) for weekdays."""
    happened: str = ""
    """``r`` when an escalation signal is reported, ``t`` when all are threatened, empty without one."""
    short: bool = False

    def pack(self) -> bytes:
        """A compact byte string (:meth:`unpack` inverts it) to keep with a remembered story."""
        fields = (("1" if self.short else "0") + self.happened, _US.join(self.places), _US.join(sorted(self.actors)),
                  _US.join(sorted(self.categories)), _US.join(sorted(self.weapons)),
                  _US.join(sorted(self.targets)), _US.join(f"{k}{v}" for k, v in self.counts),
                  _US.join(map(str, sorted(self.numbers))), _US.join(map(str, sorted(self.dates))))
        return _RS.join(fields).encode("utf-8", "surrogatepass")

    @classmethod
    def unpack(cls, raw: bytes) -> EventKey:
        flags, places, actors, cats, weapons, targets, counts, numbers, dates = \
            raw.decode("utf-8", "surrogatepass").split(_RS)
        return cls(tuple(places.split(_US)) if places else (),
                   frozenset(actors.split(_US)) if actors else frozenset(),
                   frozenset(cats.split(_US)) if cats else frozenset(),
                   frozenset(weapons.split(_US)) if weapons else frozenset(),
                   frozenset(targets.split(_US)) if targets else frozenset(),
                   tuple((c[0], int(c[1:])) for c in counts.split(_US)) if counts else (),
                   frozenset(map(int, numbers.split(_US))) if numbers else frozenset(),
                   frozenset(map(int, dates.split(_US))) if dates else frozenset(),
                   flags[1:], flags[0] == "1")


_NEAR = dict.fromkeys(_STOP | frozenset(_NUMBER_WORDS), "") | _KIND_OF
"""What a word next to a number says: its kind code, or "" where the look for one stops (a sentence end,
a number word); a digit stops it too, a word not here may be a Ukrainian or Russian stem."""


def _stem_kind(word: str) -> str | None:
    for k, stems in _KIND_STEMS.items():
        if word.startswith(stems):
            return k
    return None


def _nearest_kind(tokens: list[str], i: int, step: int) -> tuple[int, str | None]:
    """Distance and kind of the first kind word from ``tokens[i]`` on in direction ``step``, stopping
    at a number or a sentence end."""
    n = len(tokens)
    for d in range(1, _WINDOW + 1):
        i += step
        if not 0 <= i < n:
            break
        w = tokens[i]
        kind = _NEAR.get(w)
        if kind is None:
            if "0" <= w[0] <= "9":
                break
            if w.isascii() or (kind := _stem_kind(w)) is None:
                continue
        return (d, kind) if kind else (_WINDOW + 1, None)
    return _WINDOW + 1, None


def _month(word: str) -> int:
    return _MONTHS.get(word, 0) if len(word) >= 3 else 0


def _day(tokens: list[str], i: int) -> int:
    """The month of a day number at ``tokens[i]`` ("Nov 28", "Nov. 28", "28 November", "28th of
    November"), or 0."""
    month = _month(tokens[i - 1]) if i else 0
    if not month and i > 1 and tokens[i - 1] == ".":
        month = _month(tokens[i - 2])
    n = len(tokens)
    if not month and i + 1 < n:
        k = i + 1 + (tokens[i + 1] in _ORDINAL)
        k += k < n and tokens[k] == "of"
        month = _month(tokens[k]) if k < n else 0
    return month


def _scan(low: str) -> tuple[frozenset[str], frozenset[str], tuple[tuple[str, int], ...], set[int], set[int]]:
    """Weapons, targets, counts by kind (largest value), other numbers and dates of the lower-cased
    ``low``."""
    tokens = _TOKEN_RE.findall(low)
    things = _THING_WORDS.intersection(tokens)
    weapons = frozenset(_WEAPON_OF[w] for w in things if w in _WEAPON_OF)
    targets = frozenset(_TARGET_OF[w] for w in things if w in _TARGET_OF)
    counts: dict[str, int] = {}
    numbers: set[int] = set()
    dates: set[int] = set()
    numbers_at = map(gt, repeat(":"), tokens)  # the tokens before ":": digits ("0".."9") and some sentence ends
    if not _SPECIAL.isdisjoint(tokens):
        numbers_at = map(or_, numbers_at, map(_SPECIAL.__contains__, tokens))
    for i in compress(count(), numbers_at):
        w = tokens[i]
        if w in _STOP:
            continue
        if w in _WEEKDAYS:
            dates.add(1000 + _WEEKDAYS[w])
            continue
        if w[0] > "9":
            value = _NUMBER_WORDS[w]
        elif w.isdigit() or ("," in w and w.replace(",", "").isdigit()):
            value = int(w.replace(",", ""))
            if len(w) <= 2 and (month := _day(tokens, i)):
                if value <= 31:
                    dates.add(month * 100 + value)
                continue
            if len(w) == 4 and 1900 <= value <= 2100:
                continue  # a year
        else:
            continue  # a time, a decimal, "12-year-old"
        da, kind = _nearest_kind(tokens, i, 1)
        if da > 1:  # ties: the word after ("12 killed" over "killing"); a word right after needs no look back
            db, kb = _nearest_kind(tokens, i, -1)
            if db < da:
                kind = kb
        if kind is None:
            numbers.add(value)
        elif value > counts.get(kind, -1):
            counts[kind] = value
    if "-" in low:
        for m in _ISO_DATE_RE.finditer(low):
            dates.add(int(m.group(1)) * 100 + int(m.group(2)))
    return weapons, targets, tuple(sorted(counts.items())), numbers, dates


def _places(title: str, text: str, locations: list[str]) -> tuple[str, ...]:
    """The tagger's locations, the capitals after the others: the lead place is the first of the rest. A wire
    dateline's place ("ODESA, Nov 28 (wire) -") says where the report was filed: it is left out when the
    report names it nowhere else, and comes last when only the body names it again."""
    places = locations[:_MAX_NAMES]
    if m := _DATELINE_RE.match(text, 0, 120):
        where = m.group(1).casefold()
        if where not in f"{title} {text[m.end():]}".casefold():  # named only as where the report was filed
            places = [p for p in places if p.casefold() != where]
        elif places and places[0].casefold() == where and where not in title.casefold():
            places = [*places[1:], places[0]]
    if len(places) > 1 and places[0] in _CAPITALS:
        places = [p for p in places if p not in _CAPITALS] + [p for p in places if p in _CAPITALS]
    return tuple(places)


def _top(names: set[str] | frozenset[str]) -> frozenset[str]:
    return frozenset(sorted(names)[:_MAX_NAMES]) if len(names) > _MAX_NAMES else frozenset(names)


def event_key(title: str, text: str, tags: dict[str, Any]) -> EventKey:
    """The event key of an item from its text and its tag result (``streams.tagging`` ``tag()``; only
    ``locations``, ``actors`` and the signals' ``category`` are read)."""
    title, text = (title or "")[:MAX_CHARS], text or ""
    lead = f"{title}.\n{text[:MAX_CHARS]}" if title else text[:MAX_CHARS]  # the title is a sentence
    weapons, targets, counts, numbers, dates = _scan(lead.lower())
    words = len(title.split()) + len(text.split(None, SHORT_WORDS)[:SHORT_WORDS])
    signals = tags.get("signals") or ()
    stances = [s.get("stance") for s in signals if s.get("kind") == "escalation"]
    reported, threatened = stances.count("reported"), stances.count("threatened")
    return EventKey(
        _places(title, text, list(tags.get("locations") or ())),
        _top(set(tags.get("actors") or ()) - _BACKGROUND_ACTORS),
        _top({s["category"] for s in signals}),
        weapons,
        targets,
        counts,
        _top(numbers),
        _top(dates),
        "r" if reported > threatened else "t" if threatened > reported else "",
        words < SHORT_WORDS,
    )


def _agree(kind: str, x: int, y: int) -> bool:
    return x == y or (kind not in _CASUALTY_KINDS and min(x, y) >= ROUNDED
                      and abs(x - y) <= REL_TOLERANCE * max(x, y))


def _extra_numbers(a: EventKey, b: EventKey) -> bool:
    """Whether ``a`` names a number (not a count) that ``b`` names nowhere (a headline may give a count
    as a bare number: "150 home after exchange")."""
    extra = a.numbers - b.numbers
    return bool(extra) and bool(extra.difference([v for _, v in b.counts]))


_RS_B, _US_B = _RS.encode(), _US.encode()


def may_be_same_event(a: bytes, b: bytes) -> bool:
    """False when two packed keys (:meth:`EventKey.pack`) certainly fail :func:`same_event`, read on their
    bytes: with a short text, a component that differs (the packed sets are sorted, so equal sets pack
    equal); else a lead place missing from the other's places. A necessary condition only: True decides
    nothing. The story shard runs it before unpacking a stored key; on the bench's templated items it
    rejects ~99% of the candidates that pass the sketch (most of them against a bare headline)."""
    fa, fb = a.split(_RS_B), b.split(_RS_B)
    if fa[0][:1] == b"1" or fb[0][:1] == b"1":  # happened, actors, categories, weapons, targets, dates
        return fa[0][1:] == fb[0][1:] and fa[2:6] == fb[2:6] and fa[8] == fb[8]
    if fa[1] and fb[1]:
        pa, pb = fa[1].split(_US_B), fb[1].split(_US_B)
        return pa[0] in pb and pb[0] in pa
    return True


def same_event(a: EventKey, b: EventKey) -> bool:
    """True when two near-duplicate candidates may report the same event (the rules: module docstring)."""
    if a.short or b.short:
        if (set(a.places) != set(b.places) or a.actors != b.actors or a.categories != b.categories
                or a.weapons != b.weapons or a.targets != b.targets or a.dates != b.dates
                or a.happened != b.happened
                or len(a.counts) != len(b.counts) or _extra_numbers(a, b) or _extra_numbers(b, a)):
            return False
        return all(ka == kb and _agree(ka, x, y) for (ka, x), (kb, y) in zip(a.counts, b.counts, strict=True))
    if a.places and b.places:
        pa, pb = set(a.places), set(b.places)
        if a.places[0] not in pb or b.places[0] not in pa or (pa - pb and pb - pa):
            return False
    for x, y in ((a.actors, b.actors), (a.weapons, b.weapons), (a.targets, b.targets), (a.dates, b.dates)):
        if x - y and y - x:
            return False
    if a.happened and b.happened and a.happened != b.happened:
        return False
    if a.categories and b.categories and a.categories.isdisjoint(b.categories):
        return False
    if a.counts and b.counts:
        other = dict(b.counts)
        for kind, x in a.counts:
            y = other.get(kind)
            if y is not None and not _agree(kind, x, y):
                return False
    return not (_extra_numbers(a, b) and _extra_numbers(b, a))
