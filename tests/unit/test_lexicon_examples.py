"""The rule pack's own example sentences are tests: every category's examples must come out as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.tagging import load_pack, load_tagger
from streams.tagging.engine import Tagger
from streams.tagging.examples import check_examples, format_failure


def test_every_category_carries_examples_of_both_outcomes():
    pack = load_pack()
    for name, cat in pack["categories"].items():
        assert len(cat["examples"]) >= 2, name
    stances = {ex["stance"] for cat in pack["categories"].values() for ex in cat["examples"]}
    # the pack shows every modality it can produce and what must not fire
    assert {"reported", "threatened", "hypothetical", "historical", "negated", "none"} <= stances
    assert {"agreed", "proposed", "open", "conditional", "rejected", "denied"} <= stances


def test_bundled_pack_examples_pass():
    checked, failures = check_examples(load_tagger())
    assert checked >= 2 * len(load_pack()["categories"])
    assert not failures, "\n" + "\n".join(format_failure(f) for f in failures)


def test_a_wrong_example_is_reported_with_what_was_found(tmp_path: Path):
    pack = load_pack()
    pack["categories"]["shelling"]["examples"] = [
        {"text": "Russian artillery shelled the outskirts of Kherson.", "stance": "hypothetical"},
        {"text": "Russian artillery shelled the outskirts of Kherson.", "stance": "none"},
        {"text": "Russian artillery shelled the outskirts of Kherson.", "stance": "reported"},
    ]
    checked, failures = check_examples(Tagger(pack))
    shelling = [f for f in failures if f["category"] == "shelling"]
    assert [f["expected"] for f in shelling] == ["hypothetical", "none"]
    text = format_failure(shelling[0])
    assert "expected a hypothetical signal of shelling" in text and "shelling:reported:'shelled'" in text


@pytest.mark.parametrize(("text", "category", "stance"), [
    # the seed paragraphs' key sentences, in our own wording
    ("Kyiv will not concede on key territorial issues, the president said.", "territorial_concession", "rejected"),
    ("Diplomats warned of threats of nuclear escalation.", "nuclear_threat", "threatened"),
    ("Officials say the talks could lead to a freeze along the front line in Ukraine.", "freeze", "open"),
])
def test_careful_reader_readings(text, category, stance):
    signals = [s for s in load_tagger().tag("", text)["signals"] if s["category"] == category]
    assert signals and all(s["stance"] == stance for s in signals), signals
