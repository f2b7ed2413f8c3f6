"""Every Prometheus metric signalwatch exports, in one place, over an injectable registry.

Names are a contract (README.md, docs/architecture.md); dashboards and alert rules in ``docker/`` query them. Label values
that are known in advance are pre-initialised so a panel is never empty by accident. Consumer lag is
measured by the timer in :mod:`streams.observability`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from streams.settings import ALERT_TYPES, SEVERITIES
from streams.talks import STATES, TRANSITION_KINDS

INVALID_REASONS = ("empty", "too_large", "bad_utf8", "not_json", "not_object", "schema", "no_text",
                   "internal_error")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The metric objects of one worker, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.items_received = Counter(
            "signalwatch_items_received", "Messages read from the input topic.", registry=r)
        self.items_invalid = Counter(
            "signalwatch_items_invalid", "Messages dead-lettered, by reason.", ["reason"], registry=r)
        self.items_duplicate = Counter(
            "signalwatch_items_duplicate", "Accepted items dropped as duplicates.", registry=r)
        self.items_tagged = Counter(
            "signalwatch_items_tagged", "First copies written to news.tagged (updates: signalwatch_items_updated).",
            registry=r)
        self.items_updated = Counter(
            "signalwatch_items_updated", "Updates written to news.tagged as a story's next revision: a known id "
            "with changed title or text (a correction).", registry=r)
        self.items_labelled = Counter(
            "signalwatch_items_labelled", "Tagged items by label.", ["label"], registry=r)
        self.signals = Counter(
            "signalwatch_signals", "Signals found, by kind and category.", ["kind", "category"], registry=r)
        self.actor_mentions = Counter(
            "signalwatch_actor_mentions", "Actors named in tagged items that carry a signal.", ["actor"],
            registry=r)
        self.alerts = Counter(
            "signalwatch_alerts", "Alerts sent, by type and severity.", ["type", "severity"], registry=r)
        self.processing_seconds = Histogram(
            "signalwatch_processing_seconds", "Time from receiving an item to writing it tagged.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.alert_latency_seconds = Histogram(
            "signalwatch_alert_latency_seconds", "Time from receiving an item to sending its alert.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.escalation_index = Gauge(
            "signalwatch_escalation_index", "Escalation activity over the rolling window (0-1).", registry=r)
        self.negotiation_index = Gauge(
            "signalwatch_negotiation_index", "Negotiation activity over the rolling window (0-1).",
            registry=r)
        self.consumer_lag = Gauge(
            "signalwatch_consumer_lag", "Messages behind the end of the partition, per topic and partition.",
            ["topic", "partition"], registry=r)
        self.build = Info("signalwatch_build", "Version of the service and of the rule pack.", registry=r)
        # stream analytics (issue 4): duplicates by reason, cooldown, windowed counts
        self.duplicate_reasons = Counter(
            "signalwatch_duplicate_reasons", "Duplicates dropped, by what matched (id, url, content, near); "
            "redelivered counts apart, not in signalwatch_items_duplicate: items read again after a crash that the "
            "story shard had decided before (a replayed record re-sends its first copies and updates, same ids and "
            "revisions; nothing is counted twice).", ["reason"], registry=r)
        self.corroborations = Counter(
            "signalwatch_corroborations",
            "Stories whose independent origins or camps grew, so their alerts were re-sent (streams.sources).",
            registry=r)
        # who says so (issue 16): unlisted sources, alerts by the camps that carry their story
        self.sources_unknown = Counter(
            "signalwatch_sources_unknown", "Items whose source is not in the source registry (camp other): add "
            "the outlet to streams/sources/registry.yaml (docs/sources.md).", registry=r)
        self.alerts_by_camp_mix = Counter(
            "signalwatch_alerts_by_camp_mix", "Per-item alert versions sent, by the camps of their story's "
            "origins (sorted, joined by +).", ["camp_mix"], registry=r)
        self.alerts_single_camp = Counter(
            "signalwatch_alerts_single_camp", "Per-item alert versions sent, by whether one camp alone carries "
            "their story (single=true: a claim no other camp confirms).", ["single"], registry=r)
        self.state_evictions = Counter(
            "signalwatch_state_evictions", "Stories (state=stories) forgotten before the dedup horizon because "
            "SIGNALWATCH_MAX_STORIES was reached.", ["state"], registry=r)
        self.stage_cpu_seconds = Counter(
            "signalwatch_stage_cpu_seconds", "CPU seconds of each stage's own work, Kafka sends excluded (process: "
            "parse to candidate alerts, scales with partitions; decide: the story shard's decisions, one per "
            "cluster; talks: the negotiation tracker, in the same stage).", ["stage"], registry=r)
        self.partition_rereads = Counter(
            "signalwatch_partition_rereads", "Partitions the stall guard re-read from their committed offset "
            "(faust-streaming issue #596: records dropped after a restart with tables to recover).", registry=r)
        self.rebalances = Counter(
            "signalwatch_rebalances", "Partition assignments this worker received (a rebalance loop shows as a "
            "steady rise).", registry=r)
        self.alerts_suppressed = Counter(
            "signalwatch_alerts_suppressed", "Alerts not sent, by type and reason: cooldown (counted in the next "
            "alert of the same key, or in its digest: field 'suppressed') or repeat (the same alert again, no more "
            "severe).", ["type", "reason"], registry=r)
        self.alert_digests = Counter(
            "signalwatch_alert_digests", "Digest alerts sent (also counted in signalwatch_alerts_total): what the "
            "cooldown held back for a key whose cooldown ended with no next alert.", ["type"], registry=r)
        self.trend_window_count = Gauge(
            "signalwatch_trend_window_count",
            "Items in the window last updated, per window size (seconds) and key (kind/category, kind/*, actor/x).",
            ["window", "key"], registry=r)
        # the web port (streams.web, streams.health)
        self.ready = Gauge(
            "signalwatch_ready", "1 when the worker has partitions and its table state is recovered (/healthz).",
            registry=r)
        self.recovery_remaining = Gauge(
            "signalwatch_recovery_remaining_records",
            "Changelog records still to read before the worker's tables are recovered (0 when not recovering).",
            registry=r)
        self.ingest_refused = Counter(
            "signalwatch_ingest_refused", "POST /news requests refused, by HTTP status.", ["status"], registry=r)
        # the negotiation tracker (streams.talks), run by the story shard's stage
        self.talks_threads = Gauge(
            "signalwatch_talks_threads", "Negotiation threads the tracker holds, by state.", ["state"], registry=r)
        self.talks_transitions = Counter(
            "signalwatch_talks_transitions", "Negotiation thread transitions (each one an alert), by kind.",
            ["kind"], registry=r)
        self._lag_series: set[tuple[str, str]] = set()

        for reason in INVALID_REASONS:
            self.items_invalid.labels(reason)
        for label in ("escalation", "negotiation"):
            self.items_labelled.labels(label)
        for kind in ALERT_TYPES:
            for severity in SEVERITIES:
                self.alerts.labels(kind, severity)
            for reason in ("cooldown", "repeat"):
                self.alerts_suppressed.labels(kind, reason)
            self.alert_digests.labels(kind)
        for reason in ("id", "url", "content", "near", "redelivered"):
            self.duplicate_reasons.labels(reason)
        for state in STATES:
            self.talks_threads.labels(state)
        for kind in TRANSITION_KINDS:
            self.talks_transitions.labels(kind)
        for status in ("400", "401", "403", "408", "413", "415", "429", "503"):
            self.ingest_refused.labels(status)

    def init_categories(self, categories: dict[str, list[str]]) -> None:
        """Pre-create ``signals_total`` series for every (kind, category) of the rule pack."""
        for kind, names in categories.items():
            for name in names:
                self.signals.labels(kind, name)

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set ``consumer_lag`` to ``lags`` ((topic, partition) -> messages behind) and drop the series of
        partitions no longer assigned, so the sum over all workers stays the group's lag."""
        current = {(topic, str(partition)) for topic, partition in lags}
        for topic, partition in self._lag_series - current:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(topic, partition)
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)
        self._lag_series = current

    def record_corroboration(self, corroboration: dict) -> None:
        """Count one sent alert version by its story's camps."""
        self.alerts_by_camp_mix.labels(corroboration["camp_mix"]).inc()
        self.alerts_single_camp.labels("true" if corroboration["single_camp"] else "false").inc()

    def record_tagged(self, items: Iterable) -> None:
        """Count tagged items (:class:`streams.analytics.shard.Tagged`: labels, signals that count as
        ``[kind, category]``, actors of an item with signals): hypothetical, historical and negated mentions
        are evidence only. Counted per batch, one increment per label value: a metric update takes a lock."""
        items = list(items)
        if not items:
            return
        self.items_tagged.inc(len(items))
        flat = itertools.chain.from_iterable  # counted once per batch, in C
        labels = collections.Counter(flat([tagged.labels for tagged in items]))
        signals = collections.Counter(map(tuple, flat([tagged.counted for tagged in items])))
        actors = collections.Counter(flat([tagged.actors for tagged in items]))
        for label, k in labels.items():
            self.items_labelled.labels(label).inc(k)
        for (kind, category), k in signals.items():
            self.signals.labels(kind, category).inc(k)
        for actor, k in actors.items():
            self.actor_mentions.labels(actor).inc(k)
