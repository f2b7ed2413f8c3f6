"""Whether two near-duplicate texts report the *same event*: places, numbers, dates, actors, categories.

The MinHash sketch (streams.analytics.similarity) measures shared wording, and news is templated: "Drone
attack on Kharkiv kills 3" and "Drone attack on Odesa kills 5" share most of their shingles, as do two
air-raid alerts for different cities or two daily strike reports. Merging them loses an event and lets
copies of *other* events corroborate it. So a near-duplicate candidate (similarity over the threshold) is
a copy only when :func:`same_event` also holds for the two items' :class:`EventKey`.

A key keeps what tells events apart and what syndicated copies keep unchanged:

* ``places``: the tagger's locations (pack ``places``: cities, oblasts by their centre's name), in order of
  first mention; the first is the *lead* place (headline, or lead sentence). A wire dateline ("KYIV
  (wire) -") or "Kyiv said" adds a place that is not the event's, hence the rule below tolerates extras.
* ``counts``: the largest number attached to each kind of thing (killed, injured, drones, missiles,
  prisoners, ...). The largest, because a story adds smaller figures ("12 killed, including 3 children")
  and a revision raises the headline figure. A number is attached to the nearest kind word within
  ``_WINDOW`` words in its sentence, with no other number in between ("41 of 58 drones": 58 drones).
* ``dates``: calendar days ("Nov 28", "28 November", "2026-11-28") and weekdays ("on Monday").
* ``actors`` and ``categories``: the tagger's canonical actors and its signals' categories.
* ``short``: fewer than ``SHORT_WORDS`` words (a bare headline), which gets the strictest check.

Decisions (the rules of :func:`same_event`; a missing component on one side never separates long texts):

* places: the lead place of each text is among the other's places, and not both texts name a place the
  other does not ("Air-raid alert in Lviv" / "... in Kyiv": different; a copy adding "Kyiv said": same);
* counts: per kind present in both, the largest values agree. Casualty counts (killed, injured,
  casualties, children) must be *equal*: a death-toll revision (12 -> 14) is a new report the analyst has
  to see, not a copy (the issue counts a hidden revision as a defect). Other counts (drones, missiles,
  ...) agree within ``REL_TOLERANCE`` (10 %) of the larger value: "about 100 drones" and "103 drones" are
  one raid reported at different precision, 12 and 14 missiles are two raids;
* dates, weekdays: not both naming a day the other does not;
* actors, categories: not disjoint ("missile strike" vs "drone strike" on the same city: different);
* short texts: every component equal (counts within the tolerance). In a headline a changed word is a
  different event as often as an edit, and a missing place or number cannot be assumed to agree.

Cost: :func:`event_key` is one regex scan of the title and lead (``MAX_CHARS``) plus a few words around
each number; :func:`same_event` a handful of set operations (bench/bench_dedup.py measures both). A key
packs into a few dozen bytes (:meth:`EventKey.pack`), stored in the story record.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

SHORT_WORDS = 20
"""Texts with fewer words than this (title and text together: a headline, a headline with a fragment)
get the strict check."""
REL_TOLERANCE = 0.10
"""Counts other than casualties agree when they differ by at most this share of the larger one."""
MAX_CHARS = 800
"""Numbers and dates are read from the title and the first characters of the text: the lead, where
copies agree and the event's figures are given (and a bounded cost for a long item)."""
_WINDOW = 4
_MAX_NAMES = 8

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
_NUMBER_WORDS = {w: n for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split()) if n}
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_WEEKDAYS = {d: i for i, d in enumerate("monday tuesday wednesday thursday friday saturday sunday".split())}

_MONTHS.update({"january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7, "august": 8,
                "sept": 9, "september": 9, "october": 10, "november": 11, "december": 12})
_ISO_DATE_RE = re.compile(r"\d\d\d\d-([01]\d)-([0-3]\d)")
# tokens: numbers ("1,200", "03:40", "1.5"), words, sentence ends; a Python loop then looks only at the
# few numbers and their neighbours (a regex with word alternatives and look-arounds costs ~5x more)
_TOKEN_RE = re.compile(r"\d+(?:[,.:]\d+)*|[a-z]+|[^\W\d_]+|[.!?;:]")  # ASCII words first: 2x faster
_STOP = frozenset(".!?;:")
_SPECIAL = frozenset(_NUMBER_WORDS) | frozenset(_WEEKDAYS)
_DATELINE_RE = re.compile(r"\s*([A-ZА-ЯІЇЄҐ][A-ZА-ЯІЇЄҐ'’ -]*[A-ZА-ЯІЇЄҐ])\b[^()\n]{0,30}\([^()\n]{1,30}\)\s*[-–—]")
_WORD_RE = re.compile(r"\d[\d,.:]*|[^\W\d_]+|[.!?;:]")
_STOP = frozenset(".!?;:")


class EventKey(NamedTuple):
    """What makes an item's event distinct from another (see the module docstring)."""

    places: tuple[str, ...] = ()
    actors: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    counts: tuple[tuple[str, int], ...] = ()
    """(kind code, largest value) sorted by kind."""
    dates: frozenset[int] = frozenset()
    """month * 100 + day for calendar days, 1000 + weekday (Monday 0) for weekdays."""
    short: bool = False

    def pack(self) -> bytes:
        """A compact byte string (``unpack`` inverts it) to store with a remembered story."""
        fields = ("1" if self.short else "0", "\x1f".join(self.places), "\x1f".join(sorted(self.actors)),
                  "\x1f".join(sorted(self.categories)), "\x1f".join(f"{k}{v}" for k, v in self.counts),
                  "\x1f".join(map(str, sorted(self.dates))))
        return "\x1e".join(fields).encode("utf-8", "surrogatepass")

    @classmethod
    def unpack(cls, raw: bytes) -> EventKey:
        short, places, actors, categories, counts, dates = raw.decode("utf-8", "surrogatepass").split("\x1e")
        return cls(tuple(places.split("\x1f")) if places else (),
                   frozenset(actors.split("\x1f")) if actors else frozenset(),
                   frozenset(categories.split("\x1f")) if categories else frozenset(),
                   tuple((c[0], int(c[1:])) for c in counts.split("\x1f")) if counts else (),
                   frozenset(map(int, dates.split("\x1f"))) if dates else frozenset(),
                   short == "1")


def _kind(word: str) -> str | None:
    kind = _KIND_OF.get(word)
    if kind is None and not word.isascii():
        for k, stems in _KIND_STEMS.items():
            if word.startswith(stems):
                return k
    return kind


def _nearest_kind(tokens: list[str], i: int, step: int) -> tuple[int, str | None]:
    """Distance and kind of the first kind word from ``tokens[i]`` on in direction ``step``, stopping
    at a number or a sentence end."""
    n = len(tokens)
    for d in range(1, _WINDOW + 1):
        j = i + d * step
        if not 0 <= j < n:
            break
        w = tokens[j]
        if w in _STOP or "0" <= w[0] <= "9" or w in _NUMBER_WORDS:
            break
        if (kind := _kind(w)) is not None:
            return d, kind
    return _WINDOW + 1, None


def _month(word: str) -> int:
    return _MONTHS.get(word, 0) if len(word) >= 3 else 0


def _numbers(low: str) -> tuple[tuple[tuple[str, int], ...], set[int]]:
    """Counts by kind (largest value) and dates of the lower-cased ``low``."""
    dates: set[int] = set()
    counts: dict[str, int] = {}
    tokens = _TOKEN_RE.findall(low)
    n = len(tokens)
    for i in [i for i, w in enumerate(tokens) if w < ":" or w in _SPECIAL]:  # "0".."9" sort before ":"
        w = tokens[i]
        if w in _STOP:
            continue
        if w in _WEEKDAYS:
            dates.add(1000 + _WEEKDAYS[w])
            continue
        if w[0] > "9":
            value = _NUMBER_WORDS[w]
        elif w.isdigit() or (w.count(",") and w.replace(",", "").isdigit()):
            value = int(w.replace(",", ""))
            if len(w) <= 2:  # a day next to a month: "Nov 28", "28 November", "28th of November"
                month = _month(tokens[i - 1]) if i else 0
                if not month and i > 1 and tokens[i - 1] == ".":  # "Nov. 28"
                    month = _month(tokens[i - 2])
                if not month and i + 1 < n:
                    k = i + 1 + (tokens[i + 1] in ("st", "nd", "rd", "th"))
                    k += k < n and tokens[k] == "of"
                    month = _month(tokens[k]) if k < n else 0
                if month:
                    if 1 <= value <= 31:
                        dates.add(month * 100 + value)
                    continue
            elif len(w) == 4 and 1900 <= value <= 2100:
                continue  # a year
        else:
            continue  # a time or a decimal
        da, ka = _nearest_kind(tokens, i, 1)
        db, kb = _nearest_kind(tokens, i, -1)
        kind = ka if da <= db else kb  # ties: the word after ("12 killed" over "killing")
        if kind is not None and value > counts.get(kind, -1):
            counts[kind] = value
    if "-" in low:
        for m in _ISO_DATE_RE.finditer(low):
            dates.add(int(m.group(1)) * 100 + int(m.group(2)))
    return tuple(sorted(counts.items())), dates


def _places(title: str, text: str, locations: list[str]) -> tuple[str, ...]:
    """The tagger's locations, a wire dateline's place ("KYIV, Nov 28 (wire) -") moved last: it says
    where the report was filed, so it is not the lead place unless the title names it."""
    places = tuple(locations[:_MAX_NAMES])
    if len(places) > 1 and (m := _DATELINE_RE.match(text)):
        where = m.group(1).casefold()
        if places[0].casefold() == where and where not in title.casefold():
            places = (*places[1:], places[0])
    return places


def event_key(title: str, text: str, tags: dict[str, Any]) -> EventKey:
    """The event key of an item from its text and its tag result (``streams.tagging`` ``tag()``: only
    ``locations``, ``actors`` and the signals' ``category`` are read)."""
    title, text = title or "", text or ""
    lead = f"{title}\n{text[:MAX_CHARS]}" if title else text[:MAX_CHARS]
    counts, dates = _numbers(lead.lower())
    words = len(title.split()) + len(text.split(None, SHORT_WORDS)[:SHORT_WORDS])
    return EventKey(
        _places(title, text, list(tags.get("locations") or ())),
        frozenset((tags.get("actors") or ())[:_MAX_NAMES]),
        frozenset(sorted({s["category"] for s in tags.get("signals") or ()})[:_MAX_NAMES]),
        counts,
        frozenset(sorted(dates)[:_MAX_NAMES]),
        words < SHORT_WORDS,
    )


def _counts_agree(kind: str, x: int, y: int) -> bool:
    if kind in _CASUALTY_KINDS:
        return x == y
    return abs(x - y) <= REL_TOLERANCE * max(x, y)


def same_event(a: EventKey, b: EventKey) -> bool:
    """True when two near-duplicate candidates may report the same event (the rules: module docstring)."""
    if a.short or b.short:
        if (set(a.places) != set(b.places) or a.actors != b.actors or a.categories != b.categories
                or a.dates != b.dates or len(a.counts) != len(b.counts)):
            return False
        return all(ka == kb and _counts_agree(ka, x, y) for (ka, x), (kb, y) in zip(a.counts, b.counts, strict=True))
    if a.places and b.places:
        pa, pb = set(a.places), set(b.places)
        if a.places[0] not in pb or b.places[0] not in pa or (pa - pb and pb - pa):
            return False
    if a.actors and b.actors and a.actors.isdisjoint(b.actors):
        return False
    if a.categories and b.categories and a.categories.isdisjoint(b.categories):
        return False
    if a.dates - b.dates and b.dates - a.dates:
        return False
    if a.counts and b.counts:
        other = dict(b.counts)
        for kind, x in a.counts:
            y = other.get(kind)
            if y is not None and not _counts_agree(kind, x, y):
                return False
    return True
