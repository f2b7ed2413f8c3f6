"""Benchmark: items/s of the tagging core on one core, next to orjson parse+dump of the same items.

Generates its own news items shaped like a feed's (a headline plus a one- or two-sentence lead, about
260 characters, about two signals each; our own wording, not corpus text), tags them in a single thread
and merges ``tagging_items_per_s``, ``orjson_items_per_s``, the ratio, the item size and the signals per
item into ``bench/results/latest.json`` (other keys are left alone).

    python bench/bench_tagging.py [--items N] [--seconds S] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import time
from pathlib import Path

import orjson

from streams.tagging import load_tagger

_PLACES = ["Kharkiv", "Odesa", "Zaporizhzhia", "Kherson", "Dnipro", "Sumy", "Pokrovsk", "Belgorod", "Kyiv",
           "Mykolaiv", "Chernihiv", "Kramatorsk", "Poltava", "Lviv", "Kupiansk"]
_WHO = ["the regional governor", "a military spokesperson", "the foreign ministry", "local officials",
        "the mayor", "an aide to the president", "the general staff", "a senior diplomat", "the energy minister",
        "witnesses", "the emergency service", "analysts at a think tank"]
_NUM = ["two", "three", "five", "seven", "a dozen", "several", "more than 20", "dozens of", "40"]
# sentences carrying conflict or diplomacy signals (our own wording)
_SIGNAL = [
    "Overnight, {n} drones targeted energy facilities near {p}, {w} said.",
    "Russian forces shelled residential districts of {p}, damaging houses and a school.",
    "Heavy fighting continued on the approaches to {p}, according to {w}.",
    "Air defence units intercepted {n} cruise missiles over the {p} region before dawn.",
    "The government announced a new military aid package that includes artillery shells and air defence.",
    "A senior official warned that any strike deep inside Russia could trigger a nuclear response.",
    "{W} said Kyiv was ready to discuss a ceasefire if the front line were frozen.",
    "Negotiators ruled out territorial concessions ahead of the next round of talks.",
    "A prisoner exchange mediated by Gulf states returned {n} soldiers to their families.",
    "A humanitarian corridor was opened so that civilians could leave {p}.",
    "Power was cut to thousands of homes in {p} after a strike on a substation.",
    "{W} reported that troops repelled an assault near {p} and captured equipment.",
    "Moscow rejected the peace proposal and said security guarantees for Ukraine were unacceptable.",
    "The president signed a decree extending martial law and general mobilisation for 90 days.",
]
# background sentences with actors and places but no signal
_PLAIN = [
    "Residents of {p} queued for water and bread while volunteers handed out blankets.",
    "The statement gave no further details and could not be independently verified.",
    "Analysts said the coming weeks would show whether the situation stabilises.",
    "Markets in {p} reacted calmly, according to traders who spoke to reporters on Tuesday.",
    "{W} promised an update later in the day after consultations with partners in Brussels.",
    "Schools in {p} reopened after the holidays, with lessons held in basement classrooms.",
    "The city council of {p} approved a budget for road repairs and new tram lines.",
    "Ukraine's central bank kept its key rate unchanged, citing slowing inflation.",
    "{W} said the harvest in the south had been better than expected despite the dry summer.",
    "Journalists visited a rebuilt hospital wing in {p} that had been closed for two years.",
    "The European Commission published its annual report on candidate countries, including Ukraine and Moldova.",
    "In Moscow, officials discussed the federal budget and plans to raise pensions next year.",
    "Volunteers in {p} collected winter clothes and generators for families in nearby villages.",
    "{W} thanked partners for their support and said reforms of the judiciary would continue.",
    "Weather forecasters expect the first snow in {p} by the end of the week.",
]
_TITLES = ["Drones hit {p} overnight", "Talks on prisoner swap resume", "{W} warns of winter blackouts",
           "New aid package announced", "City of {p} prepares for winter", "Officials discuss budget",
           "Kremlin dismisses ceasefire proposal", "Fighting intensifies near {p}"]


def _fill(rnd: random.Random, template: str) -> str:
    w = rnd.choice(_WHO)
    return template.format(p=rnd.choice(_PLACES), w=w, W=w[0].upper() + w[1:], n=rnd.choice(_NUM))


def make_items(n: int, seed: int = 7, signal_share: float = 0.25) -> list[dict]:
    """Feed-like items: a headline and a lead of one or two sentences (about 260 characters);
    ``signal_share`` of the lead sentences carry a signal, the headline usually does."""
    rnd = random.Random(seed)
    items = []
    for i in range(n):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < 190:
            pool = _SIGNAL if rnd.random() < signal_share else _PLAIN
            parts.append(_fill(rnd, rnd.choice(pool)))
        items.append({"id": f"bench-{i}", "title": _fill(rnd, rnd.choice(_TITLES)), "text": " ".join(parts),
                      "source": "bench", "url": f"https://example.org/news/{i}",
                      "published_at": "2026-11-24T10:00:00Z", "language": "en"})
    return items


def _rate(fn, items: list, seconds: float) -> float:
    """Items per second of CPU time of this thread (robust on a shared machine)."""
    done = 0
    start = time.thread_time()
    while True:
        for it in items:
            fn(it)
        done += len(items)
        elapsed = time.thread_time() - start
        if elapsed >= seconds:
            return done / elapsed


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--signal-share", type=float, default=0.25,
                    help="share of lead sentences carrying a signal (0.25 gives ~2 signals per item, as in feeds)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "latest.json"))
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):  # one core
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    tagger = load_tagger()
    items = make_items(args.items, signal_share=args.signal_share)
    raw = [orjson.dumps(it) for it in items]
    size = sum(len(it["title"]) + 1 + len(it["text"]) for it in items) / len(items)
    tag = tagger.tag
    for it in items[:200]:  # warm-up
        tag(it["title"], it["text"])
    signals = sum(len(tag(it["title"], it["text"])["signals"]) for it in items) / len(items)
    tagging = _rate(lambda it: tag(it["title"], it["text"]), items, args.seconds)
    orj = _rate(lambda r: orjson.dumps(orjson.loads(r)), raw, args.seconds)
    numbers = {
        "tagging_items_per_s": round(tagging, 1),
        "orjson_items_per_s": round(orj, 1),
        "tagging_vs_orjson_ratio": round(tagging / orj, 4),
        "tagging_item_bytes": round(size, 1),
        "tagging_signals_per_item": round(signals, 2),
        "tagging_lexicon_version": tagger.version,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    except ValueError:
        current = {}
    for stale in ("tagging_engine", "tagging_reference_items_per_s", "tagging_vs_reference_ratio"):
        current.pop(stale, None)  # from the time of two engines
    current.update(numbers)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"items: {len(items)} x {size:.0f} chars, {signals:.1f} signals/item, lexicon {tagger.version}")
    print(f"tagging: {tagging:>12,.0f} items/s (one core; {1e6 / tagging:.0f} us per item)")
    print(f"orjson : {orj:>12,.0f} items/s (parse + dump)")
    print(f"ratio  : {tagging / orj:.3f}   -> {out}")
    return numbers


if __name__ == "__main__":
    main()
