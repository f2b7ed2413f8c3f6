"""The rule pack's example sentences as tests: every category carries its own, with what it must yield.

An example ``{text, stance}`` of a category passes when the tagger finds a signal of that category
with that stance (for a ``none`` example: no counting signal of the category); an optional
``item_stance`` must equal the item's ``negotiation_stance``. ``make test`` runs them
(tests/unit/test_lexicon_examples.py); ``signalwatch lexicon check [PACK]`` prints the failures.
"""

from __future__ import annotations

from typing import Any

from .engine import Tagger


def check_examples(tagger: Tagger) -> tuple[int, list[dict[str, Any]]]:
    """Run every example of the pack; returns ``(number checked, failures)``.

    A failure names the category, the example, what was expected and what the tagger found.
    """
    failures: list[dict[str, Any]] = []
    checked = 0
    for name, cat in tagger.pack["categories"].items():
        for ex in cat.get("examples", ()):
            checked += 1
            result = tagger.tag(ex.get("title", ""), ex["text"])
            found = [s for s in result["signals"] if s["category"] == name]
            want = ex["stance"]
            if want == "none":
                ok = not any(s["counts"] for s in found)
            else:
                ok = any(s["stance"] == want for s in found)
            item_want = ex.get("item_stance")
            if ok and item_want is not None:
                ok = (result["negotiation_stance"] or "none") == item_want
            if not ok:
                failures.append({"category": name, "text": ex["text"], "expected": want,
                                 "expected_item_stance": item_want,
                                 "found": [f"{s['category']}:{s['stance']}{'' if s['counts'] else ' (not counted)'}"
                                           f":{s['text']!r}" for s in result["signals"]],
                                 "item_stance": result["negotiation_stance"]})
    return checked, failures


def format_failure(f: dict[str, Any]) -> str:
    """One failure as two lines an analyst can act on."""
    want = f["expected"] if f["expected"] == "none" else f"a {f['expected']} signal"
    if f["expected"] == "none":
        want = "no counting signal"
    if f.get("expected_item_stance"):
        want += f", item stance {f['expected_item_stance']}"
    found = "; ".join(f["found"]) or "no signal"
    return (f"FAIL {f['category']}: {f['text']!r}\n"
            f"     expected {want} of {f['category']}; found {found} (item stance {f['item_stance']})")
