"""Analytics stages: dedup (before tagging), trend windows and surges, alert cooldown.

Topics and tables (every table is changelog-backed and written only while processing an event of the
partition its state belongs to, so the changelog partition matches the input partition and a restart
or rebalance restores exactly the state of the partitions a worker owns)::

    news.dedup (key: dedup shard)  ─dedup─►  news.accepted (key: item id)      table dedup_stories
    tag (streams.app) ─fan_out─► news.signals (key: trend shard)
    news.signals                   ─trend──► alerts.candidates                 table trend_windows
    alerts.candidates (key: type|category|main actor) ─notify─► alerts.*       table alert_cooldown

* dedup: every copy of a story has to meet the first one, and near-duplicates have different ids and
  urls, so all items go to one shard key (one partition). The stage only does dictionary lookups
  (ingest computes the sketch in parallel and sends it in headers); the tagger stays scaled out over all
  partitions. When a story's copies have come from ``corroboration_sources`` distinct sources, dedup
  sends a corroboration record (header ``sw-kind: corroboration``) to news.accepted under the story's id:
  it lands on the partition of the story's first copy, after it, where the tag stage raises the story's
  alerts a severity level.
* trend: every tagged item with signals is sent, with its trend keys, to one shard key (one partition),
  where the stage counts in batches: one table write per changed entry and batch (see ``trend_count``).
  Counts are idempotent: each window entry stores the input offset it has applied. One shard keeps every
  count of a key, and both kind totals (the divergence rule), in one place without a re-key per trend key
  (which cost about 6 records per item).
* notify: alerts re-keyed by their cooldown key; a cooldown decision needs the last alert of its key.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
import orjson

from streams.analytics import cooldown, trend
from streams.analytics.dedup import DedupIndex, Features, Story
from streams.metrics import Metrics
from streams.records import now_iso
from streams.settings import Settings

log = logging.getLogger("signalwatch.analytics")

DEDUP_SHARD = b"dedup"
TREND_SHARD = b"trend"
TREND_BATCH = 500
"""Most news.signals records the trend stage counts before writing its table."""
TREND_BATCH_WAIT = 0.2
"""Seconds the trend stage waits for a batch to fill (added to a trend alert's latency under light load)."""
KIND_HEADER = "sw-kind"
CORROBORATION = b"corroboration"
SWEEP_EVERY = 30.0
"""Seconds (wall clock) between two sweeps of expired state."""
MAX_IDS = 5
MAX_EVIDENCE = 3


def _wall() -> float:
    return time.time()


async def changelogs_ready(app: faust.App, *tables, sources: tuple[str, ...] = (), timeout: float = 3.0) -> None:
    """Wait until the consumer's metadata knows the tables' changelog topics.

    faust-streaming verifies on a table's first write that source and changelog topics have the same
    number of partitions, reading the consumer's metadata snapshot; a changelog topic the worker has just
    created is still listed there with 0 partitions, so the first write raises ``PartitionsMismatch`` and
    the agent crashes (which then stalls the worker's fetcher).

    The fix is upstream of this function: streams.app creates the changelog topics (same partition count,
    compacted) in the app's first-start hook, before the consumer starts, so they are in its first
    metadata and this wait returns at once. (Before that, 2-3 of the 5 workers of a run of
    tests/integration/test_analytics.py hit the fallback below; after it, none in 3 runs.) The fallback
    stays as a last resort for a worker that could not create the topics (no admin rights, broker
    briefly away): it marks the source topics as verified in Faust's private
    ``_verified_source_topics_for_partitions``, which is safe because every table here is declared with
    ``settings.partitions`` like its source topic. It logs a warning when used.
    """
    deadline = time.monotonic() + timeout
    for table in tables:
        while not app.consumer.topic_partitions(table.changelog_topic_name):
            if time.monotonic() > deadline:
                # The snapshot may never list a changelog created by this worker (seen with aiokafka 0.14).
                # Every table here is declared with ``settings.partitions`` like its source topic, so
                # Faust's check can be skipped: mark the source topics as verified.
                log.warning("changelog %s not in the metadata snapshot; skipping Faust's partition check",
                            table.changelog_topic_name)
                verified = getattr(table, "_verified_source_topics_for_partitions", None)
                if verified is not None:
                    verified.update(sources)
                break
            await asyncio.sleep(0.2)


class _Dirty:
    """Set on every rebalance: derived in-memory indexes are rebuilt from their table on the next event."""

    def __init__(self, app: faust.App) -> None:
        self.dedup = True
        self.trend = True
        self.seen = True

        async def _mark(*_args, **_kw) -> None:
            self.dedup = True
            self.trend = True
            self.seen = True

        app.on_partitions_assigned.connect(_mark)
        app.on_partitions_revoked.connect(_mark)


def install(app: faust.App, settings: Settings, metrics: Metrics, *, accepted,
            alert_topics: dict) -> dict:
    """Add the dedup, trend and notify agents.

    Returns the internal topics (``dedup``, ``candidates``), the tables, ``dirty`` (rebalance flags) and
    ``fan_out``, the coroutine the tag stage calls with each tagged item to feed the trend windows."""
    t = settings.topics
    dedup_topic = app.topic(t.dedup, value_type=bytes, key_type=bytes, partitions=settings.partitions)
    signals_topic = app.topic(t.signals, value_type=bytes, key_type=bytes, partitions=settings.partitions)
    candidates = app.topic(t.candidates, value_type=bytes, key_type=bytes, partitions=settings.partitions)
    stories = app.Table("dedup_stories", default=None, partitions=settings.partitions, key_type=bytes,
                        value_type=bytes)
    windows = app.Table("trend_windows", default=None, partitions=settings.partitions, key_type=bytes,
                        value_type=bytes)
    last_alert = app.Table("alert_cooldown", default=None, partitions=settings.partitions, key_type=bytes,
                           value_type=bytes)
    dirty = _Dirty(app)
    index = DedupIndex(settings.near_dup_threshold)
    sizes = settings.window_sizes
    state = {"dedup_sweep": _wall(), "trend_sweep": _wall()}
    mirror: dict[bytes, dict] = {}  # decoded mirror of trend_windows (entry -> {"n", "o", "ids", "ev", "f", "p", "w"})
    pending: dict[bytes, dict] = {}  # entries changed in the current batch, not yet written to the table
    latest: dict[tuple[int, str], int] = {}  # (size, key) -> latest window start seen (gauges)

    # ------------------------------------------------------------------ dedup
    def _forget_story(sid: str) -> None:
        raw = stories.get(sid.encode()) or index.records.get(sid)
        index.remove(Story.loads(sid, raw) if raw else Story(sid, 0.0))
        stories.pop(sid.encode(), None)

    @app.agent(dedup_topic)
    async def dedup(stream):
        """Drop exact and near duplicates of stories seen within the horizon; forward first copies."""
        await changelogs_ready(app, stories, sources=(t.dedup,))
        async for event in stream.events():
            message = event.message
            now = _wall()
            if dirty.dedup:
                index.rebuild(Story.loads(k.decode(), v) for k, v in stories.items() if v)
                dirty.dedup = False
            if now - state["dedup_sweep"] > SWEEP_EVERY:
                state["dedup_sweep"] = now
                for sid in index.expired(now, settings.dedup_horizon):
                    _forget_story(sid)
            try:
                features = Features.from_headers(message.headers)
            except (KeyError, ValueError, TypeError):
                log.warning("dedup: message without features at %s[%s]@%s", message.topic, message.partition,
                            message.offset)
                continue
            sid, reason = index.check(features)
            if sid is not None:
                metrics.items_duplicate.inc()
                metrics.duplicate_reasons.labels(reason).inc()
                raw = stories.get(sid.encode())
                if raw:
                    story = Story.loads(sid, raw)
                    if story.repeat(features.source) and len(story.sources) == settings.corroboration_sources:
                        await accepted.send(key=sid.encode(), headers=[(KIND_HEADER, CORROBORATION)],
                                            value=orjson.dumps({"id": sid, "sources": story.sources,
                                                                "copies": story.copies}))
                    stories[sid.encode()] = story.dumps()
                    index.update(sid, story.raw)  # the index and the table share one record
                continue
            # Forward before recording: a crash in between repeats the item (tag's seen_ids drops it).
            await accepted.send(key=features.item_id.encode(), value=message.value)
            story = Story.first(features, now)
            stories[features.item_id.encode()] = story.dumps()
            index.add(story)  # keeps story.raw, the bytes object the table holds
            for sid in index.overflow(settings.max_stories):  # a flood: forget the oldest before the horizon
                _forget_story(sid)
                metrics.state_evictions.labels("stories").inc()

    # ------------------------------------------------------------------ trend
    async def fan_out(item: dict) -> None:
        """Send a tagged item's trend keys to the trend stage: one news.signals record per item with
        signals, all on the trend shard (``TREND_SHARD``)."""
        keys = trend.trend_keys(item)
        if not keys:
            return
        evidence = (item.get("title") or next((s["text"] for s in item["signals"]), ""))[:200]
        record = {"keys": keys, "t": trend.event_time(item), "id": item["id"], "ev": evidence,
                  "actors": item.get("actors", [])[:4], "lv": item.get("lexicon_version", "")}
        await signals_topic.send(key=TREND_SHARD, value=orjson.dumps(record))

    base = sizes[0]  # only the smallest window is stored; a larger one is the sum of its base windows

    def _entry(size: int, key: str, start: int) -> bytes:
        return f"{size}|{key}|{start}".encode()

    def _put(entry: bytes, d: dict) -> None:
        """Change a trend entry in the decoded mirror, which every read uses; the table (whose changelog is
        the durable copy) is written once per entry and batch, by ``_flush``. Reads never go to the table:
        a surge check reads ~40 base windows (the lookback of every size)."""
        mirror[entry] = d
        pending[entry] = d

    def _write(partition: int, entry: bytes, value: bytes | None) -> None:
        """Write a trend entry (``None`` deletes it) to the table and to changelog partition ``partition``.
        A plain table assignment takes the partition from the stream's current event, which the batch
        loop (``take_events``) does not have."""
        windows.send_changelog(partition, entry, value)
        if value is None:
            windows.data.pop(entry, None)
        else:
            windows.data[entry] = value

    def _flush(partition: int) -> None:
        for entry, d in pending.items():
            _write(partition, entry, orjson.dumps(d))
        pending.clear()

    def _parts(size: int, key: str, start: int) -> list[dict]:
        """The stored base windows of a window (one for the base size itself)."""
        found = (mirror.get(_entry(base, key, s)) for s in range(start, start + size, base))
        return [d for d in found if d]

    def _count(size: int, key: str, start: int) -> int:
        if size == base:
            d = mirror.get(_entry(base, key, start))
            return d["n"] if d else 0
        return sum(d["n"] for d in _parts(size, key, start))

    def _baseline(size: int, key: str, start: int) -> tuple[float, float]:
        previous = [_count(size, key, start - i * size) for i in range(settings.trend_lookback, 0, -1)]
        return trend.baseline(previous)

    def _sweep(partition: int, now: float) -> None:
        keep = max(sizes) * (settings.trend_lookback + 2)
        for entry, d in list(mirror.items()):
            if d.get("p", -1) == partition and now - d.get("w", now) > keep:
                _write(partition, entry, None)
                del mirror[entry]

    @app.agent(signals_topic)
    async def trend_count(stream):
        """Count each key per event-time window, idempotently; raise surge and divergence alerts.

        Records come in batches (``TREND_BATCH`` records or ``TREND_BATCH_WAIT`` seconds) and each entry a
        batch changed is written to the table once, at its end: a changelog record per entry and batch,
        not per key and item (the writes were this stage's dominant cost). A batch is handled one input
        partition at a time (all records are on the trend shard's, bar records of an older version), so
        each write lands in the changelog partition of its input partition. take_events acks a batch's
        offsets only after it is processed, and each entry stores the last offset it has applied, so a
        replay after a crash counts nothing twice."""
        await changelogs_ready(app, windows, sources=(t.signals,))
        async for batch in stream.take_events(TREND_BATCH, within=TREND_BATCH_WAIT):
            now = _wall()
            if dirty.trend:
                mirror.clear()
                mirror.update((k, orjson.loads(v)) for k, v in windows.items() if v)
                dirty.trend = False
            by_partition: dict[int, list] = {}
            for event in batch:
                by_partition.setdefault(event.message.partition, []).append(event)
            for partition, events in by_partition.items():
                if now - state["trend_sweep"] > SWEEP_EVERY:
                    state["trend_sweep"] = now
                    _sweep(partition, now)
                for event in events:
                    message = event.message
                    try:
                        rec = orjson.loads(message.value)
                        keys = rec.get("keys") or [rec["key"]]  # (records of the first format: one "key")
                    except (ValueError, TypeError, KeyError):
                        log.warning("trend: unreadable record at %s[%s]@%s", message.topic, message.partition,
                                    message.offset)
                        continue
                    for key in keys:
                        await _count_one(key, rec["t"], rec, message, now)
                _flush(partition)

    async def _count_one(key: str, at: float, rec: dict, message, now: float) -> None:
        """Count ``key`` once in its base window (unless this input offset was applied already), then check
        every window size that holds it for a surge. Changes go to the mirror (``_put``); the table is
        written at the end of the batch (``_flush``)."""
        start = trend.window_start(at, base)
        entry = _entry(base, key, start)
        d = mirror.get(entry) or {"n": 0, "o": -1, "ids": [], "ev": [], "f": False}
        if d["o"] >= message.offset:  # already applied before a restart
            return
        d["n"] += 1
        d["o"] = message.offset
        d["p"] = message.partition
        d["w"] = now
        if len(d["ids"]) < MAX_IDS:
            d["ids"].append(rec["id"])
        if rec["ev"] and rec["ev"] not in d["ev"] and len(d["ev"]) < MAX_EVIDENCE:
            d["ev"].append(rec["ev"])
        _put(entry, d)  # before the sums below read it
        kind, _, category = key.partition("/")
        counted = []  # (size, window start, count, item ids) per size
        for size in sizes:
            s = trend.window_start(at, size)
            parts = [d] if size == base else _parts(size, key, s)
            n = sum(part["n"] for part in parts)
            ids = [i for part in parts for i in part["ids"]][:MAX_IDS]
            counted.append((size, s, n, ids))
            if s >= latest.get((size, key), s):
                latest[(size, key)] = s
            metrics.trend_window_count.labels(str(size), key).set(n)
            if kind == "actor" or category == trend.KIND_TOTAL:
                continue
            flag = _entry(size, key, s)  # larger windows: a flag entry, written once, marks a sent surge
            if d["f"] if size == base else flag in mirror:
                continue
            mean, std = _baseline(size, key, s)
            if n >= trend.threshold(mean, std, settings.trend_min_count, settings.trend_z):
                evidence = list(dict.fromkeys(e for part in parts for e in part["ev"]))[:MAX_EVIDENCE]
                alert = trend.surge_alert(key, size, s, n, mean, std, item_ids=ids, evidence=evidence,
                                          actors=rec["actors"], lexicon_version=rec["lv"], created_at=now_iso())
                await candidates.send(key=cooldown.cooldown_key(alert).encode(),
                                      value=orjson.dumps({"at": at, "alert": alert}))
                if size == base:
                    d["f"] = True
                    _put(entry, d)
                else:
                    _put(flag, {"f": True, "p": message.partition, "w": now})
        if category == trend.KIND_TOTAL:
            for size, s, n, ids in counted:
                await _kind_totals(size, s, kind, n, ids, rec, at, message.partition, now)

    async def _kind_totals(size: int, start: int, kind: str, n: int, ids: list[str], rec: dict, at: float,
                           partition: int, now: float) -> None:
        kinds = ("escalation", "negotiation")
        counts = {k: (n if k == kind else _count(size, f"{k}/*", start)) for k in kinds}
        stats = {k: _baseline(size, f"{k}/*", start) for k in kinds}
        if size == sizes[0] and start >= latest.get((size, f"{kind}/*"), start):
            gauge = metrics.escalation_index if kind == "escalation" else metrics.negotiation_index
            gauge.set(trend.index(n, stats[kind][0]))
        surging = all(counts[k] >= trend.threshold(*stats[k], settings.trend_min_count, settings.trend_z)
                      for k in kinds)
        flag = _entry(size, "divergence", start)
        if surging and flag not in mirror:
            alert = trend.divergence_alert(size, start, counts, {k: stats[k][0] for k in kinds},
                                           item_ids=ids, lexicon_version=rec["lv"], created_at=now_iso())
            await candidates.send(key=cooldown.cooldown_key(alert).encode(),
                                  value=orjson.dumps({"at": at, "alert": alert}))
            _put(flag, {"n": 1, "o": -1, "ids": [], "ev": [], "f": True, "p": partition, "w": now})

    # ------------------------------------------------------------------ cooldown + send
    @app.agent(candidates)
    async def notify(stream):
        """Apply the cooldown per (type, category, main actor) and send the alerts that pass."""
        await changelogs_ready(app, last_alert, sources=(t.candidates,))
        async for event in stream.events():
            message = event.message
            envelope = orjson.loads(message.value)
            alert = envelope["alert"]
            raw = last_alert.get(message.key)
            send, reason, new_state = cooldown.decide(orjson.loads(raw) if raw else None, alert["alert_id"],
                                                      alert["severity"], envelope["at"], settings.alert_cooldown)
            if not send:
                metrics.alerts_suppressed.labels(alert["type"]).inc()
                continue
            out_key = alert.get("key", "") if alert["type"] == "trend" else alert["alert_id"]
            await alert_topics[alert["type"]].send(key=out_key.encode(), value=orjson.dumps(alert))
            last_alert[message.key] = orjson.dumps(new_state)
            metrics.alerts.labels(alert["type"], alert["severity"]).inc()
            if envelope.get("received_at"):
                metrics.alert_latency_seconds.observe(max(0.0, _wall() - trend.event_time(
                    {"received_at": envelope["received_at"]})))

    return {"dedup": dedup_topic, "candidates": candidates, "signals": signals_topic, "fan_out": fan_out,
            "dirty": dirty, "tables": [stories, windows, last_alert]}
