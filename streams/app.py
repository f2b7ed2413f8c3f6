"""The Faust application: topics, agents and web pages, built by :func:`create_app`.

Flow (DESIGN.md)::

    news.raw ─ingest─► news.accepted (keyed by item id) ─tag─► news.tagged ─alert─► alerts.*
       └──────────────► news.deadletter

``ingest`` parses and validates each message and dead-letters what it cannot accept; ``tag`` runs on
a topic keyed by item id, so its duplicate table is co-partitioned with its input and survives a
restart through its changelog; ``alert`` turns tagged items into per-item alerts.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from datetime import datetime

import faust
import orjson
from faust.sensors.prometheus import setup_prometheus_sensors

from streams import __version__, observability, web
from streams.agents import analytics
from streams.agents.analytics import DEDUP_SHARD
from streams.alerting import build_alerts
from streams.analytics.cooldown import cooldown_key
from streams.analytics.dedup import Features
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
    setup_prometheus_sensors(app, pattern="/metrics", registry=metrics.registry, name_prefix="faust")

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
    stages = analytics.install(app, settings, metrics, accepted=accepted, tagged_topic=tagged_topic,
                               alert_topics=alert_topics, lexicon_version=lambda: tagger.version)
    dedup_topic, candidates = stages["dedup"], stages["candidates"]
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

    @app.agent(accepted)
    async def tag(stream):
        """Drop repeated ids, tag each new item and write it to news.tagged."""
        await analytics.changelogs_ready(app, seen, sources=(t.accepted,))
        async for event in stream.events():
            message = event.message
            if seen.get(message.key) is not None:
                metrics.items_duplicate.inc()
                continue
            try:
                item = orjson.loads(message.value)
                received_at = item.pop("received_at")
                out = tagged_item(item, tagger.tag(item["title"], item["text"]), received_at)
            except Exception as exc:  # a tagger bug must not stop the worker or lose the item
                log.exception("tagging failed on %s[%s]@%s", message.topic, message.partition, message.offset)
                metrics.items_invalid.labels("internal_error").inc()
                await deadletter.send(key=message.key, value=dead_letter(
                    "internal_error", repr(exc)[:500], message.value, topic=message.topic,
                    partition=message.partition, offset=message.offset, key=message.key))
                continue
            # Send before marking as seen: a crash in between repeats the item (same id), never loses it.
            await tagged_topic.send(key=message.key, value=orjson.dumps(out))
            seen[message.key] = received_at.encode()
            metrics.record_tagged(out)
            metrics.processing_seconds.observe(max(0.0, time.time() - _epoch(received_at)))

    @app.agent(tagged_topic)
    async def alert(stream):
        """Build the per-item alerts of each tagged item; the notify agent applies the cooldown and sends."""
        async for value in stream:
            tagged = orjson.loads(value)
            at = event_time(tagged)
            for a in build_alerts(tagged, settings.alert_min_severity):
                await candidates.send(key=cooldown_key(a).encode(), value=orjson.dumps(
                    {"at": at, "received_at": tagged["received_at"], "alert": a}))

    observability.install(app, metrics)  # consumer lag timer
    web.install(app, settings, metrics)  # POST /news, live alert page at /
    return app
