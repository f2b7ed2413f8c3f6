"""``make bench``: the pipeline under load on a broker of its own, every number next to a baseline of the same run.

Phases (one local KRaft broker, 8 partitions, items from our own synthetic generator, ~1 KB each):

1. backlog: ``--items`` items are written to news.raw before any worker runs;
2. no-op: a Faust worker whose agent copies news.raw to ``bench.noop`` drains the backlog (baseline);
3. pipeline, 1 worker: the real worker drains the same backlog (own consumer group); RSS sampled;
4. pipeline, 2 workers in one group drain it again (scale-out ratio vs phase 3);
5. latency: fixed offered loads into the running phase-3 worker, escalation items with the alert
   cooldown off, producer send -> alert read by a consumer (p50/p95/p99); each load is time-bounded;
6. bench/bench_tagging.py (the tagging engineer's) merges ``tagging_items_per_s``.

Throughput is measured from the first output to the moment the whole pipeline has drained: every item
through the tag stage and every stage after it (trend windows, cooldown) at consumer lag 0 (worker start-up
excluded). ``pipeline_tag_stage_items_per_s`` is the same run up to the tag stage only (what this bench
reported as pipeline throughput before 2026-11-24's second session).
Writes bench/results/latest.json (other keys kept) and prints a table.

    python bench/run.py [--items N] [--loads 200,1000,2000] [--load-seconds S] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.structs import TopicPartition  # noqa: E402

from streams.broker import LocalBroker, free_port  # noqa: E402
from streams.kafka_io import create_topics  # noqa: E402
from streams.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "latest.json"
NOOP_TOPIC = "bench.noop"

# ---------------------------------------------------------------- synthetic items (our own wording)
_ACTORS = ["Russian forces", "Ukrainian troops", "The Kremlin", "Kyiv", "NATO officials", "The defence ministry",
           "Regional governor", "EU foreign ministers", "Turkish mediators", "A Pentagon spokesperson",
           "Zelensky", "Putin", "Local authorities", "The general staff", "Volunteers"]
_VERBS = ["reported", "denied", "confirmed", "described", "condemned", "welcomed", "announced", "warned about"]
_EVENTS = ["a missile strike on {p}", "drone attacks on the power grid near {p}", "heavy shelling of {p}",
           "a ground offensive towards {p}", "new military aid worth {n} million euros",
           "a proposal for a ceasefire along the front near {p}", "peace talks planned in {c}",
           "a prisoner exchange of {n} soldiers", "a humanitarian corridor out of {p}",
           "sanctions on {n} companies", "repairs to {n} schools in {p}", "a grain shipment from {p}",
           "a cyber attack on banks in {c}", "partial mobilisation of {n} reservists",
           "a festival of folk music in {p}", "road works on the highway to {p}"]
_PLACES = ["Kharkiv", "Odesa", "Zaporizhzhia", "Kherson", "Dnipro", "Sumy", "Pokrovsk", "Belgorod", "Kyiv", "Lviv",
           "Mykolaiv", "Chernihiv", "Kramatorsk", "Poltava", "Vinnytsia", "Izium", "Bakhmut", "Avdiivka"]
_CITIES = ["Istanbul", "Riyadh", "Geneva", "Doha", "Ankara", "Vienna", "Abu Dhabi", "Helsinki"]
_CLOSERS = ["The claim could not be independently verified.", "Officials promised more details on {d}.",
            "Residents in {p} were told to stay near shelters.", "Prices of bread in {p} rose by {n} percent.",
            "The statement came after a meeting that lasted {n} hours.", "Analysts in {c} expect a reply soon."]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend"]


def _fill(rnd: random.Random, template: str) -> str:
    return template.format(p=rnd.choice(_PLACES), c=rnd.choice(_CITIES), n=rnd.randrange(2, 5000),
                           d=rnd.choice(_DAYS))


def make_item(rnd: random.Random, item_id: str, escalation: bool = False) -> dict:
    """One ~1 KB news item: distinct sentences (numbers, places) so stories rarely near-duplicate."""
    sentences: list[str] = []
    if escalation:
        sentences.append(f"Russian forces launched a missile strike on {rnd.choice(_PLACES)} overnight, "
                         f"hitting {rnd.randrange(2, 90)} buildings.")
    while sum(len(s) + 1 for s in sentences) < 900:
        if rnd.random() < 0.6:
            sentences.append(f"{rnd.choice(_ACTORS)} {rnd.choice(_VERBS)} {_fill(rnd, rnd.choice(_EVENTS))} "
                             f"on {rnd.choice(_DAYS)}, {rnd.randrange(1, 28)} November.")
        else:
            sentences.append(_fill(rnd, rnd.choice(_CLOSERS)))
    title = f"{rnd.choice(_ACTORS)} {rnd.choice(_VERBS)} {_fill(rnd, rnd.choice(_EVENTS))}"
    return {"id": item_id, "title": title, "text": " ".join(sentences), "source": f"wire-{rnd.randrange(40)}",
            "url": f"https://news.example.org/{item_id}", "published_at": "2026-11-24T10:00:00Z",
            "language": "en"}


# ---------------------------------------------------------------- helpers
def _producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(acks="all", linger_ms=5, batch_size=256 * 1024, max_request_size=4 * 1024 * 1024,
                         **settings.kafka_client_options())


def end_offsets(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(**settings.kafka_client_options())
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


class Worker:
    def __init__(self, broker: LocalBroker, home: Path, app_id: str, module: str = "streams.cli",
                 extra_env: dict | None = None) -> None:
        self.port = free_port()
        env = dict(os.environ, SIGNALWATCH_BROKER=broker.url, SIGNALWATCH_APP_ID=app_id,
                   SIGNALWATCH_WEB_PORT=str(self.port), SIGNALWATCH_HOME=str(home / app_id),
                   SIGNALWATCH_LOG_LEVEL="warning", PYTHONPATH=str(ROOT), **(extra_env or {}))
        cmd = [sys.executable, "-m", module, "worker"]
        self.log = open(home / f"{app_id}-{uuid.uuid4().hex[:4]}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def drain(done, workers: list[Worker], timeout: float, sample=None) -> tuple[float, float]:
    """Wait for ``done() -> (count, finished)``; return (seconds from first output to finish, first output's
    monotonic time)."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"a worker exited with {w.proc.returncode}; see {w.log.name}")
        count, finished = done()
        now = time.monotonic()
        if count > 0 and first is None:
            first = now
        if sample:
            sample(count)
        if finished:
            return now - (first or now), first or now
        time.sleep(1.0)  # /metrics is not free for the worker: poll it gently
    raise RuntimeError(f"not drained within {timeout:.0f}s (count {done()[0]})")


def percentile(values: list[float], q: float) -> float | None:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else None


def _num(value: float | None, digits: int) -> float | None:
    """Rounded, or None (JSON null) when there is no value: JSON has no NaN."""
    return None if value is None or math.isnan(value) else round(value, digits)


def wait_drained(worker: Worker, timeout: float) -> float | None:
    """Seconds until the worker's summed consumer lag (all stages) reads 0 twice in a row; None on timeout."""
    start = time.monotonic()
    zeros = 0
    while time.monotonic() - start < timeout:
        lag = metric(worker.port, "signalwatch_consumer_lag")
        zeros = zeros + 1 if lag == 0 else 0
        if zeros >= 2:
            return round(time.monotonic() - start, 1)
        time.sleep(2.5)  # the lag gauge is refreshed every 5 s
    return None


def profile(worker: Worker, out: Path, seconds: int = 30) -> subprocess.Popen:
    """Sample ``worker`` with py-spy for ``seconds`` (raw collapsed stacks to ``out``)."""
    return subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(worker.proc.pid),
                             "-d", str(seconds), "-r", "100", "-f", "raw", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(raw: Path, out: Path, top: int = 40) -> None:
    """Inclusive share of samples per function (the hot path), from py-spy's collapsed stacks."""
    if not raw.exists():
        return
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        for frame in {f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].split(":")[0] for f in stack.split(";")}:
            inclusive[frame] = inclusive.get(frame, 0) + int(n)
    lines = [f"{n / total * 100:5.1f}%  {name}" for name, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]]
    out.write_text(f"py-spy, {total} samples, inclusive share per function\n" + "\n".join(lines) + "\n")
    print(f"profile: {out}", flush=True)


# ---------------------------------------------------------------- phases
def pipeline_done(workers: list[Worker], total: int, tagged_at: dict):
    """Done when every item is handled by the tag stage (tagged, duplicate or invalid; the time goes to
    ``tagged_at["t"]``) and every stage after it has drained: the summed consumer lag reads 0. The lag
    gauge refreshes every 5 s, so the end is seen up to 5 s late."""
    def done():
        handled = sum(metric(w.port, "signalwatch_items_tagged_total") + metric(w.port, "signalwatch_items_duplicate_total")
                      + metric(w.port, "signalwatch_items_invalid_total") for w in workers)
        if handled < total:
            return handled, False
        tagged_at.setdefault("t", time.monotonic())
        return handled, sum(metric(w.port, "signalwatch_consumer_lag") for w in workers) == 0
    return done


def run_latency(settings: Settings, rate: int, seconds: float, rnd: random.Random) -> dict:
    consumer = KafkaConsumer(**settings.kafka_client_options())
    parts = [TopicPartition(settings.topics.escalation, p)
             for p in sorted(consumer.partitions_for_topic(settings.topics.escalation))]
    consumer.assign(parts)
    consumer.seek_to_end()
    for tp in parts:
        consumer.position(tp)
    producer = _producer(settings)
    tag = uuid.uuid4().hex[:6]
    sent: dict[str, float] = {}
    n = int(rate * seconds)
    start = time.monotonic()
    latencies: list[float] = []

    def read(timeout_ms: int) -> None:
        for records in consumer.poll(timeout_ms=timeout_ms).values():
            now = time.monotonic()
            for r in records:
                for item_id in orjson.loads(r.value).get("item_ids", []):
                    if item_id in sent:
                        latencies.append(now - sent.pop(item_id))

    for i in range(n):
        due = start + i / rate
        while (delay := due - time.monotonic()) > 0.002:
            read(int(min(delay, 0.05) * 1000))
        item_id = f"lat-{tag}-{rate}-{i}"
        item = make_item(rnd, item_id, escalation=True)
        producer.send(settings.topics.raw, key=item_id.encode(), value=orjson.dumps(item))
        if i % 50 == 0:
            producer.flush()
        sent[item_id] = time.monotonic()
    producer.flush()
    achieved = n / (time.monotonic() - start)
    deadline = time.monotonic() + 30 + n / 50  # over capacity the queue drains at ~200 items/s: wait for it
    while sent and time.monotonic() < deadline:
        read(200)
    producer.close()
    consumer.close()
    return {"offered": rate, "achieved": round(achieved, 1), "items": n, "alerts": len(latencies),
            "missing": len(sent), "p50": percentile(latencies, 0.50), "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--loads", default="200,1000,2000")
    ap.add_argument("--load-seconds", type=float, default=8.0)
    ap.add_argument("--quick", action="store_true", help="5k items, short loads (a smoke run)")
    ap.add_argument("--profile", action="store_true",
                    help="sample the 1-worker pipeline with py-spy; writes bench/results/profile.txt")
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.items, args.load_seconds = 5000, 3.0
    loads = [int(x) for x in args.loads.split(",") if x]
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="sw-bench-"))
    broker = LocalBroker(work / "kafka", free_port())
    results: dict = {"bench_items": args.items, "bench_cpus": os.cpu_count(),
                     "bench_loadavg_start": os.getloadavg()[0]}
    workers: list[Worker] = []
    try:
        print(f"broker: starting in {work}", flush=True)
        broker.start(timeout=120)
        settings = Settings(broker=broker.url)
        create_topics(settings)
        create_topics_extra(settings)

        rnd = random.Random(11)
        print(f"backlog: {args.items} items -> news.raw", flush=True)
        producer = _producer(settings)
        size = 0
        for i in range(args.items):
            value = orjson.dumps(make_item(rnd, f"b-{i}"))
            size += len(value)
            producer.send(settings.topics.raw, key=f"b-{i}".encode(), value=value)
        producer.flush()
        producer.close()
        results["bench_item_bytes"] = round(size / args.items, 1)

        # no-op baseline
        noop = Worker(broker, work, "bench-noop", module="bench.noop_app")
        workers.append(noop)
        secs, _ = drain(lambda: ((c := end_offsets(settings, NOOP_TOPIC)), c >= args.items), [noop], 300)
        noop.stop()
        results["noop_items_per_s"] = round(args.items / secs, 1)
        print(f"no-op   : {results['noop_items_per_s']:>9,.0f} items/s", flush=True)
        write(results)  # each phase's numbers survive a later timeout

        # the pipeline, one worker
        # state capped at a tenth of the backlog, so most of the run shows memory with the cap reached (flat)
        cap = max(100, args.items // 10)
        one = Worker(broker, work, "bench-p1", extra_env={"SIGNALWATCH_ALERT_COOLDOWN": "0",
                                                          "SIGNALWATCH_MAX_STORIES": str(cap)})
        workers.append(one)
        spy = profile(one, work / "profile.raw") if args.profile else None
        rss: list[tuple[float, float]] = []
        time.sleep(0.5)
        base_rss = rss_mb(one.proc.pid)

        def sample(count: float) -> None:
            if not rss or count - rss[-1][0] >= args.items / 10:
                rss.append((count, rss_mb(one.proc.pid)))

        marks: dict = {}
        secs, first = drain(pipeline_done([one], args.items, marks), [one], 420, sample)
        results["pipeline_tag_stage_items_per_s"] = round(args.items / max(1e-9, marks["t"] - first), 1)
        rss.append((args.items, rss_mb(one.proc.pid)))
        if spy is not None:
            spy.wait()
            summarise_profile(work / "profile.raw", RESULTS.parent / "profile.txt")
        results["pipeline_items_per_s"] = round(args.items / secs, 1)
        results["pipeline_vs_noop_ratio"] = round(results["pipeline_items_per_s"] / results["noop_items_per_s"], 3)
        results["pipeline_duplicates"] = metric(one.port, "signalwatch_items_duplicate_total")
        print(f"pipeline: {results['pipeline_items_per_s']:>9,.0f} items/s  ratio {results['pipeline_vs_noop_ratio']}",
              flush=True)
        write(results)  # each phase's numbers survive a later timeout

        # memory: state grows until SIGNALWATCH_MAX_STORIES (cap) is reached, then must stay flat: growth per
        # item from twice the cap to the end, extrapolated to 1M items. (What one story costs before the cap
        # is bench/bench_dedup.py's tracemalloc number: at this scale RSS is dominated by the warm-up.)
        c2, r2 = next(((c, r) for c, r in rss if c >= 2 * cap), rss[-1])
        per_item = (rss[-1][1] - r2) / max(1.0, args.items - c2)
        results["rss_start_mb"] = round(base_rss, 1)
        results["rss_end_mb"] = round(rss[-1][1], 1)
        results["rss_samples"] = [[int(c), round(r, 1)] for c, r in rss]
        results["rss_state_cap_stories"] = cap
        results["rss_growth_mb"] = round(per_item * 1_000_000, 1)
        results["rss_growth_measured_items"] = int(args.items - c2)
        results["rss_growth_note"] = (
            f"SIGNALWATCH_MAX_STORIES={cap}: RSS from item {c2:.0f} (twice the cap) to {args.items} "
            f"({rss[-1][1] - r2:+.1f} MB) extrapolated linearly to 1M items; 1M items do not fit the 10-minute "
            f"budget.")

        # latency at fixed offered loads, into the running worker, once every stage has drained the backlog
        # (the analytics stages run behind ingest; items offered earlier would queue behind it)
        lat: dict = {}
        for rate in loads:
            drained = wait_drained(one, timeout=300)
            print(f"drained: {drained}s before the load of {rate}/s" if drained is not None
                  else "not drained within 300 s: the latency below includes the queue", flush=True)
            r = run_latency(settings, rate, args.load_seconds, rnd)
            r["waited_for_drain_s"] = drained
            lat[str(rate)] = r
            shown = " ".join(f"{q} {r[q]:.3f}s" if r[q] is not None else f"{q} -" for q in ("p50", "p95", "p99"))
            print(f"latency @{rate:>5}/s: achieved {r['achieved']:.0f}/s {shown} ({r['alerts']} alerts, "
                  f"{r['missing']} missing)", flush=True)
        for q in ("p50", "p95", "p99"):
            results[f"latency_{q}_s"] = {k: _num(v[q], 4) for k, v in lat.items()}
        results["latency_detail"] = lat
        write(results)  # each phase's numbers survive a later timeout
        one.stop()

        # scale-out: two workers in one group over 8 partitions vs phase 3's one worker
        if not args.skip_scale:
            two = [Worker(broker, work, "bench-p2"), Worker(broker, work, "bench-p2")]
            workers += two
            secs, _ = drain(pipeline_done(two, args.items, {}), two, 420)
            for w in two:
                w.stop()
            results["pipeline_2_workers_items_per_s"] = round(args.items / secs, 1)
            results["scale_out_ratio"] = round(results["pipeline_2_workers_items_per_s"]
                                               / results["pipeline_items_per_s"], 3)
            print(f"2 workers: {results['pipeline_2_workers_items_per_s']:>8,.0f} items/s  "
                  f"scale-out {results['scale_out_ratio']}", flush=True)
    finally:
        for w in workers:
            w.stop()
        broker.stop()
    results["bench_loadavg_end"] = os.getloadavg()[0]
    results["bench_seconds"] = round(time.monotonic() - t_start, 1)
    write(results)
    return results


def create_topics_extra(settings: Settings) -> None:
    from kafka.admin import NewTopic

    from streams.kafka_io import admin

    client = admin(settings)
    try:
        if NOOP_TOPIC not in set(client.list_topics()):
            client.create_topics([NewTopic(NOOP_TOPIC, settings.partitions, 1)])
    finally:
        client.close()


def write(numbers: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    except ValueError:
        current = {}
    current.update(numbers)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)


if __name__ == "__main__":
    main()
