"""The compiled tagging core (streams/tagging/_compiled.pyx) gives exactly the reference's results.

``engine.Tagger(pack, compiled=False)`` is the pure Python reference. Both run on texts built from
the pack's own terms, cue words, actors and places, joined by every sentence separator the engines
know, with mixed case, initials, Cyrillic, typographic punctuation and characters whose lower case is
longer; on the seed document; and on the development corpus when it is present.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.tagging import load_tagger
from streams.tagging.engine import CompiledTagger, Tagger
from streams.tagging.lexicon import load_pack

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SEPARATORS = [" ", " ", " ", ", ", ". ", "! ", "? ", "; ", "\n", "\n\n", " | ", " - ", ": \"", ": \u201c", ": \u00ab",
              " \u2014 ", " \u2013 ", ".\" ", ".) ", ".\u201d ", ".\u00bb ", ". ", "... ", " U.S. ", " I. ",
              "\u00a0", " (", ") ", "'s ", "\u2019s ", "-", "  ", "\t"]
FILLER = ["the", "said", "on", "Tuesday", "after", "officials", "in", "a", "of", "would", "not", "but",
          "while", "ready", "could", "if", "no", "and", "Mr.", "Dr", "\u0130stanbul", "\u00c9lys\u00e9e",
          "\u041a\u0438\u0457\u0432", "\u0440\u0430\u043a\u0435\u0442\u0430", "\u0441\u0435\u043a", "20", "3rd",
          "U.N.", "EU", "US", "us", "\u00ab", "\u00bb", "\u2026", "\u2019", "\u00b7", "_", "\u2011"]


@pytest.fixture(scope="module")
def engines() -> tuple[Tagger, Tagger]:
    pack = load_pack()
    reference = Tagger(pack, compiled=False)
    compiled = Tagger(pack)
    return reference, compiled


@pytest.fixture(scope="module")
def vocabulary() -> list[str]:
    pack = load_pack()
    words: list[str] = []

    def add(terms) -> None:
        for t in terms:
            term = t if isinstance(t, str) else t["term"]
            words.append(term.lstrip("=").rstrip("*") + ("\u0438\u0439" if term.endswith("*") else ""))

    for cat in pack["categories"].values():
        add(cat["terms"])
    for actor in pack["actors"].values():
        add(actor["aliases"])
    for place in pack["places"].values():
        add(place["aliases"])
    for terms in pack["cues"].values():
        add(terms)
    for terms in (pack.get("contexts") or {}).values():
        add(terms)
    return words + FILLER


def _text(rnd: random.Random, vocabulary: list[str], n: int) -> str:
    parts = []
    for _ in range(n):
        w = rnd.choice(vocabulary)
        r = rnd.random()
        if r < 0.15:
            w = w.upper()
        elif r < 0.4:
            w = w[:1].upper() + w[1:]
        parts.append(w)
        parts.append(rnd.choice(SEPARATORS))
    return "".join(parts)


def test_the_extension_is_built():
    assert CompiledTagger is not None, (
        "streams/tagging/_compiled.pyx is not built: install a C compiler (apt-get install gcc) and "
        "run `pip install -e .` (make install) again"
    )
    assert load_tagger().engine == "compiled"


def test_same_results_on_generated_texts(engines, vocabulary):
    reference, compiled = engines
    rnd = random.Random(20261125)
    checked = signals = 0
    for i in range(3000):
        title = _text(rnd, vocabulary, rnd.randint(0, 8)) if i % 3 else ""
        text = _text(rnd, vocabulary, rnd.randint(1, 80))
        want = reference.tag(title, text)
        assert compiled.tag(title, text) == want, (title, text)
        checked += 1
        signals += len(want["signals"])
    assert checked == 3000 and signals > 3000  # the texts do exercise the signal paths


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(SEPARATORS), st.sampled_from(FILLER), st.text(max_size=6)),
                max_size=40),
       st.integers(min_value=0, max_value=2**32))
def test_same_results_on_arbitrary_text(engines, vocabulary, parts, seed):
    reference, compiled = engines
    rnd = random.Random(seed)
    text = "".join(p if rnd.random() < 0.6 else rnd.choice(vocabulary) for p in parts)
    assert compiled.tag("", text) == reference.tag("", text)
    assert compiled.tag(text[:20], text[20:]) == reference.tag(text[:20], text[20:])


def test_same_results_on_seed_document(engines):
    reference, compiled = engines
    seeds = sorted((SHARED / "seeds").glob("*.txt"))
    if not seeds:
        pytest.skip("no seed documents in ../shared/seeds")
    for path in seeds:
        text = path.read_text(encoding="utf-8")
        assert compiled.tag("", text) == reference.tag("", text)
        for para in text.split("\n\n"):
            assert compiled.tag("", para) == reference.tag("", para)


def test_same_results_on_development_corpus(engines):
    reference, compiled = engines
    corpus = SHARED / "data" / "dev.jsonl"
    if not corpus.is_file():
        pytest.skip("no development corpus at ../shared/data/dev.jsonl")
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        title, text = row.get("title") or "", row.get("text") or ""
        assert compiled.tag(title, text) == reference.tag(title, text), row.get("id")
    assert len(rows) > 100


def test_a_pack_beyond_the_compiled_limits_runs_on_the_reference(caplog):
    pack = load_pack()
    pack = {**pack, "contexts": {**pack.get("contexts", {}), **{f"extra{i}": [f"zzword{i}"] for i in range(64)}}}
    with caplog.at_level("WARNING", logger="signalwatch"):
        tagger = Tagger(pack)
    assert tagger.engine == "reference"
    assert "reference engine: 84 context groups" in caplog.text
    result = tagger.tag("Kremlin rules out a ceasefire", "")
    assert [(s["category"], s["stance"]) for s in result["signals"]] == [("ceasefire", "rejected")]


@pytest.mark.parametrize("unit", ["Russia rejects a ceasefire and shelling continues, ", "Russia shelled Kyiv. ",
                                  "rocket putin ", "as long as talks go on, but no truce "])
def test_same_results_on_long_repetitive_text(engines, unit):
    """Long sentences with thousands of triggers, cues and actors (the windows are found by bisection)."""
    reference, compiled = engines
    text = unit * 3000
    want = reference.tag("", text)
    assert compiled.tag("", text) == want
    assert len(want["signals"]) >= 3000
