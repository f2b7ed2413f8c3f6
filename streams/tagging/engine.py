"""The tagging core: one Aho-Corasick pass for triggers, sentence-scoped stance and modality cues, scores.

Pure and thread-safe: a :class:`Tagger` is immutable after construction and ``tag`` does no I/O.

How a text is read:

1. ``doc`` (title + newline + text) is lower-cased and *normalised*: every punctuation or space
   character becomes a plain space, so offsets are unchanged. All pack terms were expanded at load
   time into their surface forms (``morph.expand_term``) and normalised the same way; automaton keys
   are ``" form "`` (``" stem"`` for ``stem*`` terms), so word boundaries are checked in C and each
   raw match is a real hit. No regex per phrase, no backtracking.
2. Trigger hits inside a longer trigger are dropped (``nuclear power plant`` beats ``nuclear``).
3. For each sentence holding a trigger, a second automaton finds stance cues and context words.
   A term with ``requires`` counts only if a word of one of its context groups is in the sentence;
   ``blocked_by`` groups within ``near`` words (whole sentence without ``near``) drop it (word
   sense: "strike a deal", "uphill battle"). A category's ``item_requires`` groups must occur
   somewhere in the item (a truce needs a party, place or topic of this war). A frame term with a
   bounded gap (``amass ~3 troops``) matches its head and needs its tail within that many words.
4. Cues work NegEx/ConText style: each cue class has a direction (``forward``: it governs triggers
   after it, ``backward``: before it, ``both``) and its scope is the clause: the ``windows`` in the
   pack, cut at breakers ("but", "while", ...). Escalation signals get a modality: ``negated``
   (negation, denial, cessation: "agreed to halt strikes"), ``hypothetical`` ("if", "to deter"),
   ``threatened`` (threat, plan, hedge), ``historical`` ("years after") or ``reported``. Which
   modalities count toward labels, scores and alerts is set per category (``counts``); the others
   stay in the output as evidence with ``counts: false``. Negotiation signals get one of six stances:
   denial and rejection scope over the window, otherwise the nearest conditional / agreed / proposed /
   open / hedge cue decides; pseudo-negations ("no agreement yet", "not only") are not negations.
5. The item's ``negotiation_stance`` is decided by the headline first, then the lead sentence, then
   the rest (strongest stance of the counting negotiation signals in the first zone that has one).

The cost is the Python work per hit, per sentence holding a trigger and per emitted signal, plus the
automaton scans (about 90 instructions per character in pyahocorasick).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import ahocorasick

from .lexicon import load_pack
from .morph import expand_term

_PUNCT_TABLE = bytes(b if (b >= 128 or chr(b).isalnum()) else 32 for b in range(256))
_UNICODE_PUNCT = "\u2019\u2018\u201c\u201d\u201e\u00ab\u00bb\u2014\u2013\u2026\u00a0\u2032\u00b7\u2011\u2012"
_WORD_REST = re.compile(r"\w*")
_INNER_SPACES = re.compile(" +")
# Sentence separators (after "!?;" were mapped to "."): end punctuation + space, also with a closing
# quote or bracket between; newlines; " | " / " - " separators of headline sources; a colon before a
# quotation. ``(separator, offset of the next sentence start)``; the ones after "." skip initials.
_SENT_TABLE = bytes(46 if chr(b) in "!?;" else b for b in range(256))
_DOT_SEPS_ASCII = ((". ", 2), (".\" ", 3), (".' ", 3), (".) ", 3))
_DOT_SEPS = (*_DOT_SEPS_ASCII, (".\u201d ", 3), (".\u00bb ", 3))
_OTHER_SEPS_ASCII = (("\n", 1), (" | ", 3), (": \"", 2))
_OTHER_SEPS = (*_OTHER_SEPS_ASCII, (" \u2014 ", 3), (" \u2013 ", 3), (": \u201c", 2), (": \u00ab", 2))
_SPACES = " \t\n\r\u00a0"
# the same for ASCII text, as regexes with a literal first character (fast scan in C) whose matches end
# where the next sentence starts (separator and following spaces consumed); look-behinds skip initials
#: titles and month names before a full stop that does not end a sentence ("Mr. Putin", "Rep. Gaetz",
#: "on Dec. 14"); news leads are full of them, and a split there cuts a clause and shifts the lead zone
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Rep", "Reps", "Sen", "Sens", "Gov", "Gen", "Lt", "Col", "Sgt", "Capt",
                  "Maj", "Adm", "Cmdr", "Prof", "Rev", "St", "Jr", "Sr", "Amb", "Pres", "Jan", "Feb", "Mar",
                  "Apr", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec")
_DOT_RE = re.compile("\\.(?:(?<![A-Z].)|(?<=[A-Za-z][A-Z].))"  # one look-behind per abbreviation length
                     + "".join(f"(?<!\\b(?:{'|'.join(a for a in _ABBREVIATIONS if len(a) == n)}).)"
                               for n in sorted({len(a) for a in _ABBREVIATIONS}))
                     + "[\"')]? [ \t\n\r]*")
_ABBREVIATION_ENDS = tuple(f" {a}" for a in _ABBREVIATIONS)
_NEWLINE_RE = re.compile("\n[ \t\n\r]*")
_BAR_RE = re.compile("\\|(?<= \\|) [ \t\n\r]*")
_QUOTE_RE = re.compile(': (?=")')

#: pyahocorasick scans a node's children in insertion order: adding keys in order of letter frequency
#: puts the common letters first (about 10% fewer instructions per scanned character)
_LETTER_RANK = {c: i for i, c in enumerate(" etaoinsrhldcumfpgwybvkxjqz0123456789")}


def _trie_order(key: str) -> list[int]:
    return [_LETTER_RANK.get(c, 100 + ord(c)) for c in key]



NEGOTIATION_STANCES = ("proposed", "open", "agreed", "conditional", "rejected", "denied")
ESCALATION_STANCES = ("reported", "threatened", "hypothetical", "historical", "negated")
#: modalities that count toward labels, scores and alerts unless a category says otherwise
DEFAULT_COUNTS = ("reported", "threatened")
_DEFAULT_THRESHOLDS = {"medium": 0.4, "high": 0.7, "critical": 0.9}

# cue classes as bits
(NEG, DENIED, REJECTED, CONDITIONAL, AGREED, PROPOSED, OPEN, THREAT, HEDGE, BREAKER, HYPOTHETICAL, HISTORICAL,
 CESSATION, PSEUDO, DISAPPROVAL) = (1 << i for i in range(15))
_CUE_BITS = {"negation": NEG, "denied": DENIED, "rejected": REJECTED, "conditional": CONDITIONAL,
             "agreed": AGREED, "proposed": PROPOSED, "open": OPEN, "threat": THREAT, "hedge": HEDGE,
             "breaker": BREAKER, "hypothetical": HYPOTHETICAL, "historical": HISTORICAL,
             "cessation": CESSATION, "pseudo_negation": PSEUDO, "disapproval": DISAPPROVAL}
#: default scope direction of each cue class (the pack's ``cue_directions`` and a term's ``direction``
#: override it): forward cues govern triggers after them, backward cues triggers before them
_DEFAULT_DIRECTIONS = {"hypothetical": "forward", "cessation": "forward", "threat": "forward"}
_NEGATING = NEG | DENIED | REJECTED
#: classes decided by proximity, in tie-break order (same cue word in several classes)
_NEAREST = ((CONDITIONAL, "conditional"), (AGREED, "agreed"), (PROPOSED, "proposed"), (OPEN, "open"),
            (HEDGE, "open"), (PSEUDO, "open"))
_NEAREST_MASK = CONDITIONAL | AGREED | PROPOSED | OPEN | HEDGE | PSEUDO
_THREATENING = THREAT | HEDGE | CONDITIONAL
_FAR = 1 << 30


def normalize(low: str) -> str:
    """Punctuation and spacing to plain spaces, keeping every offset (input already lower-cased)."""
    norm = low.encode("utf-8", "surrogatepass").translate(_PUNCT_TABLE).decode("utf-8", "surrogatepass")
    if not norm.isascii():  # a few C substring scans beat one regex scan of every character here
        for ch in _UNICODE_PUNCT:
            if ch in norm:
                norm = norm.replace(ch, " ")
    return norm


@dataclass(frozen=True, slots=True)
class _Category:
    name: str
    kind: str
    weight: float
    default_stance: str | None
    counts: frozenset[str]


@dataclass(frozen=True, slots=True)
class _TermMeta:
    cat: int
    name: str
    escalation: bool
    weight: float
    requires: frozenset[str]
    stance: str | None
    default: str
    counts: frozenset[str]
    item_requires: frozenset[str] = frozenset()
    blocked_by: frozenset[str] = frozenset()  # every blocking group (quick test)
    #: ``(groups, near)`` pairs of the term and of its category; near 0: anywhere in the sentence
    blocks: tuple[tuple[frozenset[str], int], ...] = ()
    tail: str | None = None  # context group of a frame's tail (``amass ~3 troops``)
    gap: int = 0  # words allowed between head and tail


def _blocks(term: dict[str, Any], category: dict[str, Any]) -> tuple[frozenset[str], tuple]:
    """``blocked_by`` of a term and of its category as ``(all groups, ((groups, near), ...))``."""
    blocks = tuple((frozenset(d["blocked_by"]), int(d.get("near", 0)))
                   for d in (term, category) if d.get("blocked_by"))
    return frozenset().union(*[b for b, _ in blocks]), blocks


_GAP = re.compile(r"\s~(\d)\s")


def severity_for(score: float, thresholds: dict[str, float]) -> str:
    """Map a 0..1 score to low|medium|high|critical with the given thresholds."""
    if score >= thresholds["critical"]:
        return "critical"
    if score >= thresholds["high"]:
        return "high"
    if score >= thresholds["medium"]:
        return "medium"
    return "low"


class Tagger:
    """A compiled rule pack. Build with :func:`streams.tagging.load_tagger`."""

    def __init__(self, pack: dict[str, Any], source: str | Path | None = None) -> None:
        """Compile ``pack`` into two automata."""
        self.pack = pack
        self.source = str(source) if source is not None else None
        self.version: str = pack["version"]
        self.thresholds: dict[str, float] = dict(pack.get("severity") or _DEFAULT_THRESHOLDS)
        win = pack.get("windows") or {}
        self._before: int = int(win.get("before", 70))
        self._after: int = int(win.get("after", 30))
        self._factors: dict[str, float] = {
            "reported": 1.0, "threatened": 0.75, "denied": 0.35, "hypothetical": 0.6, "historical": 0.4,
            "negated": 0.2,
            "agreed": 1.0, "conditional": 0.8, "proposed": 0.75, "open": 0.65, "rejected": 0.55,
        }
        self._factors.update(pack.get("stance_factors") or {})
        self.categories: list[_Category] = []
        self.category_codes: dict[str, dict[str, list[str]]] = {}
        self.actor_weights: dict[str, float] = {}
        # key -> [prefix, case_form, metas, actor, place, forward cue bits, context groups, backward cue
        #         bits, item context groups]
        table: dict[str, list[Any]] = {}

        def entries(terms: list) -> list[tuple[str, bool]]:
            return [(t, False) if isinstance(t, str) else (t["term"], bool(t.get("case"))) for t in terms]

        item_groups: set[str] = set()
        for name, cat in pack["categories"].items():
            idx = len(self.categories)
            counts = frozenset(cat.get("counts") or (DEFAULT_COUNTS if cat["kind"] == "escalation"
                                                     else NEGOTIATION_STANCES))
            c = _Category(name, cat["kind"], float(cat["weight"]), cat.get("default_stance"), counts)
            self.categories.append(c)
            self.category_codes[name] = {"cameo": list(cat.get("cameo", [])), "plover": list(cat.get("plover", []))}
            default = c.default_stance or ("reported" if c.kind == "escalation" else "open")
            item_req = frozenset(cat.get("item_requires", ()))
            item_groups |= item_req
            for term in cat["terms"]:
                t, opts = (term, {}) if isinstance(term, str) else (term["term"], term)
                tail = None
                gap = 0
                m = _GAP.search(f" {t} ")
                if m:  # a frame with a bounded gap: the head is the trigger, the tail a private context group
                    head, rest = t[:m.start()].strip(), t[m.end() - 2:].strip()
                    gap = int(m.group(1))
                    tail = f"~{name}:{head}:{rest}"
                    self._add(table, rest, bool(opts.get("case")), 6, tail)
                    t = head
                meta = _TermMeta(idx, name, c.kind == "escalation", c.weight,
                                 frozenset(opts.get("requires", ())), opts.get("stance"),
                                 opts.get("default_stance", default), counts,
                                 item_req, *_blocks(opts, cat),
                                 tail, gap)
                self._add(table, t, bool(opts.get("case")), 2, meta)
        for name, actor in pack["actors"].items():
            self.actor_weights[name] = float(actor.get("weight", 0.5))
            for t, case in entries(actor["aliases"]):
                self._add(table, t, case, 3, name)
        for name, place in pack["places"].items():
            for t, case in entries(place["aliases"]):
                self._add(table, t, case, 4, name)
        directions = dict(_DEFAULT_DIRECTIONS, **(pack.get("cue_directions") or {}))
        for cls, terms in pack["cues"].items():
            for term in terms:
                t, opts = (term, {}) if isinstance(term, str) else (term["term"], term)
                direction = opts.get("direction") or directions.get(cls, "both")
                bit = _CUE_BITS[cls]
                if direction != "backward":
                    self._add(table, t, bool(opts.get("case")), 5, bit)
                if direction != "forward":
                    self._add(table, t, bool(opts.get("case")), 7, bit)
        for grp, terms in (pack.get("contexts") or {}).items():
            for t, case in entries(terms):
                self._add(table, t, case, 6, grp)
                if grp in item_groups:
                    self._add(table, t, case, 8, grp)
        # Two automata. The document automaton finds triggers, actors and places in one pass over the
        # whole text; the sentence automaton finds stance cues and context words, and runs only over
        # the sentences that hold a trigger (most sentences of a news item hold none).
        self._automaton = ahocorasick.Automaton()
        self._sent_automaton = ahocorasick.Automaton()
        self._sent_key_len = 1
        self._sent_space_run = 1  # longest run of spaces inside a sentence-automaton key
        for key in sorted(table, key=_trie_order):
            prefix, case_form, metas, actor, place, fwd, ctxs, bwd, igroups = table[key]
            if metas or actor is not None or place is not None or igroups:
                # a term whose metas are all frames' heads is no phrase on its own (see ``tag``)
                self._automaton.add_word(key, (len(key), prefix, case_form, tuple(metas), actor, place,
                                               frozenset(igroups) if igroups else None,
                                               any(m.tail is None for m in metas)))
            if fwd or bwd or ctxs:
                self._sent_automaton.add_word(key, (len(key), prefix, case_form, fwd, bwd,
                                                    frozenset(ctxs) if ctxs else None))
                self._sent_key_len = max(self._sent_key_len, len(key))
                self._sent_space_run = max([self._sent_space_run, *map(len, _INNER_SPACES.findall(key.strip()))])
        self._automaton.make_automaton()
        self._sent_automaton.make_automaton()
        #: a sentence ending in this many spaces has no context word running on past its end
        self._sent_break = " " * (self._sent_space_run + 1)

    @staticmethod
    def _add(table: dict[str, list[Any]], term: str, case: bool, slot: int, value: Any) -> None:
        forms, prefix = expand_term(term if case else term.lower())
        for form in forms:
            norm = normalize(form.lower()).strip()
            if not norm:
                continue
            key = f" {norm}" if prefix else f" {norm} "
            entry = table.get(key)
            if entry is None:
                entry = table[key] = [False, None, [], None, None, 0, set(), 0, set()]
            entry[0] = entry[0] or prefix
            if case:
                entry[1] = form if form.lower() == norm else None
            if slot == 2:
                if value not in entry[2]:
                    entry[2].append(value)
            elif slot in (5, 7):
                entry[slot] |= value
            elif slot in (6, 8):
                entry[slot].add(value)
            elif entry[slot] is None:
                entry[slot] = value

    # ------------------------------------------------------------------ text helpers
    @staticmethod
    def _lower(doc: str) -> str:
        low = doc.lower()
        if len(low) != len(doc):  # rare: characters whose lower case is longer (e.g. U+0130)
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in doc)
        return low

    @staticmethod
    def _sentence_starts(doc: str) -> list[int]:
        """Start offsets of the sentences of ``doc`` (strictly increasing, first 0).

        ASCII text: a few regex scans that each start at a literal character. Other text: ``str.find``
        loops (C substring search) and the initials check in Python (``str.isupper`` semantics).
        """
        t = doc
        if "!" in doc or "?" in doc or ";" in doc:
            t = doc.encode("utf-8", "surrogatepass").translate(_SENT_TABLE).decode("utf-8", "surrogatepass")
        ascii_doc = t.isascii()
        if ascii_doc:
            ends = [m.end() for m in _DOT_RE.finditer(t)]
            more = False
            for ch, rx in (("\n", _NEWLINE_RE), ("|", _BAR_RE), (":", _QUOTE_RE)):
                if ch in t:
                    ends += [m.end() for m in rx.finditer(t)]
                    more = True
            if more:
                ends = sorted(set(ends))
            if ends and ends[-1] >= len(doc):
                ends.pop()
            return [0, *ends]
        find = t.find
        cands: list[int] = []
        for sep, off in _DOT_SEPS:
            i = find(sep)
            while i >= 0:
                # not after a lone capital: initials and abbreviations such as U.S.
                if not (i and t[i - 1].isupper() and (i < 2 or not t[i - 2].isalpha())) \
                        and not (" " + t[max(0, i - 5):i]).endswith(_ABBREVIATION_ENDS):
                    cands.append(i + off)
                i = find(sep, i + 1)
        for sep, off in _OTHER_SEPS:
            i = find(sep)
            while i >= 0:
                cands.append(i + off)
                i = find(sep, i + 1)
        starts = [0]
        if not cands:
            return starts
        cands.sort()
        n = len(doc)
        last = 0
        for i in cands:
            while i < n and doc[i] in _SPACES:
                i += 1
            if last < i < n:
                starts.append(i)
                last = i
        return starts

    def _read_sentence(self, norm: str, doc: str, ss: int, se: int) -> tuple[list, list]:
        """Stance cues ``[(start, end, forward bits, backward bits)]`` (sorted) and context words
        ``[(start, end, groups)]``
        of the sentence ``doc[ss:se]``.

        A cue lies inside the sentence; a context word starts inside it and may run on across a
        sentence break of fewer spaces than it has inside (a newline), hence the scan then reaches up
        to one key length past the sentence end.
        """
        cues: list[tuple[int, int, int, int]] = []
        ctxs: list[tuple[int, int, frozenset]] = []
        multi = False
        brk = self._sent_break
        if se < len(norm) and (se < len(brk) or not norm.startswith(brk, se - len(brk))):
            seg = norm[ss:se + self._sent_key_len]
        else:
            seg = norm[ss:se]
        base = ss - 1  # doc offset of position 0 of " {seg} "
        pseudo = False
        for end, (klen, prefix, case_form, fwd, bwd, ctx) in self._sent_automaton.iter(f" {seg} "):
            start = base + end - klen + 2
            if start >= se:
                continue
            e = _WORD_REST.match(norm, base + end + 1).end() if prefix else base + end
            if case_form is not None and doc[start:e] != case_form:
                continue
            if ctx is not None:
                ctxs.append((start, e, ctx))
            if (fwd or bwd) and e <= se:
                cues.append((start, e, fwd, bwd))
                if klen > 8:
                    multi = True
                if (fwd | bwd) & PSEUDO:
                    pseudo = True
        if multi:  # a breaker word inside a longer cue ("as long as") is not a breaker
            # a cue holding it starts at most one key length before it (a prefix key's word rest has no
            # spaces), so only those spans are looked at: linear, also for a megabyte-long sentence
            spans = sorted((h[0], h[1]) for h in cues if not (h[2] | h[3]) & BREAKER and h[1] - h[0] > 4)
            span_starts = [a for a, _ in spans]
            reach = self._sent_key_len
            cues = [h for h in cues if not (h[2] | h[3]) & BREAKER or not any(
                h[1] <= b for _, b in spans[bisect_left(span_starts, h[0] - reach):bisect_right(span_starts, h[0])])]
        if pseudo:  # a negation overlapping a pseudo-negation ("there is no agreement yet", "not only")
            # negates nothing; a cue overlapping it starts at most one key length before it
            spans = [(h[0], h[1]) for h in cues if (h[2] | h[3]) & PSEUDO]
            spans.sort()
            span_starts = [a for a, _ in spans]
            reach = self._sent_key_len
            cues = [h if not (h[2] | h[3]) & _NEGATING or (h[2] | h[3]) & PSEUDO or not any(
                b > h[0] for _, b in spans[bisect_left(span_starts, h[0] - reach):bisect_left(span_starts, h[1])])
                else (h[0], h[1], h[2] & ~_NEGATING, h[3] & ~_NEGATING) for h in cues]
        if len(cues) > 1:
            cues.sort()
        return cues, ctxs

    # ------------------------------------------------------------------ tagging
    def tag(self, title: str, text: str) -> dict[str, Any]:
        """Tag one item.

        Offsets (``start``/``end`` of each signal) index ``doc = f"{title}\\n{text}"`` when ``title``
        is non-empty, else ``text`` alone. Escalation signals carry a modality (reported, threatened,
        hypothetical, historical, negated), negotiation signals proposed|open|agreed|conditional|
        rejected|denied; ``counts`` says whether a signal counts toward labels, scores and alerts.
        """
        title = title or ""
        text = text or ""
        doc = f"{title}\n{text}" if title else text
        low = doc.lower()
        if len(low) != len(doc):
            low = self._lower(doc)
        norm = normalize(low)
        word_rest = _WORD_REST.match
        terms: list[tuple[int, int, tuple, bool]] = []  # (start, -end, metas, a phrase)
        actors_at: list[tuple[int, str]] = []
        places: list[tuple[int, str]] = []
        item_groups: set[str] = set()
        for end, (klen, prefix, case_form, metas, actor, place, igroups, phrase) in self._automaton.iter(f" {norm} "):
            start = end - klen + 1
            e = word_rest(norm, end).end() if prefix else end - 1
            if case_form is not None and doc[start:e] != case_form:
                continue
            if metas:
                terms.append((start, -e, metas, phrase))
            if actor is not None:
                actors_at.append((start, actor))
            if place is not None:
                places.append((start, place))
            if igroups is not None:
                item_groups |= igroups
        # actors and places in order of first mention, ties by name
        if len(actors_at) > 1:
            actors_at.sort()
        if len(places) > 1:
            places.sort()
        item_actors = list(dict.fromkeys([a for _, a in actors_at])) if actors_at else []
        locations = list(dict.fromkeys([p for _, p in places])) if places else []
        if not terms:
            return self._result([], item_actors, locations, 0.0, 0.0, None, False, False)

        # longest match wins: drop term hits strictly inside a longer one
        if len(terms) > 1:
            terms.sort(key=_START_LONGEST)
            kept: list[tuple[int, int, tuple, bool]] = []
            cover_s = cover_e = -1
            for h in terms:
                s, e = h[0], -h[1]
                if e <= cover_e and (s != cover_s or e != cover_e):
                    continue
                kept.append(h)
                if e > cover_e:
                    cover_s, cover_e = s, e
        else:
            kept = terms

        # the trigger phrases whose cue words are names, not cues; a frame's head alone ("halt" of
        # "halt ~3 strikes") is no phrase until its tail matches, so "drone attacks halt" keeps its cue
        phrases = [h for h in kept if h[3]]
        phrase_starts = [h[0] for h in phrases]
        starts = self._sentence_starts(doc)
        nsent = len(starts)
        ndoc = len(doc)
        # zones of the item-level negotiation stance: headline 0, lead 1, rest 2
        head_end = starts[1] if nsent > 1 else ndoc
        lead_end = starts[2] if nsent > 2 else ndoc
        signals: list[dict[str, Any]] = []
        best_esc: dict[str, float] = {}
        best_neg: dict[str, float] = {}
        zone_stances: tuple[list, list, list] = ([], [], [])  # (not decided by a cue, stance)
        factors = self._factors
        stance_of = self._stance
        weights = self.actor_weights
        sent_index = -1
        for s, ne, metas, _ in kept:
            e = -ne
            si = bisect_right(starts, s) - 1
            if si != sent_index:  # kept triggers come in text order: read each sentence once
                sent_index = si
                ss = starts[si]
                se = starts[si + 1] if si + 1 < nsent else ndoc
                cues, sctx = self._read_sentence(norm, doc, ss, se)
                if cues:  # a cue word inside a trigger phrase is part of a name ("peace plan", "prisoner
                    # exchange"), not a cue for the other triggers of the sentence
                    cues = _outside_triggers(cues, phrase_starts, phrases)
                sent_groups = frozenset().union(*[groups for _, _, groups in sctx]) if sctx else frozenset()
                sent_actors = []
                if actors_at:  # sorted by position: the sentence's actors are one slice
                    first = bisect_left(actors_at, (ss,))
                    sent_actors = list(dict.fromkeys(
                        [a for _, a in actors_at[first:bisect_left(actors_at, (se,), first)]]))
                aw = max([weights[a] for a in sent_actors], default=0.0)
            for meta in metas:
                if meta.item_requires and not places and meta.item_requires.isdisjoint(item_groups):
                    continue  # a truce in another war, a summit about the economy (the pack's places are this war's)
                req = meta.requires
                if req:
                    if req.isdisjoint(sent_groups):
                        continue  # no word of those groups in the sentence at all
                    for cs, ce, groups in sctx:
                        if (cs < s or ce > e) and not req.isdisjoint(groups):
                            break
                    else:
                        continue
                if meta.blocked_by and not meta.blocked_by.isdisjoint(sent_groups) \
                        and self._blocked(meta, norm, s, e, sctx):
                    continue  # another sense: "strike a deal", "an uphill battle"
                end = e
                if meta.tail is not None:
                    end = self._tail_end(meta, norm, e, sctx)
                    if end < 0:
                        continue
                stance, decided = stance_of(meta, s, e, cues, doc) if cues else (meta.stance or meta.default,
                                                                             meta.stance is not None)
                counts = stance in meta.counts
                key = meta.name
                signals.append({"kind": "escalation" if meta.escalation else "negotiation", "category": key,
                                "stance": stance, "counts": counts, "text": doc[s:end], "start": s,
                                "end": end, "actors": sent_actors[:]})
                if not counts:
                    continue
                factor = 1.0 if stance == meta.default else factors.get(stance, 1.0)
                strength = meta.weight * factor * (0.85 + 0.15 * aw)
                best = best_esc if meta.escalation else best_neg
                if strength > best.get(key, -1.0):
                    best[key] = strength
                if not meta.escalation:
                    zone_stances[0 if s < head_end else 1 if s < lead_end else 2].append((not decided, stance))
        # the first zone with a stance decides (headline, lead, rest): a headline's own words outrank the
        # lead's cues; within the zone a stance decided by a cue beats a default, then the stronger stance
        item_stance = next((min(z, key=_zone_rank)[1] for z in zone_stances if z), None)
        return self._result(signals, item_actors, locations, _noisy_or(list(best_esc.values())),
                            _noisy_or(list(best_neg.values())), item_stance, bool(best_esc), bool(best_neg))

    @staticmethod
    def _blocked(meta: _TermMeta, norm: str, s: int, e: int, sctx: list) -> bool:
        """Whether a word of the trigger's (or its category's) ``blocked_by`` groups lies within ``near``
        words of it."""
        for cs, ce, groups in sctx:
            if meta.blocked_by.isdisjoint(groups) or (s <= cs and ce <= e):
                continue
            gap = len((norm[e:cs] if cs >= e else norm[ce:s] if ce <= s else "").split())
            for block, near in meta.blocks:
                if not block.isdisjoint(groups) and (not near or gap <= near):
                    return True
        return False

    @staticmethod
    def _tail_end(meta: _TermMeta, norm: str, e: int, sctx: list) -> int:
        """End of the frame's tail within ``gap`` words after the head ending at ``e``, else -1."""
        for cs, ce, groups in sctx:
            if cs >= e and meta.tail in groups and len(norm[e:cs].split()) <= meta.gap:
                return ce
        return -1

    def _stance(self, meta: _TermMeta, s: int, e: int, cues: list[tuple[int, int, int, int]],
                doc: str) -> tuple[str, bool]:
        """Stance (negotiation) or modality (escalation) of a trigger at ``[s, e)`` from its sentence's cues,
        and whether a cue or the term decided it (else it is the category's default)."""
        lo = s - self._before
        hi = e + self._after
        bmask = amask = 0
        neg_d = rej_d = _FAR
        near_b = near_a = 0  # bits of the nearest cue before / after that decides by proximity
        near_bd = near_ad = _FAR
        first = bisect_left(cues, (lo,))  # cues are sorted by start: the window is one slice
        for cs, ce, fwd, bwd in cues[first:bisect_left(cues, (hi,), first)]:
            if ce <= s:  # a cue before the trigger governs it when it scopes forward
                if fwd & BREAKER:  # a new clause; a breaker may open one of its own ("amid", "despite")
                    bmask = 0
                    neg_d = rej_d = near_bd = _FAR
                    near_b = 0
                    fwd &= ~BREAKER
                if not fwd:
                    continue
                d = s - ce
                bmask |= fwd
                if fwd & NEG:
                    neg_d = d
                if fwd & REJECTED:
                    rej_d = d
                if fwd & _NEAREST_MASK and d <= near_bd:
                    near_b, near_bd = fwd, d
            elif cs >= e:  # a cue after it governs it when it scopes backward, within the same clause
                if bwd & BREAKER or "," in doc[e:cs]:
                    break
                bits = bwd
                amask |= bits
                if bits & _NEAREST_MASK and not near_a:
                    near_a, near_ad = bits, cs - e + 40  # slight preference for cues before
        if not bmask and not amask:
            return meta.stance or meta.default, meta.stance is not None
        if meta.escalation:
            if (bmask | amask) & (DENIED | CESSATION) or neg_d <= 30 or rej_d <= 20:
                # "denied shelling", "no shelling"; a cessation scopes over its clause ("agreed to halt
                # strikes on energy facilities")
                return "negated", True
            if (bmask | amask) & HYPOTHETICAL:
                return "hypothetical", True  # "a response if drones cross", "to deter an attack"
            if meta.stance:
                return meta.stance, True
            if bmask & _THREATENING:
                return "threatened", True
            if (bmask | amask) & HISTORICAL:
                return "historical", True  # "years after the invasion"
            return meta.default, False
        # negotiation: denial and rejection scope over the whole window; a condition after the trigger
        # ("talks only if ...", "will not sign without ...") makes it conditional
        if (bmask | amask) & DENIED:
            return "denied", True
        if amask & CONDITIONAL:
            return "conditional", True
        if (bmask | amask) & (REJECTED | DISAPPROVAL):  # disapproval rejects a deal, not an event
            return "rejected", True
        if neg_d <= 30:
            return "rejected" if bmask & (AGREED | PROPOSED | OPEN) else "denied", True
        if meta.stance:
            return meta.stance, True
        bits = near_b if near_bd <= near_ad else near_a
        if bits:
            for bit, name in _NEAREST:
                if bits & bit:
                    if name == "agreed" and bmask & (HEDGE | OPEN):
                        return "open", True  # "could agree to a truce", "ready to sign" are not agreements
                    if name == "proposed" and bmask & OPEN:
                        return "open", True  # "ready to discuss China's plan": openness to a proposal
                    if name == "agreed" and bmask & PROPOSED:
                        return "proposed", True  # "urged to hold talks", "calls on Russia to resume the deal"
                    return name, True
        return meta.default, False

    def _result(self, signals: list, actors: list[str], locations: list[str],
                esc: float, neg: float, negotiation_stance: str | None, has_esc: bool,
                has_neg: bool) -> dict[str, Any]:
        labels = []
        if esc > 0.0 or has_esc:
            labels.append("escalation")
        if neg > 0.0 or has_neg:
            labels.append("negotiation")
        return {
            "labels": labels,
            "signals": signals,
            "actors": actors,
            "locations": locations,
            "escalation_score": round(esc, 4),
            "negotiation_score": round(neg, 4),
            "severity": severity_for(max(esc, neg), self.thresholds),
            "negotiation_stance": negotiation_stance,
            "lexicon_version": self.version,
        }

    def severity_from_score(self, score: float) -> str:
        """Severity of a 0..1 score with this pack's thresholds."""
        return severity_for(score, self.thresholds)


#: precedence of negotiation stances within one zone of an item (headline, lead, rest); a proposal outranks
#: an agreement: "envoy", "meeting" and "talks" default to agreed and sit beside most proposals
_STANCE_RANK = {"rejected": 0, "denied": 1, "conditional": 2, "proposed": 3, "agreed": 4, "open": 5}

def _outside_triggers(cues: list, kept_starts: list[int], kept: list) -> list:
    """The cues that do not lie inside a trigger hit (``kept`` sorted by start, no hit inside another)."""
    out = []
    for c in cues:
        i = bisect_right(kept_starts, c[0]) - 1
        if i >= 0 and c[1] <= -kept[i][1]:
            continue
        out.append(c)
    return out


def _zone_rank(entry: tuple[bool, str]) -> tuple[bool, int]:
    return entry[0], _STANCE_RANK[entry[1]]


#: sort key of term hits ``(start, -end, metas, phrase)``: by start, longest first, stable
_START_LONGEST = itemgetter(0, 1)


def _noisy_or(values: list[float]) -> float:
    """Combine per-category strengths: the strongest counts fully, further categories at half weight
    (one phrase often triggers two related categories; that should not read as two events)."""
    if not values:
        return 0.0
    values = sorted((0.0 if v < 0.0 else 1.0 if v > 1.0 else v for v in values), reverse=True)
    p = 1.0 - values[0]
    for v in values[1:]:
        p *= 1.0 - 0.5 * v
    return 1.0 - p


def build_tagger(path: str | Path | None = None) -> Tagger:
    """Load, validate and compile a rule pack (uncached)."""
    return Tagger(load_pack(path), path)
