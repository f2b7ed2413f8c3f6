"""Surface-form expansion of rule-pack terms (done once, at load time).

The matcher never runs a regex per phrase: every term is expanded here into the finite set of
surface forms it may take, and all forms go into one Aho-Corasick automaton.

Term syntax (see ``schemas/lexicon.v1.json``):

* ``missile strike`` - every English word of three or more letters gets its regular inflections
  (``missile strikes``, ``missiles striking``, ``negotiate`` -> ``negotiated``/``negotiating``/...),
  and irregular verbs their past forms: a frame such as ``take control`` matches takes, took, taken
  and taking control.
* ``=US`` - exact: no inflection.
* ``ракет*`` - a trailing ``*`` lets the last word continue with any letters (stems of Ukrainian and
  Russian words, whose endings are too many to list).
"""

from __future__ import annotations

import itertools

#: words never inflected (function words inside phrases)
_FUNCTION_WORDS = frozenset(
    "a an the of to in on at by for from with into onto over under and or as is are was were be been "
    "not no nor its it his her their our this that these those than then per via".split()
)
_VOWELS = set("aeiou")
#: past tense and participle of the irregular verbs that head conflict and negotiation frames
_IRREGULAR = {
    "take": ("took", "taken"), "retake": ("retook", "retaken"), "overtake": ("overtook", "overtaken"),
    "strike": ("struck", "stricken"), "shoot": ("shot",), "fight": ("fought",), "hold": ("held",),
    "break": ("broke", "broken"), "send": ("sent",), "drive": ("drove", "driven"),
    "give": ("gave", "given"), "begin": ("began", "begun"), "withdraw": ("withdrew", "withdrawn"),
    "bring": ("brought",), "buy": ("bought",), "fall": ("fell", "fallen"), "win": ("won",),
    "overrun": ("overran",), "run": ("ran",), "rise": ("rose", "risen"), "throw": ("threw", "thrown"),
    "shake": ("shook", "shaken"), "seek": ("sought",), "lead": ("led",), "meet": ("met",),
    "leave": ("left",), "blow": ("blew", "blown"), "shut": ("shut",), "hit": ("hit",), "split": ("split",),
    "fly": ("flew", "flown"), "sink": ("sank", "sunk"), "bear": ("bore", "borne"), "freeze": ("froze", "frozen"),
    "forgive": ("forgave", "forgiven"), "undertake": ("undertook", "undertaken"), "speak": ("spoke", "spoken"),
    "write": ("wrote", "written"), "swear": ("swore", "sworn"), "shed": ("shed",), "set": ("set",),
    "put": ("put",), "cut": ("cut",), "let": ("let",), "keep": ("kept",), "build": ("built",),
    "make": ("made",), "come": ("came",), "go": ("went", "gone"), "see": ("saw", "seen"),
}
MAX_FORMS_PER_TERM = 400
#: inflection endings tried for a non-final Ukrainian/Russian stem written ``stem*`` inside a phrase
SLAVIC_ENDINGS = (
    "", "а", "я", "и", "і", "ї", "ы", "у", "ю", "е", "є", "о", "ь", "ий", "ій", "ой", "ый", "ая", "яя",
    "ое", "ее", "ые", "ие", "ого", "его", "ому", "ему", "ої", "ої", "ою", "ею", "ую", "юю", "ом", "ем",
    "им", "ым", "их", "ых", "ими", "ыми", "ій", "ей", "ів", "ов", "ам", "ям", "ах", "ях", "ами", "ями",
    "ія", "ії", "ію", "ия", "ии", "ию", "ні", "ня", "ну", "ном", "ного", "ної", "них", "ная", "ное",
    "ного", "ных", "ному", "ной", "ную", "ним", "ними",
)


def inflect_word(word: str) -> set[str]:
    """Regular English inflections of one lower-case word (noun plural, verb -s/-ed/-ing)."""
    forms = {word, *_IRREGULAR.get(word, ())}
    if len(word) < 3 or not word.isascii() or not word.isalpha() or word in _FUNCTION_WORDS:
        return forms
    if word.endswith("y") and word[-2] not in _VOWELS:
        stem = word[:-1]
        forms |= {stem + "ies", stem + "ied", word + "ing"}
    elif word.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms |= {word + "es", word + "ed", word + "ing"}
    elif word.endswith("e"):
        forms |= {word + "s", word + "d", word[:-1] + "ing"}
        if word.endswith("ee"):
            forms.add(word + "ing")
    else:
        forms |= {word + "s", word + "ed", word + "ing"}
        # consonant doubling of short CVC verbs: plan -> planned, shell stays shelled
        if (
            len(word) <= 5
            and word[-1] not in _VOWELS | {"w", "x", "y"}
            and word[-2] in _VOWELS
            and word[-3] not in _VOWELS
        ):
            forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    return forms


def _stem_forms(stem: str) -> list[str]:
    """Whole-word forms of a stem written ``stem*`` inside a phrase."""
    if stem.isascii():
        return sorted(inflect_word(stem) | {stem + e for e in ("s", "es", "ed", "ing", "ion", "ions", "al")})
    return sorted({stem + e for e in SLAVIC_ENDINGS})


def expand_term(term: str) -> tuple[list[str], bool]:
    """Surface forms of a term (lower-cased unless the caller keeps case) and whether it is a prefix.

    Returns ``(forms, prefix)``; with ``prefix`` the last word may continue with more letters.
    """
    raw = term.strip()
    exact = raw.startswith("=")
    if exact:
        raw = raw[1:].strip()
    prefix = raw.endswith("*")
    if prefix:
        raw = raw[:-1].rstrip()
    words = raw.split()
    if exact:
        forms = [" ".join(words)]
    else:
        last = len(words) - 1
        options = [
            [w] if (prefix and i == last)
            else _stem_forms(w[:-1]) if w.endswith("*")
            else sorted(inflect_word(w))
            for i, w in enumerate(words)
        ]
        forms = [" ".join(p) for p in itertools.islice(itertools.product(*options), MAX_FORMS_PER_TERM)]
    out: list[str] = []
    for f in forms:
        out.append(f)
        if "'" in f:
            out.append(f.replace("'", "\u2019"))
        if "-" in f:
            out.append(f.replace("-", " "))
    return list(dict.fromkeys(out)), prefix
