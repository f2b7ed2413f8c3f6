"""CPU per item of the process stage (``python bench/bench_process.py [--items N] [--profile]``).

Feeds realistic bench items (bench/items.py) through :func:`streams.processing.process_batch` in batches of
``streams.intake.BATCH_SIZE`` messages, as a process helper does with what the reader fetched from news.raw,
in one thread: the best of three runs in µs per item, and orjson ``loads`` + ``dumps`` of the same items in the same run as a
baseline (the ratio says how the stage compares on a busy or a quiet machine). ``--profile`` prints
cProfile's top functions by their own time instead.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.items import items as bench_items  # noqa: E402
from streams.intake import BATCH_SIZE  # noqa: E402
from streams.processing import process_batch  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.sources import default_registry  # noqa: E402
from streams.tagging import load_tagger  # noqa: E402

RUNS = 3


def _process(raws: list[bytes], settings: Settings, tagger, registry) -> None:
    now = time.time()
    messages = [(raw, 0, offset) for offset, raw in enumerate(raws)]
    for at in range(0, len(messages), BATCH_SIZE):
        process_batch(messages[at:at + BATCH_SIZE], settings, tagger, registry, "2026-11-30T00:00:00Z", now)


def _orjson(raws: list[bytes]) -> None:
    for raw in raws:
        orjson.dumps(orjson.loads(raw))


def _best_us(fn, raws: list[bytes], *args) -> float:
    best = float("inf")
    for _ in range(RUNS):
        start = time.thread_time()
        fn(raws, *args)
        best = min(best, time.thread_time() - start)
    return best / len(raws) * 1e6


def measure(n: int) -> dict:
    """µs per item of the process stage and of the orjson baseline (best of :data:`RUNS`), and their ratio."""
    raws = [orjson.dumps(x) for _, x in bench_items(n)]
    settings, tagger, registry = Settings(), load_tagger(), default_registry()
    _process(raws[:200], settings, tagger, registry)  # warm caches and lazily compiled patterns
    process_us = _best_us(_process, raws, settings, tagger, registry)
    orjson_us = _best_us(_orjson, raws)
    return {"items": n, "process_us_per_item": round(process_us, 1), "orjson_us_per_item": round(orjson_us, 2),
            "process_vs_orjson": round(process_us / orjson_us, 1)}


def profile(n: int, top: int) -> None:
    raws = [orjson.dumps(x) for _, x in bench_items(n)]
    settings, tagger, registry = Settings(), load_tagger(), default_registry()
    _process(raws[:200], settings, tagger, registry)
    prof = cProfile.Profile()
    prof.runcall(_process, raws, settings, tagger, registry)
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)
    pstats.Stats(prof).sort_stats("cumtime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions instead")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    if args.profile:
        profile(args.items, args.top)
    else:
        print(json.dumps(measure(args.items)))


if __name__ == "__main__":
    main()
