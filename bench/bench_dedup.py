"""Memory, speed and accuracy of duplicate detection (``python bench/bench_dedup.py [N]``).

Measures, with tracemalloc, what the dedup stage holds for N distinct ~1 KB stories (each with its event
key): the in-memory index
(:class:`streams.analytics.dedup.DedupIndex`) plus the story records that the Faust table
(``dedup_stories``, in-memory store) keeps, keys included (as in the agent, the index and the table share
each record). Times, without tracemalloc, the sketch (done in ingest for every item) -- and, on the same
items in the same run, the previous char 5-gram sketch for comparison -- and the lookup (done in the single
dedup stage). Scores the whole near-duplicate decision -- sketch candidate (the dedup index) *and*
:func:`streams.analytics.event_identity.same_event` -- on the labelled pairs of tests/data/dedup_pairs.jsonl
(precision and recall of "merge", also for the sketch alone), and times an event key and one check.
Writes bench/results/dedup.json.

The pairs are our own wording, one JSON object a line: ``id``, ``merge`` (true: b is a copy of a's report),
``kind`` (``copy/...``: a credit line, another outlet's headline, reordered sentences, a light edit, a
dateline, a trimmed last sentence; ``other/...``: the same template about another city, day, count,
weapon, target or actor, a death-toll revision; ``headline/...``: bare headlines), ``a`` and ``b``
(``title``, ``text``). ``heldout/...`` pairs were written after the rules of ``same_event`` were set.
"""

from __future__ import annotations

import json
import random
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.analytics import similarity  # noqa: E402
from streams.analytics.dedup import DedupIndex, Features, Story  # noqa: E402
from streams.analytics.event_identity import EventKey, event_key, same_event  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.tagging import load_tagger  # noqa: E402

PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "dedup_pairs.jsonl"

WORDS = ("missile strike drone attack Kyiv Kharkiv Odesa Russia Ukraine ceasefire talks Kremlin NATO "
         "energy grid power plant officials said overnight forces launched region city district air defence "
         "shot down peace summit envoy proposal sanctions troops front line Donetsk Zaporizhzhia").split()


_SYLLABLES = "ka ro mi tu sen dor vel an is ot rel pra zu ne lo gri".split()
VOCAB = WORDS + sorted({"".join(random.Random(k).choices(_SYLLABLES, k=random.Random(-k).randint(1, 4)))
                        for k in range(6000)})
_WEIGHTS = [1 / (r + 1) for r in range(len(VOCAB))]  # Zipf-like: a few very common words, a long tail


def item(i: int, rng: random.Random) -> dict:
    text = " ".join(rng.choices(VOCAB, _WEIGHTS, k=rng.randint(100, 140)))  # ~1 KB
    return {"id": f"item-{i}", "title": f"Story {i}", "text": f"{text} ({i})",
            "url": f"https://news{i % 50}.example/{i}", "source": f"news{i % 50}"}


PREVIOUS = {"bytes_per_item": 5168, "mib_per_100k_items": 492.8, "sketch_us_per_item": 1707.6,
            "note": "first version (char 5-grams, 64 x 32-bit bins, JSON + base64 story records, signature "
                    "stored in the index and in the table), 20k items of ~470 characters"}


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def char5_signature(title: str, text: str) -> tuple[int, ...] | None:
    """The previous sketch (character 5-grams, crc32 + fmix per shingle, 64 bins), for the comparison."""
    data = similarity.fold(title, text).encode("utf-8", "surrogatepass")
    if len(data) <= 5:
        return None
    hashes = {_fmix32(zlib.crc32(data[i:i + 5])) for i in range(len(data) - 4)}
    mins = [0xFFFFFFFF] * 64
    for h in hashes:
        if (h >> 6) < mins[h & 63]:
            mins[h & 63] = h >> 6
    return tuple(mins)


def _best_us(fns, items: list[dict], rounds: int = 5) -> list[float]:
    """Best of ``rounds`` passes of each function, µs per item; the functions alternate round by round
    (the machine is shared: the best pass is the least disturbed, and both see the same load)."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            for x in items:
                fn(x["title"], x["text"])
            best[k] = min(best[k], time.perf_counter() - t)
    return [b / len(items) * 1e6 for b in best]


def load_pairs(path: Path = PAIRS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def merges(a: dict, b: dict, threshold: float) -> tuple[bool, bool]:
    """Whether ``b`` is a near-duplicate candidate of the remembered ``a`` (the dedup index: content or
    LSH + signature), and whether the full decision merges it (a candidate that is also the same event)."""
    index = DedupIndex(threshold)
    first = Features.of({"id": "a", **a})
    index.add(Story.first(first, 0.0))
    _, reason = index.check(Features.of({"id": "b", **b}))
    if not reason:
        return False, False
    tagger = load_tagger()
    key_a = EventKey.unpack(event_key(a["title"], a["text"], tagger.tag(a["title"], a["text"])).pack())
    key_b = event_key(b["title"], b["text"], tagger.tag(b["title"], b["text"]))
    return True, reason == "content" or same_event(key_a, key_b)


def _rates(decisions: list[tuple[bool, bool]]) -> dict:
    """Precision and recall of ``(label, merged)`` decisions."""
    tp = sum(label and merged for label, merged in decisions)
    fp = sum(merged and not label for label, merged in decisions)
    fn = sum(label and not merged for label, merged in decisions)
    return {"precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0, "false_merges": fp, "missed_copies": fn}


def score_pairs(pairs: list[dict], threshold: float | None = None) -> dict:
    """Precision and recall of the near-duplicate decision on labelled pairs (``merge``: a copy), with
    the ids of the pairs it gets wrong, and the same for the sketch alone."""
    threshold = Settings().near_dup_threshold if threshold is None else threshold
    full, sketch, wrong = [], [], []
    for p in pairs:
        candidate, merged = merges(p["a"], p["b"], threshold)
        full.append((p["merge"], merged))
        sketch.append((p["merge"], candidate))
        if merged != p["merge"]:
            wrong.append(f'{p["id"]} {p["kind"]}')
    return {"pairs": len(pairs), "copies": sum(p["merge"] for p in pairs), "threshold": threshold,
            **_rates(full), "wrong": wrong, "sketch_only": _rates(sketch)}


def event_key_costs(pairs: list[dict]) -> dict:
    """µs to build an event key (tagging excluded: the pipeline tags every item anyway), to unpack a
    stored key and to check a pair, and the packed key's size."""
    tagger = load_tagger()
    items = [x for p in pairs for x in (p["a"], p["b"])]
    tags = [tagger.tag(x["title"], x["text"]) for x in items]
    keys = [event_key(x["title"], x["text"], t) for x, t in zip(items, tags, strict=True)]
    packed = [k.pack() for k in keys]
    others = keys[1:] + keys[:1]
    best = [float("inf")] * 3
    for _ in range(5):
        for k, run in enumerate((
                lambda: [event_key(x["title"], x["text"], t) for x, t in zip(items, tags, strict=True)],
                lambda: [EventKey.unpack(raw) for raw in packed],
                lambda: [same_event(a, b) for a, b in zip(keys, others, strict=True)])):
            t = time.perf_counter()
            run()
            best[k] = min(best[k], time.perf_counter() - t)
    build, unpack, check = (b / len(items) * 1e6 for b in best)
    sizes = sorted(map(len, packed))
    return {"event_key_us_per_item": round(build, 1), "unpack_us": round(unpack, 2),
            "same_event_us": round(check, 2), "event_key_bytes_mean": round(sum(sizes) / len(sizes), 1),
            "event_key_bytes_max": sizes[-1]}


def main(n: int = 100_000) -> dict:
    pairs = load_pairs()
    rng = random.Random(1)
    items = [item(i, rng) for i in range(n)]
    sample = items[:2000]
    sketch_us, old_sketch_us = _best_us([similarity.signature, char5_signature], sample)
    tagger = load_tagger()
    features = [Features.of(x, event=event_key(x["title"], x["text"], tagger.tag(x["title"], x["text"])))
                for x in items]  # as the process stage makes them: with the event key the story keeps

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    index = DedupIndex()
    table: dict[bytes, bytes] = {}  # what the in-memory Faust store holds for the stories
    t = time.perf_counter()
    dups = 0
    for i, f in enumerate(features):
        sid, _ = index.check(f)
        if sid is not None:
            dups += 1
            continue
        story = Story.first(f, float(i))
        table[f.item_id.encode()] = story.dumps()
        index.add(story)  # shares story.raw with the table, as the agent does
    lookup_us = (time.perf_counter() - t) / n * 1e6
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    result = {
        "items": n,
        "avg_item_bytes": round(sum(len(x["text"]) + len(x["title"]) for x in items) / n),
        "false_duplicates": dups,
        "bytes_per_item": round(used / n),
        "mib_per_100k_items": round(used / n * 100_000 / 2**20, 1),
        "sketch_us_per_item": round(sketch_us, 1),
        "char5_sketch_us_per_item": round(old_sketch_us, 1),
        "sketch_speedup": round(old_sketch_us / sketch_us, 1),
        "dedup_stage_us_per_item_under_tracemalloc": round(lookup_us, 1),
        "previous": PREVIOUS,
        "pairs": score_pairs(pairs),
        "pairs_heldout": score_pairs([p for p in pairs if p["kind"].startswith("heldout/")]),
        "event_identity": event_key_costs(pairs),
    }
    out = Path(__file__).resolve().parent / "results" / "dedup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
