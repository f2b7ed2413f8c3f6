"""The Faust application: topics, agents and web pages, built by :func:`create_app`.

Flow (DESIGN.md, streams.agents.analytics)::

    news.raw ─ingest─► news.dedup ─dedup─► news.accepted (keyed by item id) ─tag─► news.tagged
       └──────────────► news.deadletter                                         ├─► alerts.candidates ─notify─► alerts.*
                                                                                └─► news.signals ─trend─► alerts.candidates

``ingest`` parses and validates each message, dead-letters what it cannot accept and sends the rest with
their dedup features to the dedup shard; ``tag`` runs on a topic keyed by item id, so its table of seen
items is co-partitioned with its input and survives a restart through its changelog. It tags each new
item, sends it to news.tagged, its alerts to the cooldown stage and its signals to the trend windows in
one step (each extra hop through Kafka costs about as much as the tagging itself).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from datetime import datetime

import faust
import orjson

from streams import __version__, observability, web
from streams.agents import analytics
from streams.agents.analytics import CORROBORATION, DEDUP_SHARD, KIND_HEADER, SWEEP_EVERY
from streams.alerting import build_alerts, corroborated, severity_rank
from streams.analytics.cooldown import cooldown_key
from streams.analytics.dedup import Features
from streams.analytics.seen import Expiry, SeenEntry
from streams.analytics.trend import event_time
from streams.kafka_io import create_topics
from streams.metrics import Metrics
from streams.records import InvalidItem, dead_letter, now_iso, parse_item, tagged_item
from streams.settings import Settings
from streams.tagging import load_tagger

log = logging.getLogger("signalwatch")

def _credentials(settings: Settings):
    context = ssl.create_default_context(cafile=settings.ssl_cafile or None) \
        if settings.security_protocol.endswith("SSL") else None
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                                     mechanism=settings.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _create_changelogs_first(app: faust.App, settings: Settings, tables) -> None:
    """Create the topics and the tables' changelog topics before the worker's consumer starts.

    Faust creates a changelog itself, but while the agents already run, and its first table write then
    checks the partition count against a consumer metadata snapshot that may list the new changelog
    with 0 partitions (PartitionsMismatch, see streams.agents.analytics.changelogs_ready). Created here,
    in the app's first-start hook (before the consumer and agents start), the changelogs exist in the
    first metadata the consumer fetches."""
    names = [table.changelog_topic_name for table in tables]
    first_start = app.on_first_start

    async def on_first_start() -> None:
        try:
            created = await asyncio.to_thread(create_topics, settings, names)
            if created:
                log.info("created topics: %s", ", ".join(created))
        except Exception as exc:  # noqa: BLE001 - Faust creates what is missing itself
            log.warning("could not create topics before start (%s); Faust will create the changelogs", exc)
        await first_start()

    app.on_first_start = on_first_start


def create_app(settings: Settings | None = None, metrics: Metrics | None = None) -> faust.App:
    """Build the Faust app with its topics, agents, tables and web pages."""
    settings = settings or Settings.from_env()
    metrics = metrics or Metrics()
    tagger = load_tagger()
    metrics.build.info({"version": __version__, "lexicon_version": tagger.version})
    kinds: dict[str, list[str]] = {}
    for category in tagger.categories:
        kinds.setdefault(category.kind, []).append(category.name)
    metrics.init_categories(kinds)

    datadir = settings.data_dir / "worker" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        store="memory://",
        datadir=str(datadir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_max_poll_records=500,
        producer_max_request_size=4 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
        autodiscover=False,
        version=1,
    )
    app.settings = settings  # type: ignore[attr-defined]
    app.metrics = metrics  # type: ignore[attr-defined]
    # /metrics serves our registry only (streams.web). Faust's PrometheusMonitor (faust_* series, not used
    # by the dashboards or alert rules) cost 10-15% of the worker's CPU per item: labels() on every event,
    # send and table read.

    t = settings.topics
    raw = app.topic(t.raw, value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw")
    accepted = app.topic(t.accepted, value_type=bytes, key_type=bytes, partitions=settings.partitions)
    tagged_topic = app.topic(t.tagged, value_type=bytes, key_type=bytes)
    deadletter = app.topic(t.deadletter, value_type=bytes, key_type=bytes)
    alert_topics = {"escalation": app.topic(t.escalation, value_type=bytes, key_type=bytes),
                    "negotiation": app.topic(t.negotiation, value_type=bytes, key_type=bytes),
                    "trend": app.topic(t.trend, value_type=bytes, key_type=bytes)}
    seen = app.Table("seen_ids", default=None, partitions=settings.partitions, key_type=bytes,
                     value_type=bytes)
    # dedup (news.dedup -> news.accepted), trend windows (news.signals), cooldown (alerts.candidates)
    stages = analytics.install(app, settings, metrics, accepted=accepted, alert_topics=alert_topics)
    dedup_topic, candidates, fan_out, dirty = stages["dedup"], stages["candidates"], stages["fan_out"], stages["dirty"]
    _create_changelogs_first(app, settings, [seen, *stages["tables"]])

    @app.agent(raw)
    async def ingest(stream):
        """Parse and validate raw messages; forward valid items keyed by id, dead-letter the rest."""
        async for event in stream.events():
            message = event.message
            metrics.items_received.inc()
            received_at = now_iso()
            try:
                item = parse_item(message.value, settings.max_item_bytes)
            except InvalidItem as exc:
                metrics.items_invalid.labels(exc.reason).inc()
                await deadletter.send(key=message.key, value=dead_letter(
                    exc.reason, exc.detail, message.value, topic=message.topic,
                    partition=message.partition, offset=message.offset, key=message.key))
                continue
            except Exception as exc:  # a bug must not stop the worker or lose the message
                log.exception("ingest failed on %s[%s]@%s", message.topic, message.partition, message.offset)
                metrics.items_invalid.labels("internal_error").inc()
                await deadletter.send(key=message.key, value=dead_letter(
                    "internal_error", repr(exc)[:500], message.value, topic=message.topic,
                    partition=message.partition, offset=message.offset, key=message.key))
                continue
            item["received_at"] = received_at
            # To the dedup shard, with the item's dedup features (id, url, content hash, sketch) in headers.
            features = Features.of(item, settings.dedup_stories)
            await dedup_topic.send(key=DEDUP_SHARD, value=orjson.dumps(item), headers=features.headers())

    min_rank = severity_rank(settings.alert_min_severity)
    expiry = Expiry()
    sweep: dict[int, float] = {}  # input partition -> when its seen entries were last swept
    max_seen_per_partition = -(-settings.max_stories // settings.partitions)

    async def send_alerts(alerts: list[dict], at: float, received_at: str | None) -> None:
        for a in alerts:
            if severity_rank(a["severity"]) >= min_rank:
                await candidates.send(key=cooldown_key(a).encode(), value=orjson.dumps(
                    {"at": at, "received_at": received_at, "alert": a}))

    async def corroborate(message) -> None:
        """Send the story's alerts one severity level higher, with the sources that reported it."""
        raw = seen.get(message.key)
        if raw is None:  # the first copy was not tagged (dead-lettered) or has expired
            return
        record = orjson.loads(message.value)
        entry = SeenEntry.loads(raw, time.time())
        raised = [r for r in (corroborated(a, record["sources"], record["copies"]) for a in entry.alerts) if r]
        metrics.corroborations.inc()
        await send_alerts(raised, entry.at, None)

    def forget_expired(partition: int, now: float) -> None:
        """Delete the seen entries of ``partition`` older than the dedup horizon (see streams.analytics.seen),
        each partition every ``SWEEP_EVERY`` seconds."""
        if dirty.seen:
            expiry.rebuild((k, SeenEntry.loads(v, now)) for k, v in seen.items() if v)
            dirty.seen = False
        if now - sweep.setdefault(partition, now) > SWEEP_EVERY:
            sweep[partition] = now
            for key in expiry.expired(partition, now, settings.dedup_horizon):
                seen.pop(key, None)

    @app.agent(accepted)
    async def tag(stream):
        """Tag each new item; send it to news.tagged, its alerts to the cooldown stage and its signals to the
        trend windows. Repeated ids are dropped; a corroboration record raises the story's alerts a level."""
        await analytics.changelogs_ready(app, seen, sources=(t.accepted,))
        async for event in stream.events():
            message = event.message
            now = time.time()
            forget_expired(message.partition, now)
            if dict(message.headers or ()).get(KIND_HEADER) == CORROBORATION:
                try:
                    await corroborate(message)
                except Exception:  # noqa: BLE001 - a bad record costs its severity update, never the worker
                    log.exception("corroboration failed on %s[%s]@%s", message.topic, message.partition,
                                  message.offset)
                continue
            if seen.get(message.key) is not None:
                metrics.items_duplicate.inc()
                continue
            try:
                item = orjson.loads(message.value)
                received_at = item.pop("received_at")
                out = tagged_item(item, tagger.tag(item["title"], item["text"]), received_at)
                alerts = build_alerts(out, "low")
            except Exception as exc:  # a tagger bug must not stop the worker or lose the item
                log.exception("tagging failed on %s[%s]@%s", message.topic, message.partition, message.offset)
                metrics.items_invalid.labels("internal_error").inc()
                await deadletter.send(key=message.key, value=dead_letter(
                    "internal_error", repr(exc)[:500], message.value, topic=message.topic,
                    partition=message.partition, offset=message.offset, key=message.key))
                continue
            # Send before marking as seen: a crash in between repeats the item (same id), never loses it.
            at = event_time(out)
            await tagged_topic.send(key=message.key, value=orjson.dumps(out))
            await send_alerts(alerts, at, received_at)
            await fan_out(out)
            received = _epoch(received_at)
            raisable = [a for a in alerts if a["severity"] != "critical"]  # what a corroboration can raise
            seen[message.key] = SeenEntry(received, message.partition, at, raisable).dumps()
            expiry.add(message.partition, received, message.key)
            for key in expiry.overflow(message.partition, max_seen_per_partition):  # a flood: bounded memory
                seen.pop(key, None)
                metrics.state_evictions.labels("seen").inc()
            metrics.record_tagged(out)
            metrics.processing_seconds.observe(max(0.0, time.time() - received))

    observability.install(app, metrics)  # consumer lag timer
    observability.install_stall_guard(app, metrics)  # faust-streaming #596: re-read stalled partitions
    web.install(app, settings, metrics)  # POST /news, live alert page at /
    return app
