"""The negotiation tracker's CPU per item against the pipeline's own work per item, in one process.

Runs the bench items (bench/items.py) through what the two stages do per item (process_item, then the
story shard's decide) and through the tracker (ThreadBook.observe per batch, as the decide stage calls it),
timing each with thread CPU time. Kafka and Faust costs are left out of the pipeline's side, so the share
is an upper bound of the tracker's share of a worker's CPU (`make bench` measures that one:
``talks_cpu_share``). ``python bench/bench_talks.py [N]``.
"""

from __future__ import annotations

import sys
import time

import orjson

from bench.items import items
from streams.analytics.shard import Config, Entry, StoryShard
from streams.intake import BATCH_SIZE
from streams.processing import process_item
from streams.records import now_iso
from streams.settings import Settings
from streams.tagging import load_tagger
from streams.talks.stream import ThreadBook


def main(n: int = 20_000) -> dict:
    settings, tagger = Settings(), load_tagger()
    shard, book = StoryShard(Config.of(settings)), ThreadBook()
    raw = [orjson.dumps(item) for _, item in items(n)]
    pipeline = talks = 0.0
    for offset, first in enumerate(range(0, n, BATCH_SIZE)):
        start = time.thread_time()
        received_at, received = now_iso(), time.time()
        entries = [Entry.from_wire(orjson.loads(orjson.dumps(process_item(r, settings, tagger, received_at,
                                                                           received).wire())))
                   for r in raw[first:first + BATCH_SIZE]]
        out = shard.decide(entries, offset, time.time())
        shard.flush()
        middle = time.thread_time()
        book.observe([tagged for tagged, _ in out.tagged], time.time())
        book.flush()
        talks += time.thread_time() - middle
        pipeline += middle - start
    result = {"talks_items": n, "talks_us_per_item": round(talks / n * 1e6, 1),
              "pipeline_us_per_item": round(pipeline / n * 1e6, 1),
              "talks_vs_pipeline": round(talks / pipeline, 4),
              "talks_threads": sum(book.by_state().values())}
    print(result)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
