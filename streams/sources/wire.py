"""Wire origin: which wire agency's copy a text carries, from its credit lines (pure, no Kafka).

The registry's ``wire_patterns`` are templates in which ``{credit}`` stands for every wire's credit
names. Credits are looked for in three places, in this order of trust:

1. the lead (title + first ``lead_chars`` of the text): credit lines and datelines, "(Reuters) -", "/TASS/";
2. the tail (last ``tail_chars``): closing credits, "— Interfax-Ukraine", and a wire's own patterns
   (Reuters' "(Reporting by ...)");
3. the lead again, for attributions ("TASS reports", "according to Ukrinform"): a text that mentions a
   wire only further down is not the wire's copy.

Speed: one scan for any credit name finds the candidate spots (most texts have none, and then no
template runs); each template then runs only in a window around a candidate, from ``BEFORE`` characters
before the credit name to ``AFTER`` after it, so a template spans at most that much. In the tail, ``$``
is the end of the text. The earliest match wins within a place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

BEFORE = 120
"""How far before a credit name a template may start ("according to the state news agency TASS")."""
AFTER = 60
"""How far after a credit name a template may end ("TASS reported on Monday" needs only a few)."""

_CREDIT = "{credit}"


class WirePatternError(ValueError):
    """A wire pattern that does not compile; the message names it."""


class _Template:
    """One compiled template; ``anchored`` when it starts with the credit (tried only at each candidate)."""

    __slots__ = ("regex", "anchored", "source")

    def __init__(self, template: str, credit_group: str) -> None:
        self.source = template
        self.anchored = template.startswith(_CREDIT)
        self.regex = _compile(template.replace(_CREDIT, credit_group), template)


def _compile(regex: str, shown: str) -> re.Pattern:
    try:
        return re.compile(regex)
    except re.error as exc:
        raise WirePatternError(f"pattern {shown!r} does not compile: {exc}") from exc


class WireCredits:
    """Finds the wire credited in a text: :meth:`find` returns the wire's outlet id, or None."""

    __slots__ = ("lead_chars", "tail_chars", "_names", "_owner", "_lead", "_tail", "_attribution", "_own")

    def __init__(self, patterns: Mapping, credits: Mapping[str, Iterable[str]],
                 own_patterns: Mapping[str, Iterable[str]]) -> None:
        """``credits``: outlet id -> credit names; ``own_patterns``: outlet id -> regexes of its credit lines."""
        self.lead_chars = int(patterns["lead_chars"])
        self.tail_chars = int(patterns["tail_chars"])
        self._owner = {name: oid for oid, names in credits.items() for name in names}
        # longest first: at one position "Interfax-Ukraine" is tried before "Interfax"
        alternation = "|".join(re.escape(n) for n in sorted(self._owner, key=len, reverse=True))
        self._names = re.compile(alternation) if alternation else None
        group = f"(?<![\\w-])(?P<credit>{alternation})(?![\\w-])"
        self._lead = [_Template(t, group) for t in patterns["credit"]]
        self._tail = [_Template(t, group) for t in (*patterns["tail"], *patterns["credit"])]
        self._attribution = [_Template(t, group) for t in patterns["attribution"]]
        self._own: list[tuple[re.Pattern, str]] = []
        for oid, regexes in own_patterns.items():
            self._own += [(_compile(regex, regex), oid) for regex in regexes]

    def _at(self, templates: list[_Template], doc: str, start: int, end: int, floor: int = 0) -> str | None:
        """The wire of the earliest template match around one spot (a credit name at ``start:end``)."""
        lo, hi = max(floor, start - BEFORE), min(len(doc), end + AFTER)
        best: re.Match | None = None
        for t in templates:
            m = t.regex.match(doc, start, hi) if t.anchored else t.regex.search(doc, lo, hi)
            if m is not None and (best is None or m.start() < best.start()):
                best = m
        return self._owner[best.group("credit")] if best is not None else None

    def find(self, title: str, text: str) -> str | None:
        """The outlet id of the wire credited in ``title`` + ``text``, or None.

        Spots are visited in text order and the first one with a match decides.
        """
        offset = len(title) + 1 if title else 0
        lead = f"{title}\n{text[: self.lead_chars]}" if title else text[: self.lead_chars]
        tail_start = max(0, len(text) - self.tail_chars)
        lead_spots: list[tuple[int, int]] = []
        if self._names is not None:
            for m in self._names.finditer(lead):  # lazily: a dateline near the start ends the scan
                lead_spots.append(m.span())
                wire = self._at(self._lead, lead, *lead_spots[-1])
                if wire is not None:
                    return wire
            tail_spots = [(s - offset, e - offset) for s, e in lead_spots if s - offset >= tail_start]
            tail_spots += [m.span() for m in self._names.finditer(text, max(tail_start, self.lead_chars))]
            for s, e in tail_spots:
                wire = self._at(self._tail, text, s, e, tail_start)
                if wire is not None:
                    return wire
        for regex, oid in self._own:
            if regex.search(text, tail_start):
                return oid
        for s, e in lead_spots:
            wire = self._at(self._attribution, lead, s, e)
            if wire is not None:
                return wire
        return None
