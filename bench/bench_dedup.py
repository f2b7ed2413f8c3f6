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
Measures what the story shard and its tables keep per remembered story (``bytes_per_story``: tracemalloc,
by store, and RSS growth in a fresh process) on 20k realistic bench items (bench/items.py), uncapped and
with a cap of 5,000 stories. Writes bench/results/dedup.json.

The pairs are our own wording, one JSON object a line: ``id``, ``merge`` (true: b is a copy of a's report),
``kind`` (``copy/...``: a credit line, another outlet's headline, reordered sentences, a light edit, a
dateline, a trimmed last sentence; ``other/...``: the same template about another city, day, count,
weapon, target or actor, a death-toll revision; ``headline/...``: bare headlines), ``a`` and ``b``
(``title``, ``text``). ``heldout/...`` pairs were written after the rules of ``same_event`` were set.
"""

from __future__ import annotations

import gc
import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.items import items as bench_items  # noqa: E402
from streams.analytics import similarity  # noqa: E402
from streams.analytics.dedup import DedupIndex, Features, Story  # noqa: E402
from streams.analytics.event_identity import EventKey, event_key, same_event  # noqa: E402
from streams.analytics.shard import (  # noqa: E402
    Config,
    StoryShard,
    batch_records,  # noqa: E402
    read_batch,
)
from streams.intake import BATCH_SIZE  # noqa: E402
from streams.processing import process_item  # noqa: E402
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


def _deep_size(obj, seen: set[int]) -> int:
    """Bytes of ``obj`` and everything it holds (containers, strings, bytes, numbers), each object once."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set):
        size += sum(_deep_size(v, seen) for v in obj)
    return size


def story_records(n: int = 20_000) -> list[bytes]:
    """``n`` realistic bench items (bench/items.py) as the process stage hands them on: news.processed
    records of :data:`BATCH_SIZE` entries."""
    tagger, settings, now = load_tagger(), Settings(), time.time()
    parts = [process_item(orjson.dumps(x), settings, tagger, "2026-11-30T00:00:00Z", now).wire()
             for _, x in bench_items(n)]
    return [r for i in range(0, n, BATCH_SIZE) for r in batch_records(parts[i:i + BATCH_SIZE])]


def _feed(records: list[bytes], max_stories: int) -> tuple[StoryShard, dict[str, dict[bytes, bytes]], int]:
    """A shard fed ``records`` as the decide stage feeds it (decoded one record at a time), and its tables'
    in-memory data as the stage keeps it (sharing the shard's bytes); the stories it evicted."""
    shard, now, evicted = StoryShard(Config(max_stories=max_stories)), time.time(), 0
    tables: dict[str, dict[bytes, bytes]] = {"stories": {}, "cooldown": {}, "windows": {}}
    for offset, value in enumerate(records):
        entries = read_batch(value)
        evicted += shard.decide(entries, offset, now + offset).evicted
        changes = shard.flush()
        for name, changed in (("stories", changes.stories), ("cooldown", changes.cooldown),
                              ("windows", changes.windows)):
            for key, stored in changed.items():
                if stored is None:
                    tables[name].pop(key, None)
                else:
                    tables[name][key] = stored
        del entries
    return shard, tables, evicted


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def rss_feed(path: str) -> None:
    """Print the RSS growth per story of a fresh process fed the records in ``path`` (one a line)."""
    records = Path(path).read_bytes().splitlines()
    gc.collect()
    before = _rss()
    shard, _, _ = _feed(records, 200_000)
    gc.collect()
    print(round((_rss() - before) / len(shard.index)))


def story_memory(records: list[bytes], max_stories: int = 200_000, rss: bool = True) -> dict:
    """Bytes the story shard and its tables hold per remembered story, fed ``records``
    (:func:`story_records`): ``bytes_per_story`` is tracemalloc's count, ``parts_bytes_per_story`` splits it
    by store (each object counted once), ``rss_bytes_per_story`` the RSS growth of a fresh process fed the
    same records (allocator overhead included; no cap)."""
    out: dict = {"max_stories": max_stories}
    if rss:
        with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
            f.write(b"\n".join(records))
            f.flush()
            out["rss_bytes_per_story"] = int(subprocess.run(
                [sys.executable, __file__, "--rss-feed", f.name], check=True, capture_output=True).stdout)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    shard, tables, evicted = _feed(records, max_stories)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    stories = len(shard.index)
    seen: set[int] = set()
    index = shard.index
    sizes = {"index_records": _deep_size(index.records, seen),
             "index_keys": sum(_deep_size(d, seen) for d in (index.by_url, index.by_content, index.by_band)),
             "segments": _deep_size(shard.segments, seen) + _deep_size(shard._segment_meta, seen)
             + _deep_size(tables["stories"], seen),
             "alerts": _deep_size(shard._alerts, seen), "copies": _deep_size(shard._copies, seen),
             "cooldown_and_windows": sum(_deep_size(d, seen) for d in (
                 shard.last_alert, shard.windows, shard._latest, shard._baselines, tables["cooldown"],
                 tables["windows"]))}
    items = sum(len(orjson.loads(r)["entries"]) for r in records)
    return {"items": items, "stories": stories, "evicted": evicted, **out,
            "bytes_per_story": round(traced / stories), "traced_mib": round(traced / 2**20, 1),
            "parts_bytes_per_story": {k: round(v / stories) for k, v in sizes.items()},
            "stories_with_alerts": len(shard._alerts), "segments": len(shard.segments)}


def main(n: int = 100_000) -> dict:
    pairs = load_pairs()
    rng = random.Random(1)
    items = [item(i, rng) for i in range(n)]
    sample = items[:2000]
    sketch_us, old_sketch_us = _best_us([similarity.signature, char5_signature], sample)
    tagger = load_tagger()
    features = [Features.of(x, event=event_key(x["title"], x["text"], tagger.tag(x["title"], x["text"])))
                for x in items]  # as the process stage makes them: with the event key the story keeps
    for f in features:
        f.bands  # noqa: B018 - cached on the features, which the pipeline drops after the lookup: not state

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
    records = story_records(20_000)
    result["story_memory"] = story_memory(records)
    result["story_memory_capped"] = story_memory(records, max_stories=5_000, rss=False)
    result["bytes_per_story"] = result["story_memory"]["bytes_per_story"]
    out = Path(__file__).resolve().parent / "results" / "dedup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__" and sys.argv[1:2] == ["--rss-feed"]:
    rss_feed(sys.argv[2])
elif __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
