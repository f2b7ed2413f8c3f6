"""The Faust application, built by :func:`create_app`: topics, tables, the two stages, web pages.

    news.raw ─process (read in batches, streams.intake)─► news.processed (one record per batch) ─decide─► news.tagged
       └──────► news.deadletter                                                           └────► alerts.*

docs/architecture.md describes the topology, where state lives, and how a crash or a rebalance is
survived; streams.stages holds what each stage does.
"""

from __future__ import annotations

import logging

import faust

from streams import __version__, observability, web
from streams.analytics.shard import Config, StoryShard
from streams.faust_compat import create_changelogs_first, install_stall_guard
from streams.intake import RawReader
from streams.metrics import Metrics
from streams.processing import ProcessPool
from streams.settings import ALERT_TYPES, Settings
from streams.stages import PROCESSED_PREFETCH, Decide, Process
from streams.tagging import load_tagger
from streams.talks.stream import ThreadBook

log = logging.getLogger("signalwatch")
TICK = 30.0
"""Seconds between the decide stage's timer ticks (cooldown digests, talks deadlines) when no batch arrives."""


def create_app(settings: Settings | None = None, metrics: Metrics | None = None) -> faust.App:
    """Build the Faust app with its topics, tables, agents and web pages."""
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
        broker_credentials=settings.faust_credentials(),
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
        producer_max_batch_size=256 * 1024,  # the story shard's outbox fills a batch per partition (streams.outbox)
        consumer_max_fetch_size=8 * 1024 * 1024,
        autodiscover=False,
        version=1,
    )
    # /metrics serves our registry only (streams.web): Faust's PrometheusMonitor cost 10-15% of the CPU.
    app.settings = settings  # type: ignore[attr-defined]
    app.metrics = metrics  # type: ignore[attr-defined]

    t = settings.topics

    def topic(name: str, maxsize: int | None = None):
        return app.topic(name, value_type=bytes, key_type=bytes, partitions=settings.partitions, maxsize=maxsize)

    topics = {"raw": topic(t.raw), "processed": topic(t.processed, PROCESSED_PREFETCH), "tagged": topic(t.tagged),
              "deadletter": topic(t.deadletter), **{kind: topic(t.alert_topic(kind)) for kind in ALERT_TYPES}}

    def table(name: str):
        return app.Table(name, default=None, partitions=settings.partitions, key_type=bytes, value_type=bytes)

    # the story shard's state, co-partitioned with news.processed (written once per batch, streams.stages)
    tables = {"stories": table("story_segments"), "cooldown": table("alert_cooldown"),
              "windows": table("trend_windows")}
    # the negotiation tracker's threads: a table of the same stage whose changelog is the public compacted topic;
    # not acked, like Faust's own changelogs (an acked topic is a stream to Faust: its stall check and the stall
    # guard would take the changelog, read only while recovering, for a stalled stream)
    threads = app.topic(t.threads, value_type=bytes, key_type=bytes, partitions=settings.partitions,
                        compacting=True, acks=False)
    tables["threads"] = app.Table("negotiation_threads", default=None, partitions=settings.partitions,
                                  key_type=bytes, value_type=bytes, changelog_topic=threads)
    create_changelogs_first(app, settings, list(tables.values()))

    process = Process(topics, metrics, ProcessPool(settings, tagger, settings.process_helpers), app)
    reader = RawReader(settings, process, metrics, topics["raw"])
    decide = Decide(topics, metrics, StoryShard(Config.of(settings)), tables, app, ThreadBook())

    @app.task
    async def read_news_raw() -> None:  # the process stage's input is not a Faust agent's: streams.intake
        await app.add_runtime_dependency(reader)

    app.agent(topics["processed"], name="decide", concurrency=1)(decide.run)
    app.timer(TICK)(decide.tick)  # digests are sent and deadlines pass while the feed is quiet
    app.talks = decide.talks  # type: ignore[attr-defined]  # GET /talks (streams.web)

    observability.install(app, metrics, reader)  # consumer lag, rebalances
    install_stall_guard(app, metrics)  # faust-streaming #596
    web.install(app, settings, metrics)  # POST /news, live alert page at /
    return app
