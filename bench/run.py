"""``make bench``: the pipeline under load on a broker of its own, every number next to a baseline of the same run.

Phases (one local KRaft broker, 8 partitions, realistic items from bench/items.py):

1. backlog: ``--items`` items are written to news.raw before any worker runs;
2. no-op: a Faust worker whose agent copies news.raw to ``bench.noop`` drains the backlog (baseline; run
   again after phase 4, and the pipeline's ratio is taken against the mean of the two runs);
3. pipeline, 1 worker, cooldown on, ``MAX_STORIES`` at a tenth of the backlog: drains the same backlog
   (own consumer group). Measured: items/s, Kafka records per item (every topic's and changelog's end
   offsets before and after: produced records, plus news.raw and news.processed consumed), worker CPU
   per item (/proc), the CPU share of each stage (``signalwatch_stage_cpu_seconds``: the story shard's is
   the serial fraction, Amdahl's projection for 2, 4 and 8 workers), RSS over the run (its growth after
   the state cap: the least-squares trend of the samples from twice the cap on);
4. latency: fixed offered loads into the running phase-3 worker, distinct escalation items (event times
   two hours apart, so the cooldown lets each alert out), producer send -> alert read (p50/p95/p99);
5. scale-out: 1 worker, 2 workers in one group, then 1 worker again, each under a fresh app id, settle on
   an empty news.raw (every worker ready, no assignment for 5 s), are given 50k new items and timed from the
   first send to the last item handled; the scale-out ratio is the 2 workers' rate against the mean of the
   two 1-worker rates;
6. bench/bench_tagging.py (run by ``make bench``) merges ``tagging_items_per_s``.

Writes bench/results/latest.json (other keys kept) and prints a table.

    python bench/run.py [--items N] [--loads 100,500,1000] [--load-seconds S] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
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

from kafka import KafkaConsumer  # noqa: E402
from kafka.structs import TopicPartition  # noqa: E402

from bench import items as bench_items  # noqa: E402
from streams.broker import LocalBroker, free_port  # noqa: E402
from streams.kafka_io import create_topics, missing_topics  # noqa: E402
from streams.outbox import Outbox  # noqa: E402
from streams.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "latest.json"
NOOP_TOPIC = "bench.noop"
NOOP_ITEMS = 30_000
"""Items the no-op baseline is timed over (the first of the backlog)."""
SCALE_ITEMS = 50_000
"""Items the scale-out phase gives 1, 2 and again 1 settled workers (:func:`measure`), back to back: the
1-worker drain, minutes earlier, moved with the machine's speed (a third within minutes here)."""
SCALE_LIMIT_S = 120.0

# ---------------------------------------------------------------- helpers
def end_offsets(settings: Settings, topic: str) -> int:
    return all_end_offsets(settings, [topic]).get(topic, 0)


def all_end_offsets(settings: Settings, topics: list[str] | None = None) -> dict[str, int]:
    """Summed end offset per topic (every topic on the broker when ``topics`` is None)."""
    consumer = KafkaConsumer(**settings.kafka_client_options())
    try:
        names = topics if topics is not None else sorted(consumer.topics())
        out = {}
        for topic in names:
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            out[topic] = sum(consumer.end_offsets(parts).values()) if parts else 0
        return out
    finally:
        consumer.close()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a worker's process-stage helpers: streams.processing)."""
    pids, at = [pid], 0
    while at < len(pids):
        for task in Path(f"/proc/{pids[at]}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids += [int(child) for child in (task / "children").read_text().split()]
        at += 1
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its living descendants (/proc/PID/stat)."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def box_cpu() -> tuple[float, float]:
    """CPU seconds of the whole machine so far: (busy, total) over all cores (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK"), (busy + idle + iowait) / os.sysconf("SC_CLK_TCK")


class CpuBudget:
    """Where a phase's CPU went, per item: the worker (its helpers included), the broker, and the whole
    machine (bench client and everything else included), with how busy the machine's cores were. When
    they were busy throughout, the machine's CPU per item sets the rate, and the pipeline/no-op ratio is
    at most the no-op's machine CPU per item over the pipeline's."""

    def __init__(self, worker_pid: int, broker: LocalBroker) -> None:
        self.worker_pid, self.broker_pid = worker_pid, broker.pid()
        self.worker, self.broker, self.box = cpu_seconds(worker_pid), self._broker(), box_cpu()

    def _broker(self) -> float:
        return cpu_seconds(self.broker_pid) if self.broker_pid else 0.0

    def per_item(self, items: int) -> dict:
        busy, total = box_cpu()
        box_busy, box_total = busy - self.box[0], total - self.box[1]
        return {"worker_cpu_ms_per_item": round((cpu_seconds(self.worker_pid) - self.worker) / items * 1000, 3),
                "broker_cpu_ms_per_item": round((self._broker() - self.broker) / items * 1000, 3),
                "machine_cpu_ms_per_item": round(box_busy / items * 1000, 3),
                "machine_busy_fraction": round(box_busy / box_total, 3) if box_total else None}


def rss_mb(pid: int, descendants: bool = True) -> float:
    """Resident memory of a process and (``descendants``) its living descendants, in MB (their shared pages
    counted twice)."""
    total = 0
    for p in process_tree(pid) if descendants else [pid]:
        try:
            total += next(int(line.split()[1]) for line in Path(f"/proc/{p}/status").read_text().splitlines()
                          if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def metric(port: int, *names: str) -> float:
    """The sum of the named metrics (every label set) in one fetch of the worker's /metrics: rendering it
    costs the worker CPU, so the bench's polling asks once per look."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(v) for name in names for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


class Worker:
    def __init__(self, broker: LocalBroker, home: Path, app_id: str, module: str = "streams.cli",
                 extra_env: dict | None = None) -> None:
        self.port = free_port()
        env = dict(os.environ, SIGNALWATCH_BROKER=broker.url, SIGNALWATCH_APP_ID=app_id,
                   SIGNALWATCH_WEB_PORT=str(self.port), SIGNALWATCH_HOME=str(home / app_id),
                   SIGNALWATCH_LOG_LEVEL="warning", **(extra_env or {}))
        # this checkout first, then whatever the caller had (packages installed with --target, no venv)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", module, "worker"]
        self.log = open(home / f"{app_id}-{uuid.uuid4().hex[:4]}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self) -> None:
        stop_workers([self])


def stop_workers(workers: list[Worker]) -> None:
    """SIGTERM to every worker at once, then wait for each (SIGKILL after 60 s): a group stops in the time
    of its slowest worker."""
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
        w.log.close()


def drain(done, workers: list[Worker], timeout: float, sample=None, started=None,
          poll: float = 1.0) -> tuple[float, float]:
    """Wait for ``done() -> (count, finished)``; return (seconds from the start to finish, the start's
    monotonic time). The start is the first output, or the first time ``started()`` is true."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"a worker exited with {w.proc.returncode}; see {w.log.name}")
        count, finished = done()
        now = time.monotonic()
        if first is None and (started() if started else count > 0):
            first = now
        if sample:
            sample(count)
        if finished:
            return now - (first or now), first or now
        time.sleep(poll)  # /metrics is not free for the worker: poll it gently
    raise RuntimeError(f"not drained within {timeout:.0f}s (count {done()[0]})")


def percentile(values: list[float], q: float) -> float | None:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else None


def rss_trend(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line through ``(items, MB)`` samples: MB per item, and MB at the first sample's items."""
    if len(samples) < 2:
        return 0.0, samples[0][1] if samples else 0.0
    n = len(samples)
    mean_c = sum(c for c, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    spread = sum((c - mean_c) ** 2 for c, _ in samples)
    slope = sum((c - mean_c) * (r - mean_r) for c, r in samples) / spread if spread else 0.0
    return slope, mean_r - slope * (mean_c - samples[0][0])


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
def start_broker(broker: LocalBroker) -> Settings:
    """Start ``broker`` and create every signalwatch topic (news.raw at 8 partitions) and the no-op's."""
    print(f"broker: starting in {broker.data_dir}", flush=True)
    broker.start(timeout=120)
    settings = Settings(broker=broker.url)
    create_topics(settings)
    create_topics_extra(settings)
    return settings


def backlog(n: int) -> list[tuple[bytes, bytes]]:
    """``n`` bench items as news.raw records (key, value)."""
    return [(key.encode(), orjson.dumps(item)) for key, item in bench_items.items(n)]


def send_backlog(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    """Write ``records`` to news.raw as aiokafka record batches (the stage's :class:`streams.outbox.Outbox`):
    ~1 s for 30k items, where kafka-python's one ``send`` per record took 5.7-7.8 s and a core's share while
    the scale-out phase's workers were already timed."""
    print(f"backlog: {len(records)} items -> news.raw", flush=True)
    asyncio.run(_send_batches(settings, records))


async def _send_batches(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(acks="all", max_batch_size=1024 * 1024, max_request_size=4 * 1024 * 1024,
                                **settings.aiokafka_client_options())
    await producer.start()
    try:
        outbox = Outbox(lambda: producer)
        for key, value in records:
            outbox.add(settings.topics.raw, key, value)
        await outbox.send()
    finally:
        await producer.stop()


def run_noop(broker: LocalBroker, work: Path, settings: Settings, items: int, workers: list[Worker],
             app_id: str = "bench-noop") -> dict:
    """The no-op baseline over the backlog's first ``min(items, NOOP_ITEMS)`` items, under ``app_id`` (a fresh
    one reads news.raw from its start); the worker is added to ``workers``, so the caller's cleanup stops it
    if this fails."""
    start = end_offsets(settings, NOOP_TOPIC)
    noop = Worker(broker, work, app_id, module="bench.noop_app")
    workers.append(noop)
    noop_cpu = cpu_seconds(noop.proc.pid)
    budget = CpuBudget(noop.proc.pid, broker)
    noop_items = min(items, NOOP_ITEMS)  # a rate: the first items tell it, the rest would cost minutes
    # counted from this run's start: the clock starts at the run's first output (an absolute offset would
    # start it at once, a later run's worker start-up included: 2,671 against 3,327 items/s for the first)
    secs, _ = drain(lambda: ((c := end_offsets(settings, NOOP_TOPIC) - start), c >= noop_items), [noop], 300)
    # Faust's CPU per record operation (one consumed, one produced per item), start-up included
    per_record = (cpu_seconds(noop.proc.pid) - noop_cpu) / (2 * noop_items)
    spent = budget.per_item(noop_items)
    noop.stop()
    results = {"noop_cpu_ms_per_record": round(per_record * 1000, 4),
               "noop_items_per_s": round(noop_items / secs, 1), "noop_measured_items": noop_items,
               "noop_cpu_budget": spent}
    print(f"no-op   : {results['noop_items_per_s']:>9,.0f} items/s", flush=True)
    return results


def bracketed_ratio(results: dict, after: dict) -> None:
    """The pipeline's rate against the mean of the no-op's before and after it (``after``: the second
    no-op's numbers). The machine's speed drifts by a third within minutes here; one no-op before the
    pipeline made the ratio 0.53 and 0.70 in two runs of the same tree, 6 minutes apart."""
    before = results["noop_items_per_s_before"] = results["noop_items_per_s"]
    results["noop_items_per_s_after"] = after["noop_items_per_s"]
    results["noop_items_per_s"] = round((before + after["noop_items_per_s"]) / 2, 1)
    results["pipeline_vs_noop_ratio"] = round(results["pipeline_items_per_s"] / results["noop_items_per_s"], 3)
    print(f"ratio   : {results['pipeline_vs_noop_ratio']} against the no-op's mean "
          f"({before:,.0f} before, {after['noop_items_per_s']:,.0f} after)", flush=True)


def pipeline_env(items: int) -> dict[str, str]:
    """The pipeline workers' settings in every phase: the story state capped at a tenth of the backlog, so
    most of a run shows memory with the cap reached."""
    return {"SIGNALWATCH_MAX_STORIES": str(max(100, items // 10))}


def reset_topics(settings: Settings, keep: set[str]) -> None:
    """Delete and create again every topic but ``keep``: a fresh app id must not read an earlier run's
    news.processed batches or negotiation threads (those topic names do not carry the app id)."""
    from kafka.admin import KafkaAdminClient

    client = KafkaAdminClient(**settings.kafka_client_options())
    try:
        doomed = [t for t in client.list_topics() if t not in keep and not t.startswith("__")]
        if doomed:
            client.delete_topics(doomed)
        deadline = time.monotonic() + 60
        while set(doomed) & set(client.list_topics()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics not deleted within 60 s: {sorted(set(doomed) & set(client.list_topics()))}")
            time.sleep(0.5)
    finally:
        client.close()
    deadline = time.monotonic() + 60
    while True:
        create_topics(settings)
        if not missing_topics(settings, settings.topics.all()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("topics not created again within 60 s")
        time.sleep(0.5)  # a deletion the controller has not finished: the name is still taken


def pipeline_done(workers: list[Worker], total: int, marks: dict):
    """Done when every item is handled: tagged or a duplicate (counted by the story shard after it sent the
    item's records) or dead-lettered."""
    def done():
        count = sum(handled(w) for w in workers)
        return count, count >= total
    return done


def pipeline_started(workers: list[Worker]):
    """Whether the process stage has read an item: the pipeline's clock starts there. Timed from the first
    item *handled*, a backlog looked faster than it was: the story shard's first items are handled after
    much of the backlog has been read."""
    return lambda: any(metric(w.port, "signalwatch_items_received_total") > 0 for w in workers)


LATENCY_EPOCH = 1_577_836_800  # 2020-01-01: latency items' event times, two hours apart (past the cooldown)
_latency_seq = itertools.count()


def run_latency(settings: Settings, rate: int, seconds: float, rnd: random.Random) -> dict:
    """Offer ``rate`` escalation items per second for ``seconds`` into the running worker; each item's latency
    runs from the moment it was due (its place in the schedule at ``rate``) to its alert's record timestamp
    (set by the worker's producer as it appended the alert; one clock). The items are built before the clock
    starts. The client shares the two cores with the pipeline and the broker, so it spends as little as it
    can: each 5 ms it hands the items due to the project's outbox, which appends them to record batches
    (aiokafka's C builder). One ``send`` per item cost ~0.55 ms of CPU per item (kafka-python ~1.1), most of
    what the pipeline's worker spends on one. ``client_cpu_ms_per_item`` says what it spent."""
    tag = uuid.uuid4().hex[:6]
    items = []
    for i in range(int(rate * seconds)):
        item_id = f"lat-{tag}-{rate}-{i}"
        published = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(LATENCY_EPOCH + 7200 * next(_latency_seq)))
        items.append((item_id, orjson.dumps(bench_items.escalation_item(rnd, item_id, published))))
    cpu = time.process_time()
    result = asyncio.run(_offer(settings, rate, items))
    result["client_cpu_ms_per_item"] = round((time.process_time() - cpu) * 1000 / max(len(items), 1), 3)
    return result


async def _offer(settings: Settings, rate: int, items: list[tuple[str, bytes]]) -> dict:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    options = settings.aiokafka_client_options()
    consumer = AIOKafkaConsumer(settings.topics.escalation, auto_offset_reset="latest", **options)
    producer = AIOKafkaProducer(acks="all", linger_ms=20, max_batch_size=256 * 1024,
                                max_request_size=4 * 1024 * 1024, **options)
    await consumer.start()
    await producer.start()
    sent: dict[str, float] = {}
    latencies: list[float] = []
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)  # from the end as of now

        async def read() -> None:
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for r in records:
                        for item_id in orjson.loads(r.value).get("item_ids", []):
                            if (at := sent.pop(item_id, None)) is not None:
                                latencies.append(r.timestamp / 1000 - at)

        reader = asyncio.create_task(read())
        outbox = Outbox(lambda: producer)
        start, wall = time.monotonic(), time.time()
        done = 0
        while done < len(items):
            due = min(len(items), int((time.monotonic() - start) * rate) + 1)
            for i in range(done, due):
                item_id, value = items[i]
                sent[item_id] = wall + i / rate  # when it was due: the client's own delay counts too
                outbox.add(settings.topics.raw, item_id.encode(), value)
            done = due
            await outbox.send()
            await asyncio.sleep(max(0.005, start + done / rate - time.monotonic()))
        achieved = len(items) / (time.monotonic() - start)
        deadline = time.monotonic() + 30 + len(items) / 50  # over capacity the queue drains slowly: wait for it
        while sent and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        reader.cancel()
    finally:
        await producer.stop()
        await consumer.stop()
    return {"offered": rate, "achieved": round(achieved, 1), "items": len(items), "alerts": len(latencies),
            "missing": len(sent), "p50": percentile(latencies, 0.50), "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99)}


def amdahl(serial: float, n: int) -> float:
    return 1.0 / (serial + (1.0 - serial) / n)


def settled(workers: list[Worker], quiet: float = 5.0, timeout: float = 120.0, ready=None) -> tuple[float, float]:
    """Wait until every worker is ``ready`` (by default: it handles items) and none got an assignment for
    ``quiet`` seconds; return (monotonic time, items handled by then)."""
    ready = ready or (lambda w: metric(w.port, "signalwatch_items_received_total") > 0)
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        state = [metric(w.port, "signalwatch_rebalances_total") for w in workers]
        busy = all(ready(w) for w in workers)
        if state != last:
            last, since = state, time.monotonic()
        elif busy and time.monotonic() - since >= quiet:
            break
        time.sleep(0.5)
    return time.monotonic(), sum(handled(w) for w in workers)


def healthy(w: Worker) -> bool:
    """Whether the worker says it processes (``GET /healthz``: partitions assigned, table state recovered)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/healthz", timeout=5) as r:
            return bool(json.loads(r.read()).get("ready"))
    except OSError:  # 503 while not ready, or not listening yet
        return False


def handled(w: Worker) -> float:
    return metric(w.port, "signalwatch_items_tagged_total", "signalwatch_items_duplicate_total",
                  "signalwatch_items_invalid_total")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--loads", default="100,500,1000")
    ap.add_argument("--load-seconds", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="10k items, short loads (a smoke run)")
    ap.add_argument("--profile", action="store_true",
                    help="sample the 1-worker pipeline with py-spy; writes bench/results/profile.txt")
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.items, args.load_seconds = 10_000, 3.0
    loads = [int(x) for x in args.loads.split(",") if x]
    # `timeout` (make bench) sends SIGTERM: exit through the finally below, which stops workers and broker
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="sw-bench-"))
    broker = LocalBroker(work / "kafka", free_port())
    results: dict = {"bench_items": args.items, "bench_cpus": os.cpu_count(),
                     "bench_loadavg_start": os.getloadavg()[0]}
    workers: list[Worker] = []
    try:
        settings = start_broker(broker)
        records = backlog(args.items)
        send_backlog(settings, records)
        results["bench_item_bytes"] = round(sum(len(v) for _, v in records) / args.items, 1)
        del records
        write(results, fresh=True)

        results.update(run_noop(broker, work, settings, args.items, workers))
        write(results)  # each phase's numbers survive a later timeout

        # the pipeline, one worker, cooldown on; state capped at a tenth of the backlog, so most of the run
        # shows memory with the cap reached
        env = pipeline_env(args.items)
        cap = int(env["SIGNALWATCH_MAX_STORIES"])
        before = all_end_offsets(settings)
        one = Worker(broker, work, "bench-p1", extra_env=env)
        workers.append(one)
        spies: list[subprocess.Popen] = []
        started = pipeline_started([one])

        def started_and_sampled() -> bool:  # the profile covers the drain, not the worker's start-up
            if not started():
                return False
            if args.profile and not spies:
                spies.append(profile(one, work / "profile.raw"))
            return True
        # (items in, MB of the worker with its helpers, MB of its own process: its growth told from its helpers')
        rss: list[tuple[float, float, float]] = []
        time.sleep(0.5)
        base_rss = rss_mb(one.proc.pid)

        def sample(count: float) -> None:
            if not rss or count - rss[-1][0] >= args.items / 20:
                rss.append((count, rss_mb(one.proc.pid), rss_mb(one.proc.pid, descendants=False)))

        marks: dict = {}
        cpu_start = cpu_seconds(one.proc.pid)
        budget = CpuBudget(one.proc.pid, broker)
        secs, first = drain(pipeline_done([one], args.items, marks), [one], 480, sample, started_and_sampled)
        cpu = cpu_seconds(one.proc.pid) - cpu_start
        results["pipeline_cpu_budget"] = budget.per_item(args.items)
        noop_machine = results["noop_cpu_budget"]["machine_cpu_ms_per_item"]
        results["ratio_ceiling_by_machine_cpu"] = round(
            noop_machine / results["pipeline_cpu_budget"]["machine_cpu_ms_per_item"], 3)
        after = all_end_offsets(settings)
        rss.append((args.items, rss_mb(one.proc.pid), rss_mb(one.proc.pid, descendants=False)))
        for spy in spies:
            spy.wait()
            summarise_profile(work / "profile.raw", RESULTS.parent / "profile.txt")
        results["pipeline_items_per_s"] = round(args.items / secs, 1)
        results["pipeline_vs_noop_ratio"] = round(results["pipeline_items_per_s"] / results["noop_items_per_s"], 3)
        results["pipeline_duplicates"] = metric(one.port, "signalwatch_items_duplicate_total")
        produced = {t: after.get(t, 0) - before.get(t, 0) for t in after if t != settings.topics.raw
                    and after.get(t, 0) != before.get(t, 0) and t != NOOP_TOPIC}
        consumed = args.items + produced.get(settings.topics.processed, 0)  # news.raw and news.processed
        results["records_per_item"] = round((sum(produced.values()) + consumed) / args.items, 3)
        results["records_detail"] = {"consumed": consumed, "produced": produced}
        results["worker_cpu_ms_per_item"] = round(cpu / args.items * 1000, 3)
        stages = {s: metric(one.port, f'signalwatch_stage_cpu_seconds_total{{stage="{s}"}}')
                  for s in ("process", "decide", "talks")}
        # the story shard's serial work: its decisions, the tracker's, and building the record batches it sends
        # (streams.outbox), each measured in its own thread CPU
        serial = (stages["decide"] + stages["talks"]) / cpu if cpu else None
        # the negotiation tracker (in the shard's stage): its budget is 5% of the worker's CPU per item
        results["talks_cpu_share"] = round(stages["talks"] / cpu, 4) if cpu else None
        results["stage_cpu_share"] = {s: round(v / cpu, 3) for s, v in stages.items()} if cpu else None
        results["stage_cpu_share"]["faust_and_other"] = round(1 - sum(stages.values()) / cpu, 3) if cpu else None
        results["serial_fraction"] = round(serial, 3) if serial is not None else None
        results["scale_out_projected"] = {str(n): round(amdahl(serial, n), 2) for n in (2, 4, 8)} \
            if serial is not None else None
        # what the one story shard could decide with its thread to itself: the cluster's ceiling in items/s,
        # however many workers share the process stage
        shard_s = stages["decide"] + stages["talks"]
        results["story_shard_ceiling_items_per_s"] = round(args.items / shard_s) if shard_s else None
        print(f"pipeline: {results['pipeline_items_per_s']:>9,.0f} items/s  ratio {results['pipeline_vs_noop_ratio']}"
              f"  records/item {results['records_per_item']}  cpu {results['worker_cpu_ms_per_item']} ms/item"
              f"  serial {results['serial_fraction']}  projected {results['scale_out_projected']}"
              f"  shard ceiling {results['story_shard_ceiling_items_per_s']} items/s", flush=True)

        # memory: after the state cap is reached (twice the cap in), RSS must stay flat. The trend of every sample
        # from there on, not the last one against the first: the RSS swings by ~15 MB with the batches in flight
        # (up to ~1 MB each), and a single sample made the figure 1.3-13% on the same tree
        after = [(c, r) for c, r, _ in rss if c >= 2 * cap] or [tuple(rss[-1][:2])]
        c2 = after[0][0]
        per_item, level = rss_trend(after)
        results["rss_mb"] = {"start": round(base_rss, 1), "at_twice_cap": round(after[0][1], 1),
                             "end": round(rss[-1][1], 1)}
        results["rss_samples"] = [[int(c), round(r, 1), round(m, 1)] for c, r, m in rss]
        results["rss_samples_note"] = "[items in, MB of the worker with its helpers, MB of the worker's own process]"
        results["rss_state_cap_stories"] = cap
        results["rss_growth_pct_per_100k"] = round(per_item * 100_000 / level * 100, 2) if level else None
        results["rss_growth_note"] = (f"SIGNALWATCH_MAX_STORIES={cap}: least-squares trend of the {len(after)} RSS "
                                      f"samples from item {c2:.0f} (twice the cap) to {args.items}, "
                                      f"{level:.1f} MB at item {c2:.0f} on that line, per 100k items")
        write(results)

        # latency at fixed offered loads, into the running worker, once it has drained the backlog
        lat: dict = {}
        for rate in loads:
            drained = wait_drained(one, timeout=300)
            r = run_latency(settings, rate, args.load_seconds, random.Random(rate))
            r["waited_for_drain_s"] = drained
            lat[str(rate)] = r
            shown = " ".join(f"{q} {r[q]:.3f}s" if r[q] is not None else f"{q} -" for q in ("p50", "p95", "p99"))
            print(f"latency @{rate:>5}/s: achieved {r['achieved']:.0f}/s {shown} ({r['alerts']} alerts, "
                  f"{r['missing']} missing; client {r['client_cpu_ms_per_item']} ms CPU per item)", flush=True)
        for q in ("p50", "p95", "p99"):
            results[f"latency_{q}_s"] = {k: _num(v[q], 4) for k, v in lat.items()}
        results["latency_detail"] = lat
        write(results)
        one.stop()

        # the no-op again, on the same backlog under a fresh app id: the ratio is taken against both runs
        bracketed_ratio(results, run_noop(broker, work, settings, args.items, workers, app_id="bench-noop-after"))
        write(results)

        # scale-out: one worker, two in one group over 8 partitions, one again, each measured the same way
        # (settled on empty topics, then given the same SCALE_ITEMS items); two against the mean of the ones, as
        # for the no-op: in six alternated runs two workers read 0.92-1.07x the run before, 1.05-1.08x the two
        # around them
        if not args.skip_scale:
            scale_items = backlog(SCALE_ITEMS)
            detail = {name: measure(broker, work, settings, n, scale_items, SCALE_LIMIT_S, workers)
                      for name, n in (("1", 1), ("2", 2), ("1 after", 1))}
            results["scale_out_detail"] = detail
            rate1 = (detail["1"]["items_per_s"] + detail["1 after"]["items_per_s"]) / 2
            rate2 = detail["2"]["items_per_s"]
            results["pipeline_1_worker_settled_items_per_s"] = round(rate1, 1)
            results["pipeline_2_workers_items_per_s"] = round(rate2, 1)
            results["scale_out_ratio"] = round(rate2 / rate1, 3)
            results["scale_out_ratio_vs_drain"] = round(rate2 / results["pipeline_items_per_s"], 3)
            print(f"2 workers: {rate2:>8,.0f} items/s, 1 worker {rate1:,.0f} the same way (before and after): "
                  f"scale-out {results['scale_out_ratio']} ({results['scale_out_ratio_vs_drain']} against the "
                  f"1-worker drain)", flush=True)
    finally:
        stop_workers(workers)
        broker.stop()
    results["bench_loadavg_end"] = os.getloadavg()[0]
    results["bench_seconds"] = round(time.monotonic() - t_start, 1)
    write(results)
    return results


SHORT_S = 15.0
"""A measurement over fewer seconds than this is flagged: the backlog is too small for a steady rate."""


def measure(broker: LocalBroker, work: Path, settings: Settings, n: int, records: list[tuple[bytes, bytes]],
            limit: float, workers: list[Worker]) -> dict:
    """N settled workers under a fresh app id: their rate over ``records`` from the first sent to the drain
    (``make bench``'s scale-out phase and ``make bench-scale``). Settled on the empty topics, so that no
    rebalance falls inside the measurement. Timed from a settled moment on a backlog instead, two workers'
    process stages had read all of a 40k backlog while their rebalance settled and the story shard had
    decided 23k of it, so the window measured the shard catching up (5,439 items/s on a 2-core machine whose
    CPU allows ~3,050 at the pipeline's 0.66 ms per item)."""
    reset_topics(settings, keep=set())
    app_id = f"bench-scale{n}-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    group = [Worker(broker, work, app_id, extra_env=pipeline_env(len(records))) for _ in range(n)]
    workers += group
    t_settled, _ = settled(group, ready=healthy)
    print(f"{n} worker(s): settled after {t_settled - started:.1f}s", flush=True)
    t0, box0 = time.monotonic(), box_cpu()
    send_backlog(settings, records)
    sent_s = time.monotonic() - t0
    marks = {"count": 0.0, "at": t0}

    def done() -> tuple[float, bool]:
        count, now = sum(handled(w) for w in group), time.monotonic()
        if count != marks["count"]:
            marks.update(count=count, at=now)  # the shard counts in steps: the rate ends at the last one
        return count, count >= len(records) or now - t0 >= limit

    drain(done, group, limit + 60, poll=0.25)  # the end is the last step the shard counted: seen sooner
    ended, loadavg, box1 = time.monotonic(), os.getloadavg()[0], box_cpu()
    stop_workers(group)
    count = marks["count"]
    seconds = (marks["at"] if count >= len(records) else ended) - t0  # not drained: the whole limit
    rate = count / seconds if seconds > 0 else None
    detail = {"items_per_s": None if rate is None else round(rate, 1), "measured_items": int(count),
              "measured_s": round(seconds, 1), "send_s": round(sent_s, 1), "settle_s": round(t_settled - started, 1),
              "drained": count >= len(records), "loadavg_1m": round(loadavg, 2),
              # the whole machine (workers, helpers, broker, the sending client): more CPU per item with more
              # workers is their overhead; cores left idle are their waiting
              "machine_cpu_ms_per_item": round((box1[0] - box0[0]) / max(count, 1) * 1000, 3),
              "machine_busy_fraction": round((box1[0] - box0[0]) / max(1e-9, box1[1] - box0[1]), 3)}
    if not detail["drained"]:
        detail["warning"] = ("not drained within --limit: the rate is understated (the story shard counts items "
                             "late under a backlog); lower --items or raise --limit")
    elif seconds < SHORT_S:
        detail["warning"] = f"measured over {seconds:.1f}s only: raise --items for a steadier rate"
    shown = "-" if rate is None else f"{rate:,.0f}"
    print(f"{n} worker(s): {shown} items/s ({count:.0f} items in {seconds:.1f}s, sent in {sent_s:.1f}s)"
          f"{'' if detail['drained'] else ' NOT DRAINED'}", flush=True)
    return detail


def create_topics_extra(settings: Settings) -> None:
    from kafka.admin import NewTopic

    from streams.kafka_io import admin

    client = admin(settings)
    try:
        if NOOP_TOPIC not in set(client.list_topics()):
            client.create_topics([NewTopic(NOOP_TOPIC, settings.partitions, 1)])
    finally:
        client.close()


OBSOLETE = ("noop_items_per_s_before", "noop_items_per_s_after", "pipeline_tag_stage_items_per_s", "rss_start_mb",
            "rss_end_mb", "rss_growth_mb", "rss_growth_measured_items",
            "latency_detail", "latency_p50_s", "latency_p95_s", "latency_p99_s", "pipeline_2_workers_items_per_s",
            "scale_out_ratio", "scale_out_ratio_vs_drain", "pipeline_1_worker_settled_items_per_s", "scale_out_detail")
"""Keys of earlier bench versions or of a phase this run has not reached: dropped when a run starts."""


def write(numbers: dict, fresh: bool = False) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    except ValueError:
        current = {}
    if fresh:
        for key in OBSOLETE:
            current.pop(key, None)
    current.update(numbers)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)


if __name__ == "__main__":
    main()
