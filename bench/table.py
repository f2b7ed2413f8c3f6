"""Print bench/results/latest.json as a table (targets from issue 7 beside the numbers)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def main() -> None:
    r = json.loads(RESULTS.read_text())
    rows = [
        ("no-op Faust agent (items/s)", r.get("noop_items_per_s"), "baseline"),
        ("full pipeline, 1 worker, all stages drained (items/s)", r.get("pipeline_items_per_s"), ""),
        ("  ... up to the tag stage only (items/s)", r.get("pipeline_tag_stage_items_per_s"), ""),
        ("pipeline / no-op", r.get("pipeline_vs_noop_ratio"), ">= 0.8"),
        ("pipeline, 2 workers (items/s)", r.get("pipeline_2_workers_items_per_s"), ""),
        ("scale-out 2 vs 1 worker", r.get("scale_out_ratio"), ">= 1.7"),
        *[(f"latency p50/p95/p99 @ {k}/s (s)",
           f"{r['latency_p50_s'][k]} / {r['latency_p95_s'][k]} / {v}", "p99 < 1 @ 1000/s")
          for k, v in (r.get("latency_p99_s") or {}).items()],
        (f"tagging core, ~{r.get('tagging_item_bytes', '?')} B items (items/s/core)", r.get("tagging_items_per_s"),
         ">= 10000"),
        ("  ... orjson parse + dump of the same items (items/s)", r.get("orjson_items_per_s"), ""),
        ("worker RSS start -> end (MB)", f"{r.get('rss_start_mb')} -> {r.get('rss_end_mb')}", ""),
        ("RSS growth per 1M items, state cap reached (MB)", r.get("rss_growth_mb"), "flat"),
    ]
    width = max(len(a) for a, _, _ in rows)
    print(f"\n{'metric':<{width}}  {'value':>24}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value!s:>24}  {target}")
    print(f"\n{r.get('bench_items')} items of ~{r.get('bench_item_bytes')} B, {r.get('bench_cpus')} CPUs, "
          f"load average {r.get('bench_loadavg_start')} -> {r.get('bench_loadavg_end')} (shared machine: "
          f"ratios are the comparable numbers); {r.get('rss_growth_note', '')}")


if __name__ == "__main__":
    main()
