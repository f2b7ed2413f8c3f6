"""Print bench/results/latest.json as a table (targets from issue 7 beside the numbers)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def budget(b: dict | None) -> str | None:
    if not b:
        return None
    return (f"{b['worker_cpu_ms_per_item']} / {b['broker_cpu_ms_per_item']} / {b['machine_cpu_ms_per_item']}, "
            f"{b['machine_busy_fraction']:.0%}")


def main() -> None:
    r = json.loads(RESULTS.read_text())
    rss = r.get("rss_mb") or {}
    rows = [
        ("no-op Faust agent (items/s), mean of the runs before and after the pipeline", r.get("noop_items_per_s"),
         "baseline"),
        ("no-op before / after the pipeline (items/s)",
         f"{r.get('noop_items_per_s_before')} / {r.get('noop_items_per_s_after')}", ""),
        ("full pipeline, 1 worker, cooldown on (items/s)", r.get("pipeline_items_per_s"), ""),
        ("pipeline / no-op", r.get("pipeline_vs_noop_ratio"), ">= 0.8"),
        ("Kafka records per item (changelogs included)", r.get("records_per_item"), "<= 3"),
        ("worker CPU per item (ms)", r.get("worker_cpu_ms_per_item"), ""),
        ("CPU per item, no-op: worker / broker / machine (ms), cores busy",
         budget(r.get("noop_cpu_budget")), ""),
        ("CPU per item, pipeline: worker / broker / machine (ms), cores busy",
         budget(r.get("pipeline_cpu_budget")), ""),
        ("ratio ceiling on this machine's CPU (no-op / pipeline machine CPU per item)",
         r.get("ratio_ceiling_by_machine_cpu"), ""),
        ("stage CPU shares", r.get("stage_cpu_share"), ""),
        ("serial fraction (story shard's CPU share)", r.get("serial_fraction"), "<= 0.15"),
        ("scale-out projected (Amdahl) 2 / 4 / 8", r.get("scale_out_projected"), "2: >= 1.7"),
        ("story shard's ceiling: items/s its thread decides (decide + talks CPU per item)",
         r.get("story_shard_ceiling_items_per_s"), ""),
        ("pipeline, 2 workers settled on empty topics, then 50k items (items/s)", r.get("pipeline_2_workers_items_per_s"), ""),
        ("scale-out 2 vs 1 worker, measured the same way back to back", r.get("scale_out_ratio"), ">= 1.0"),
        ("2 workers vs the 1-worker drain", r.get("scale_out_ratio_vs_drain"), ""),
        *[(f"latency p50/p95/p99 @ {k}/s (s)",
           f"{r['latency_p50_s'][k]} / {r['latency_p95_s'][k]} / {v}", "p99 < 1 @ 1000/s")
          for k, v in (r.get("latency_p99_s") or {}).items()],
        (f"tagging core, ~{r.get('tagging_item_bytes', '?')} B items (items/s/core)", r.get("tagging_items_per_s"),
         ">= 10000"),
        ("  ... orjson parse + dump of the same items (items/s)", r.get("orjson_items_per_s"), ""),
        ("worker RSS start -> at twice the cap -> end (MB)",
         f"{rss.get('start')} -> {rss.get('at_twice_cap')} -> {rss.get('end')}", ""),
        ("RSS growth after the state cap (% per 100k items)", r.get("rss_growth_pct_per_100k"), "< 5"),
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
