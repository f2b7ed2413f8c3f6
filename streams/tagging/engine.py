"""The tagging core: one Aho-Corasick pass, sentence-scoped stance/threat cues, scores.

Pure and thread-safe: a :class:`Tagger` is immutable after construction and ``tag`` does no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ahocorasick

from .lexicon import load_pack
from .morph import expand_term

#: Text and keys are normalised alike before matching: lower case, every punctuation or space
#: character replaced by a space (lengths, hence offsets, are kept). Keys are " form " (or " stem" for
#: prefix terms), so word boundaries are checked inside the C automaton and a raw match is a real hit.
_PUNCT_TABLE = bytes(b if (b >= 128 or chr(b).isalnum()) else 32 for b in range(256))
_UNICODE_PUNCT = "\u2019\u2018\u201c\u201d\u201e\u00ab\u00bb\u2014\u2013\u2026\u00a0\u2032\u00b7\u2011\u2012"
_WORD_REST = re.compile(r"\w*")


def normalize(low: str) -> str:
    """Punctuation and spacing to plain spaces, keeping every offset (input already lower-cased)."""
    norm = low.encode("utf-8", "surrogatepass").translate(_PUNCT_TABLE).decode("utf-8", "surrogatepass")
    if not norm.isascii():
        for ch in _UNICODE_PUNCT:
            if ch in norm:
                norm = norm.replace(ch, " ")
    return norm
# sentence-break candidates (a plain character class keeps the regex scan in C); filtered in
# Tagger._sentence_starts: end punctuation + space, newlines, semicolons, " | " / " - " separators of
# headline sources, and a colon before a quotation
_SENT_RE = re.compile("[.!?;:|\n\u2014\u2013][.!?\"'\u201d\u2019\u00bb)\\]]*")
_SPACES = " \t\n\r\u00a0"
_OPENERS = "\"'\u201c\u2018\u00ab"
_BREAKER = ("breaker",)

NEGOTIATION_STANCES = ("proposed", "open", "agreed", "conditional", "rejected", "denied")
ESCALATION_STANCES = ("reported", "threatened", "denied")
_THREAT_CLASSES = frozenset({"threat", "hedge", "conditional"})
#: negotiation cue classes decided by proximity, with a tie-break order
_NEG_CUES = {"conditional": 0, "agreed": 1, "proposed": 2, "open": 3, "hedge": 4}
_DEFAULT_THRESHOLDS = {"medium": 0.3, "high": 0.55, "critical": 0.8}



@dataclass(frozen=True, slots=True)
class _Category:
    name: str
    kind: str
    weight: float
    default_stance: str | None


@dataclass(frozen=True, slots=True)
class _TermMeta:
    cat: int
    requires: tuple[str, ...]
    stance: str | None


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
        self.pack = pack
        self.source = str(source) if source is not None else None
        self.version: str = pack["version"]
        self.thresholds: dict[str, float] = dict(pack.get("severity") or _DEFAULT_THRESHOLDS)
        win = pack.get("windows") or {}
        self._before: int = int(win.get("before", 70))
        self._after: int = int(win.get("after", 30))
        self._factors: dict[str, float] = {
            "reported": 1.0, "threatened": 0.75, "denied": 0.35,
            "agreed": 1.0, "conditional": 0.8, "proposed": 0.75, "open": 0.65, "rejected": 0.55,
        }
        self._factors.update(pack.get("stance_factors") or {})
        self.categories: list[_Category] = []
        self.category_codes: dict[str, dict[str, list[str]]] = {}
        self.actor_weights: dict[str, float] = {}
        # one automaton for everything: key -> [prefix, case_form, metas, actor, place, cues, contexts]
        table: dict[str, list[Any]] = {}

        def entries(terms: list) -> list[tuple[str, bool]]:
            return [(t, False) if isinstance(t, str) else (t["term"], bool(t.get("case"))) for t in terms]

        for name, cat in pack["categories"].items():
            idx = len(self.categories)
            self.categories.append(_Category(name, cat["kind"], float(cat["weight"]), cat.get("default_stance")))
            self.category_codes[name] = {"cameo": list(cat.get("cameo", [])), "plover": list(cat.get("plover", []))}
            for term in cat["terms"]:
                t, opts = (term, {}) if isinstance(term, str) else (term["term"], term)
                meta = _TermMeta(idx, tuple(opts.get("requires", ())), opts.get("stance"))
                self._add(table, t, bool(opts.get("case")), 2, meta)
        for name, actor in pack["actors"].items():
            self.actor_weights[name] = float(actor.get("weight", 0.5))
            for t, case in entries(actor["aliases"]):
                self._add(table, t, case, 3, name)
        for name, place in pack["places"].items():
            for t, case in entries(place["aliases"]):
                self._add(table, t, case, 4, name)
        for cls, terms in pack["cues"].items():
            for t, case in entries(terms):
                self._add(table, t, case, 5, cls)
        for grp, terms in (pack.get("contexts") or {}).items():
            for t, case in entries(terms):
                self._add(table, t, case, 6, grp)
        self._automaton = ahocorasick.Automaton()
        self._cue_automaton = ahocorasick.Automaton()
        for key, (prefix, case_form, metas, actor, place, cues, ctxs) in table.items():
            if metas or actor is not None or place is not None:
                self._automaton.add_word(key, (len(key), prefix, case_form, tuple(metas), actor, place))
            if cues or ctxs:
                classes = _BREAKER if tuple(cues) == _BREAKER else tuple(cues)
                self._cue_automaton.add_word(key, (len(key), prefix, case_form, classes, frozenset(ctxs)))
        self._automaton.make_automaton()
        self._cue_automaton.make_automaton()

    @staticmethod
    def _add(table: dict[str, list[Any]], term: str, case: bool, slot: int, value: Any) -> None:
        forms, prefix = expand_term(term if case else term.lower())
        for form in forms:
            norm = normalize(form.lower()).strip()
            if not norm:
                continue
            for key in ((f" {norm}",) if prefix else (f" {norm} ",)):
                entry = table.get(key)
                if entry is None:
                    entry = table[key] = [False, None, [], None, None, [], set()]
                entry[0] = entry[0] or prefix
                if case:
                    entry[1] = form if form.lower() == norm else None
                if slot in (2, 5):
                    if value not in entry[slot]:
                        entry[slot].append(value)
                elif slot == 6:
                    entry[6].add(value)
                elif entry[slot] is None:
                    entry[slot] = value

    # ------------------------------------------------------------------ matching
    @staticmethod
    def _lower(doc: str) -> str:
        low = doc.lower()
        if len(low) != len(doc):  # rare: characters whose lower case is longer (e.g. U+0130)
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in doc)
        return low

    @staticmethod
    def _sentence_starts(doc: str) -> list[int]:
        """Start offsets of the sentences of ``doc``."""
        starts = [0]
        n = len(doc)
        for m in _SENT_RE.finditer(doc):
            i = m.end()
            j = m.start()
            ch = doc[j]
            if ch == "\n" or ch == ";":
                pass
            elif i >= n or doc[i] not in _SPACES:
                continue
            elif ch == ".":
                if j >= 1 and doc[j - 1].isupper() and (j < 2 or not doc[j - 2].isalpha()):
                    continue  # initials and abbreviations such as U.S.
            elif ch == ":":
                if i + 1 >= n or doc[i + 1] not in _OPENERS:
                    continue
            elif ch in "|\u2014\u2013" and (j == 0 or doc[j - 1] != " "):
                continue
            while i < n and doc[i] in _SPACES:
                i += 1
            if i < n and i > starts[-1]:
                starts.append(i)
        return starts

    def _sentence(self, norm: str, doc: str, ss: int, se: int, actors_at: list) -> tuple:
        """Per-sentence analysis: (cues, cue starts, context spans by group, actors, max actor weight)."""
        cues: list[tuple[int, int, tuple]] = []
        ctx_map: dict[str, list[tuple[int, int]]] = {}
        breakers: list[tuple[int, int, tuple]] = []
        seg = norm[ss:se]
        for end, (klen, prefix, case_form, cue, ctx) in self._cue_automaton.iter(f" {seg} "):
            start = end - klen + 1
            if prefix:
                e = _WORD_REST.match(seg, end).end()
            else:
                e = end - 1
            if case_form is not None and doc[ss + start:ss + e] != case_form:
                continue
            if cue:
                (breakers if cue is _BREAKER else cues).append((ss + start, ss + e, cue))
            if ctx:
                span = (ss + start, ss + e)
                for g in ctx:
                    lst = ctx_map.get(g)
                    if lst is None:
                        ctx_map[g] = [span]
                    else:
                        lst.append(span)
        if breakers:  # a breaker word inside a longer cue ("as long as") is not a breaker
            multi = [(a, b) for a, b, _ in cues if b - a > 4]
            cues.extend(h for h in breakers if not any(a <= h[0] and h[1] <= b for a, b in multi))
        cues.sort()
        sent_actors = list(dict.fromkeys(a for pos, a in actors_at if ss <= pos < se))
        weights = self.actor_weights
        aw = max([weights[a] for a in sent_actors], default=0.0)
        return cues, [c[0] for c in cues], ctx_map, sent_actors, aw

    # ------------------------------------------------------------------ tagging
    def tag(self, title: str, text: str) -> dict[str, Any]:
        """Tag one item.

        Offsets (``start``/``end`` of each signal) index ``doc = f"{title}\\n{text}"`` when ``title``
        is non-empty, else ``text`` alone. Escalation signals carry stance ``reported`` (an event) or
        ``threatened`` (threat, warning, plan, hypothetical); negated or denied escalation mentions
        are dropped. Negotiation signals carry proposed|open|agreed|conditional|rejected|denied.
        """
        title = title or ""
        text = text or ""
        doc = f"{title}\n{text}" if title else text
        low = doc.lower()
        if len(low) != len(doc):  # rare: characters whose lower case is longer (e.g. U+0130)
            low = self._lower(doc)
        norm = normalize(low)
        word_rest = _WORD_REST.match
        terms: list[tuple[int, int, tuple]] = []
        actors_at: list[tuple[int, str]] = []
        places: list[str] = []
        for end, (klen, prefix, case_form, metas, actor, place) in self._automaton.iter(f" {norm} "):
            start = end - klen + 1
            if prefix:
                e = word_rest(norm, end).end()
            else:
                e = end - 1
            if case_form is not None and doc[start:e] != case_form:
                continue
            if metas:
                terms.append((start, e, metas))
            if actor is not None:
                actors_at.append((start, actor))
            if place is not None:
                places.append(place)
        item_actors = list(dict.fromkeys([a for _, a in actors_at]))
        locations = list(dict.fromkeys(places))
        if not terms:
            return self._result([], item_actors, locations, 0.0, 0.0)

        # longest match wins: drop term hits strictly inside a longer one
        if len(terms) > 1:
            terms.sort(key=_term_order)
            kept: list[tuple[int, int, tuple]] = []
            cover_s = cover_e = -1
            for h in terms:
                s, e, _ = h
                if e <= cover_e and (s != cover_s or e != cover_e):
                    continue
                kept.append(h)
                if e > cover_e:
                    cover_s, cover_e = s, e
        else:
            kept = terms

        starts = self._sentence_starts(doc)
        nsent = len(starts)
        ndoc = len(doc)
        signals: list[dict[str, Any]] = []
        esc_best: dict[str, float] = {}
        neg_best: dict[str, float] = {}
        cats = self.categories
        factors = self._factors
        sentences: dict[int, tuple] = {}
        for s, e, metas in kept:
            si = bisect_right(starts, s) - 1
            sent = sentences.get(si)
            if sent is None:
                ss = starts[si]
                se = starts[si + 1] if si + 1 < nsent else ndoc
                sent = sentences[si] = (ss, se, *self._sentence(norm, doc, ss, se, actors_at))
            ss, se, cues, cue_starts, ctx_map, sent_actors, aw = sent
            for meta in metas:
                if meta.requires:
                    for g in meta.requires:
                        spans = ctx_map.get(g)
                        if spans and any(cs < s or ce > e for cs, ce in spans):
                            break
                    else:
                        continue
                cat = cats[meta.cat]
                stance = self._stance(cat, meta, s, e, ss, se, cues, cue_starts)
                if stance is None:
                    continue
                strength = cat.weight * factors.get(stance, 1.0) * (0.85 + 0.15 * aw)
                best = esc_best if cat.kind == "escalation" else neg_best
                if strength > best.get(cat.name, -1.0):
                    best[cat.name] = strength
                signals.append({
                    "kind": cat.kind, "category": cat.name, "stance": stance,
                    "text": doc[s:e], "start": s, "end": e, "actors": list(sent_actors),
                })
        return self._result(signals, item_actors, locations, _noisy_or(esc_best.values()),
                            _noisy_or(neg_best.values()))

    def _stance(self, cat: _Category, meta: _TermMeta, s: int, e: int, ss: int, se: int,
                cues: list, cue_starts: list[int]) -> str | None:
        """Stance of a signal from the cues around it in its sentence; ``None`` drops the signal.

        Cues are looked for up to ``windows.before`` characters before and ``windows.after`` after
        the trigger; a breaker ("but", "while", ...) between a cue and the trigger cuts the cue off.
        """
        lo = s - self._before
        if lo < ss:
            lo = ss
        hi = e + self._after
        if hi > se:
            hi = se
        before: list[tuple[int, str]] = []  # (distance, class)
        after: list[tuple[int, str]] = []
        i = bisect_left(cue_starts, lo)
        n = len(cues)
        while i < n:
            cs, ce, classes = cues[i]
            i += 1
            if cs >= hi:
                break
            if ce <= s:
                if classes is _BREAKER:
                    before.clear()
                else:
                    for cls in classes:
                        before.append((s - ce, cls))
            elif cs >= e and classes is not _BREAKER:
                for cls in classes:
                    after.append((cs - e, cls))
        if not before and not after:
            return meta.stance or cat.default_stance or ("reported" if cat.kind == "escalation" else "open")
        bcls = {c for _, c in before}
        acls = {c for _, c in after}
        near_neg = "negation" in bcls and any(c == "negation" and d <= 30 for d, c in before)
        if cat.kind == "escalation":
            if "denied" in bcls or near_neg or ("rejected" in bcls and any(
                    c == "rejected" and d <= 20 for d, c in before)):
                return None  # "denied shelling", "no shelling", "refusing to supply weapons"
            if meta.stance:
                return meta.stance
            if bcls & _THREAT_CLASSES:
                return "threatened"
            return cat.default_stance or "reported"
        # negotiation: denial and rejection scope over the whole window
        if "denied" in bcls or "denied" in acls:
            return "denied"
        if "rejected" in bcls or "rejected" in acls:
            return "rejected"
        if near_neg:
            return "rejected" if bcls & {"agreed", "proposed", "open"} else "denied"
        if meta.stance:
            return meta.stance
        # otherwise the nearest modal / stance cue decides (hedges read as "open")
        cands = [(d, _NEG_CUES[c], c) for d, c in before if c in _NEG_CUES]
        cands += [(d + 5, _NEG_CUES[c], c) for d, c in after if c in _NEG_CUES]  # prefer cues before
        if cands:
            c = min(cands)[2]
            if c == "hedge" or (c == "agreed" and "hedge" in bcls):
                return "open"  # "could agree to a truce" is not an agreement
            return c
        return cat.default_stance or "open"

    def _result(self, signals: list, actors: list[str], locations: list[str],
                esc: float, neg: float) -> dict[str, Any]:
        labels = []
        if any(sg["kind"] == "escalation" for sg in signals):
            labels.append("escalation")
        if any(sg["kind"] == "negotiation" for sg in signals):
            labels.append("negotiation")
        return {
            "labels": labels,
            "signals": signals,
            "actors": actors,
            "locations": locations,
            "escalation_score": round(esc, 4),
            "negotiation_score": round(neg, 4),
            "severity": severity_for(max(esc, neg), self.thresholds),
            "lexicon_version": self.version,
        }

    def severity_from_score(self, score: float) -> str:
        """Severity of a 0..1 score with this pack's thresholds."""
        return severity_for(score, self.thresholds)


def _term_order(h: tuple[int, int, tuple]) -> tuple[int, int]:
    return h[0], h[0] - h[1]


def _noisy_or(values: Any) -> float:
    p = 1.0
    for v in values:
        p *= 1.0 - max(0.0, min(1.0, v))
    return 1.0 - p


def build_tagger(path: str | Path | None = None) -> Tagger:
    """Load, validate and compile a rule pack (uncached)."""
    return Tagger(load_pack(path), path)
