"""Benchmark: items/s of the tagging core on one core, next to orjson parse+dump of the same items.

Generates its own synthetic ~1 KB news items (our own wording, not corpus text), tags them in a
single thread, and merges ``tagging_items_per_s``, ``orjson_items_per_s`` and
``tagging_vs_orjson_ratio`` into ``bench/results/latest.json`` (other keys are left alone).

    python bench/bench_tagging.py [--items N] [--seconds S] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import orjson

from streams.tagging import load_tagger

_SUBJECTS = ["Russian forces", "Ukrainian troops", "The Kremlin", "Kyiv", "Officials in Moscow", "The governor",
             "A spokesperson for the army", "Western diplomats", "The defence ministry", "Local authorities"]
_EVENTS = [
    "launched a wave of drones at energy facilities near {p} overnight",
    "shelled residential districts of {p}, damaging several buildings",
    "reported heavy fighting on the approaches to {p}",
    "said air defence intercepted cruise missiles over {p}",
    "announced a new military aid package including artillery shells",
    "warned that any strike on its territory would meet a nuclear response",
    "said it was ready to discuss a ceasefire if the front line is frozen",
    "ruled out territorial concessions during the next round of talks",
    "confirmed a prisoner swap mediated by Gulf states",
    "opened a humanitarian corridor for civilians leaving {p}",
    "published figures on grain exports through the sea corridor",
    "reopened schools after weeks of power cuts in {p}",
    "held a press briefing about road repairs and the winter budget",
    "described the weather as unusually mild for the season",
]
_PLACES = ["Kharkiv", "Odesa", "Zaporizhzhia", "Kherson", "Dnipro", "Sumy", "Pokrovsk", "Belgorod", "Kyiv"]
_FILLER = [
    "Residents queued for water and bread while volunteers handed out blankets.",
    "The statement did not give further details and could not be independently verified.",
    "Analysts said the coming weeks would show whether the situation stabilises.",
    "Markets in the region reacted calmly to the news, according to local traders.",
    "Officials promised an update later in the day after consultations with partners.",
]


def make_items(n: int, seed: int = 7) -> list[dict]:
    """Synthetic news items of about 1 KB each."""
    rnd = random.Random(seed)
    items = []
    for i in range(n):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < 900:
            if rnd.random() < 0.55:
                ev = rnd.choice(_EVENTS).format(p=rnd.choice(_PLACES))
                parts.append(f"{rnd.choice(_SUBJECTS)} {ev}.")
            else:
                parts.append(rnd.choice(_FILLER))
        title = f"{rnd.choice(_SUBJECTS)} {rnd.choice(_EVENTS).format(p=rnd.choice(_PLACES))}"
        items.append({"id": f"bench-{i}", "title": title, "text": " ".join(parts), "source": "bench",
                      "url": f"https://example.org/news/{i}", "published_at": "2026-11-24T10:00:00Z"})
    return items


def _rate(fn, items: list, seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while True:
        for it in items:
            fn(it)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "latest.json"))
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):  # one core
        try:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        except OSError:
            pass
    tagger = load_tagger()
    items = make_items(args.items)
    raw = [orjson.dumps(it) for it in items]
    avg = sum(len(r) for r in raw) / len(raw)
    tag = tagger.tag
    for it in items[:200]:  # warm-up
        tag(it["title"], it["text"])
    tagging = _rate(lambda it: tag(it["title"], it["text"]), items, args.seconds)
    orj = _rate(lambda r: orjson.dumps(orjson.loads(r)), raw, args.seconds)
    numbers = {
        "tagging_items_per_s": round(tagging, 1),
        "orjson_items_per_s": round(orj, 1),
        "tagging_vs_orjson_ratio": round(tagging / orj, 4),
        "tagging_item_bytes": round(avg, 1),
        "tagging_lexicon_version": tagger.version,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    except ValueError:
        current = {}
    current.update(numbers)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"items: {len(items)} x {avg:.0f} B  lexicon {tagger.version}")
    print(f"tagging: {tagging:>12,.0f} items/s (one core)")
    print(f"orjson : {orj:>12,.0f} items/s (parse + dump)")
    print(f"ratio  : {tagging / orj:.3f}   -> {out}")
    return numbers


if __name__ == "__main__":
    main()
