"""Memory and speed of duplicate detection per 100k items (``python bench/bench_dedup.py [N]``).

Measures, with tracemalloc, what the dedup stage holds for N distinct stories: the in-memory index
(:class:`streams.analytics.dedup.DedupIndex`) plus the serialized story records that the Faust table
(``dedup_stories``, in-memory store) keeps, keys included. Also times the sketch (done in ingest) and
the lookup (done in the single dedup stage). Writes bench/results/dedup.json.
"""

from __future__ import annotations

import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.analytics.dedup import DedupIndex, Features, Story  # noqa: E402

WORDS = ("missile strike drone attack Kyiv Kharkiv Odesa Russia Ukraine ceasefire talks Kremlin NATO "
         "energy grid power plant officials said overnight forces launched region city district air defence "
         "shot down peace summit envoy proposal sanctions troops front line Donetsk Zaporizhzhia").split()


def item(i: int, rng: random.Random) -> dict:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90)))
    return {"id": f"item-{i}", "title": f"Story {i}", "text": f"{text} ({i})",
            "url": f"https://news{i % 50}.example/{i}", "source": f"news{i % 50}"}


def main(n: int = 100_000) -> dict:
    rng = random.Random(1)
    items = [item(i, rng) for i in range(n)]
    t = time.perf_counter()
    features = [Features.of(x) for x in items]
    sketch_us = (time.perf_counter() - t) / n * 1e6

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
        index.add(story)
    lookup_us = (time.perf_counter() - t) / n * 1e6
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    result = {
        "items": n,
        "false_duplicates": dups,
        "bytes_per_item": round(used / n),
        "mib_per_100k_items": round(used / n * 100_000 / 2**20, 1),
        "sketch_us_per_item": round(sketch_us, 1),
        "dedup_stage_us_per_item": round(lookup_us, 1),
    }
    out = Path(__file__).resolve().parent / "results" / "dedup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
