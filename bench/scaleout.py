"""``make bench-scale``: the pipeline's measured scale-out with 1, 2, 4 and 8 workers on one local broker.

One KRaft broker, news.raw at 8 partitions, realistic items (bench/items.py); a no-op Faust agent's rate
over them is the baseline. Then, for each worker count N:

1. every topic is deleted and created again (an earlier group's ``news.processed`` batches would otherwise
   be decided again: that topic's name does not carry the app id);
2. N workers start in one consumer group under a fresh app id, with the settings of ``make bench``'s
   pipeline phases (``bench.run.pipeline_env``), and are left to settle on the empty topics (every worker
   ready, no assignment for 5 s), so no rebalance falls inside the measurement;
3. the backlog of ``--items`` is written to news.raw, and the rate is items handled (tagged, duplicate or
   dead-lettered, counted by the story shard) over the time from the first record sent to the drain (or
   to ``--limit`` seconds: ``drained: false``, and the rate is understated, see below).

The rate is end to end: the story shard counts items only once it has them, a few thousand at a time,
and under a backlog it gets them late (the process stage keeps the consumer busy with news.raw).

Writes ``scale_out_measured`` (items/s per N), ``scale_out_ratio`` (against 1 worker), the baseline, the
CPU count and the load average to ``--out``. Judge it on a machine with a core per worker and cores left
for the broker; where workers share cores, the ratio says how they share them.

    python bench/scaleout.py [--workers 1,2,4,8] [--items 60000] [--limit 120] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    NOOP_ITEMS,
    Worker,
    backlog,
    measure,
    run_noop,
    send_backlog,
    start_broker,
    stop_workers,
)
from streams.broker import LocalBroker, free_port  # noqa: E402

OUT = ROOT / "bench" / "results" / "scaleout.json"
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2,4,8", help="worker counts, comma-separated (at most 8: partitions)")
    ap.add_argument("--items", type=int, default=60_000, help="backlog size, sent again for each worker count")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds measured at most per worker count")
    ap.add_argument("--out", type=Path, default=OUT, help="result JSON")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x]
    # `timeout` sends SIGTERM: exit through the finally below, which stops workers and broker
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="sw-scale-"))
    broker = LocalBroker(work / "kafka", free_port())
    results: dict = {"bench_items": args.items, "bench_cpus": os.cpu_count(), "bench_limit_s": args.limit,
                     "bench_loadavg_start": os.getloadavg()[0], "scale_out_measured": {}, "scale_out_detail": {}}
    workers: list[Worker] = []
    try:
        settings = start_broker(broker)
        records = backlog(args.items)
        results["bench_item_bytes"] = round(sum(len(v) for _, v in records) / len(records), 1)
        send_backlog(settings, records[:NOOP_ITEMS])
        results.update(run_noop(broker, work, settings, len(records), workers))
        write(args.out, results)
        for n in counts:
            detail = measure(broker, work, settings, n, records, args.limit, workers)
            results["scale_out_detail"][str(n)] = detail
            results["scale_out_measured"][str(n)] = detail["items_per_s"]
            one = results["scale_out_measured"].get("1")
            results["scale_out_ratio"] = {k: round(v / one, 3) for k, v in results["scale_out_measured"].items()
                                          if v is not None} if one else None
            write(args.out, results)  # each count's numbers survive a later timeout
    finally:
        stop_workers(workers)
        broker.stop()
    results["bench_loadavg_end"] = os.getloadavg()[0]
    results["bench_seconds"] = round(time.monotonic() - t_start, 1)
    write(args.out, results)
    print(f"scale-out: {results['scale_out_measured']} items/s, ratio {results.get('scale_out_ratio')}; "
          f"no-op {results['noop_items_per_s']:,.0f} items/s; {results['bench_cpus']} CPUs; -> {args.out}", flush=True)
    return results


def write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
