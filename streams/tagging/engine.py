"""The tagging core: one Aho-Corasick pass, sentence-scoped stance/threat cues, scores.

Pure and thread-safe: a :class:`Tagger` is immutable after construction and ``tag`` does no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ahocorasick

from .lexicon import load_pack
from .morph import expand_term

#: characters that may precede a word; every automaton key starts with one of them, so matches
#: inside words ("us" in "thus") never leave the C automaton.
_LEFT_BOUNDARIES = " \n\t([{\"'\u00ab\u201c\u2018\u201e-/\u2014\u2013#*:;,.\u00a0"
_WORD_REST = re.compile(r"\w*")
# sentence-break candidates: end punctuation, newlines, semicolons, " | " / " - " headline separators,
# and a colon before a quotation; filtered in Tagger._sentence_starts
_SENT_CAND = re.compile("[.!?;:|\n\u2014\u2013]")
_CLOSERS = "\"'\u201d\u2019\u00bb)]"
_OPENERS = "\"'\u201c\u2018\u00ab"

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
                self._cue_automaton.add_word(key, (len(key), prefix, case_form, tuple(cues), frozenset(ctxs)))
        self._automaton.make_automaton()
        self._cue_automaton.make_automaton()

    @staticmethod
    def _add(table: dict[str, list[Any]], term: str, case: bool, slot: int, value: Any) -> None:
        forms, prefix = expand_term(term if case else term.lower())
        for form in forms:
            key_form = form.lower()
            for b in _LEFT_BOUNDARIES:
                entry = table.get(b + key_form)
                if entry is None:
                    entry = table[b + key_form] = [False, None, [], None, None, [], set()]
                entry[0] = entry[0] or prefix
                if case:
                    entry[1] = form
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
        """Start offsets of the sentences of ``doc`` (cheap candidate scan, filtered in Python)."""
        starts = [0]
        n = len(doc)
        for m in _SENT_CAND.finditer(doc):
            ch = m.group()
            i = m.end()
            if ch in ".!?":
                while i < n and doc[i] in ".!?":
                    i += 1
                while i < n and doc[i] in _CLOSERS:
                    i += 1
                if i < n and not doc[i].isspace():
                    continue
                j = m.start()
                if ch == "." and j >= 1 and doc[j - 1].isupper() and (j < 2 or not doc[j - 2].isalpha()):
                    continue  # initials and U.S.
                if ch == "." and doc[max(0, j - 2):j] in ("Mr", "Dr", "St", "Ms", "No"):
                    continue
            elif ch in "|\u2014\u2013":
                if not (m.start() > 0 and doc[m.start() - 1] == " " and i < n and doc[i] == " "):
                    continue
            elif ch == ":":
                if not (i + 1 < n and doc[i] == " " and doc[i + 1] in _OPENERS):
                    continue
            while i < n and doc[i].isspace():
                i += 1
            if i > starts[-1] and i < n:
                starts.append(i)
        return starts

    def _scan_cues(self, low: str, doc: str, ss: int, se: int) -> tuple[list, list]:
        """Cue and context hits of the sentence ``doc[ss:se]`` as (start, end, classes) lists."""
        cues: list[tuple[int, int, tuple]] = []
        ctxs: list[tuple[int, int, frozenset]] = []
        seg = low[ss:se]
        pad = f" {seg} "
        for end, (klen, prefix, case_form, cue, ctx) in self._cue_automaton.iter(pad):
            start = end - klen + 1
            e = end
            if pad[end + 1].isalnum():
                if not prefix:
                    continue
                e = _WORD_REST.match(seg, end).end()
            if case_form is not None and doc[ss + start:ss + end] != case_form:
                continue
            if cue:
                cues.append((ss + start, ss + e, cue))
            if ctx:
                ctxs.append((ss + start, ss + e, ctx))
        if len(cues) > 1:
            spans = [(a, b) for a, b, c in cues if c != ("breaker",)]
            cues = [h for h in cues if h[2] != ("breaker",)
                    or not any(a <= h[0] and h[1] <= b and (a, b) != (h[0], h[1]) for a, b in spans)]
        return cues, ctxs

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
        low = self._lower(doc)
        pad = f" {low} "
        word_rest = _WORD_REST.match
        terms: list[tuple[int, int, tuple]] = []
        actors_at: list[tuple[int, str]] = []
        places: list[str] = []
        for end, (klen, prefix, case_form, metas, actor, place) in self._automaton.iter(pad):
            start = end - klen + 1
            e = end
            if pad[end + 1].isalnum():
                if not prefix:
                    continue
                e = word_rest(low, end).end()
            if case_form is not None and doc[start:end] != case_form:
                continue
            if metas:
                terms.append((start, e, metas))
            if actor is not None:
                actors_at.append((start, actor))
            if place is not None:
                places.append(place)
        item_actors = list(dict.fromkeys(a for _, a in actors_at))
        locations = list(dict.fromkeys(places))
        if not terms:
            return self._result([], item_actors, locations, 0.0, 0.0)

        # longest match wins: drop term hits strictly inside a longer one
        terms.sort(key=lambda h: (h[0], h[0] - h[1]))
        kept: list[tuple[int, int, tuple]] = []
        cover_s = cover_e = -1
        for h in terms:
            s, e, _ = h
            if e <= cover_e and (s, e) != (cover_s, cover_e):
                continue
            kept.append(h)
            if e > cover_e:
                cover_s, cover_e = s, e

        starts = self._sentence_starts(doc)
        nsent = len(starts)
        ndoc = len(doc)
        signals: list[dict[str, Any]] = []
        esc_best: dict[str, float] = {}
        neg_best: dict[str, float] = {}
        cats = self.categories
        weights = self.actor_weights
        factors = self._factors
        sent_cues: dict[int, tuple[list, list]] = {}
        for s, e, metas in kept:
            si = bisect_right(starts, s) - 1
            ss = starts[si]
            se = starts[si + 1] if si + 1 < nsent else ndoc
            sc = sent_cues.get(si)
            if sc is None:
                sc = sent_cues[si] = self._scan_cues(low, doc, ss, se)
            cues, ctxs = sc
            for meta in metas:
                if meta.requires:
                    req = meta.requires
                    if not any(not (cs >= s and ce <= e) and not g.isdisjoint(req) for cs, ce, g in ctxs):
                        continue
                cat = cats[meta.cat]
                stance = self._stance(cat, meta, s, e, ss, se, cues)
                if stance is None:
                    continue
                sig_actors = list(dict.fromkeys(a for pos, a in actors_at if ss <= pos < se))
                aw = max([weights[a] for a in sig_actors], default=0.0)
                strength = cat.weight * factors.get(stance, 1.0) * (0.85 + 0.15 * aw)
                best = esc_best if cat.kind == "escalation" else neg_best
                if strength > best.get(cat.name, -1.0):
                    best[cat.name] = strength
                signals.append({
                    "kind": cat.kind, "category": cat.name, "stance": stance,
                    "text": doc[s:e], "start": s, "end": e, "actors": sig_actors,
                })
        return self._result(signals, item_actors, locations, _noisy_or(esc_best.values()),
                            _noisy_or(neg_best.values()))

    def _stance(self, cat: _Category, meta: _TermMeta, s: int, e: int, ss: int, se: int,
                cues: list) -> str | None:
        """Stance of a signal from the cues of its sentence; ``None`` drops the signal (negated event)."""
        lo = max(ss, s - self._before)
        hi = min(se, e + self._after)
        before: list[tuple[int, str, int]] = []  # (distance, class, start)
        after: list[tuple[int, str]] = []
        last_break = -1
        for cs, ce, classes in cues:
            if cs < lo:
                continue
            if cs >= hi:
                break
            for cls in classes:
                if ce <= s:
                    if cls == "breaker":
                        last_break = max(last_break, cs)
                    else:
                        before.append((s - ce, cls, cs))
                elif cs >= e and cls != "breaker":
                    after.append((cs - e, cls))
        before2 = [(d, c) for d, c, cs in before if cs > last_break]
        bcls = {c for _, c in before2}
        acls = {c for _, c in after}
        near_neg = any(c == "negation" and d <= 30 for d, c in before2)
        if cat.kind == "escalation":
            if "denied" in bcls or near_neg or any(c == "rejected" and d <= 20 for d, c in before2):
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
        cands = [(d, c) for d, c in before2 if c in _NEG_CUES]
        cands += [(d + 5, c) for d, c in after if c in _NEG_CUES]  # slight preference for cues before
        if cands:
            c = min(cands, key=lambda x: (x[0], _NEG_CUES[x[1]]))[1]
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


def _noisy_or(values: Any) -> float:
    p = 1.0
    for v in values:
        p *= 1.0 - max(0.0, min(1.0, v))
    return 1.0 - p


def build_tagger(path: str | Path | None = None) -> Tagger:
    """Load, validate and compile a rule pack (uncached)."""
    return Tagger(load_pack(path), path)
