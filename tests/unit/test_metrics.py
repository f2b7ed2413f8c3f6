"""Metrics (streams.metrics) and the consumer-lag measurement (streams.observability), no broker."""

from __future__ import annotations

import asyncio
from collections import namedtuple

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams import observability
from streams.metrics import ALERT_TYPES, INVALID_REASONS, Metrics
from streams.settings import SEVERITIES

TP = namedtuple("TP", "topic partition")

CONTRACT = {
    "signalwatch_items_received_total", "signalwatch_items_invalid_total", "signalwatch_items_duplicate_total",
    "signalwatch_signals_total", "signalwatch_alerts_total", "signalwatch_processing_seconds_bucket",
    "signalwatch_alert_latency_seconds_bucket", "signalwatch_escalation_index",
    "signalwatch_negotiation_index", "signalwatch_build_info",
}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def samples(m: Metrics) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(m.registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, frozenset(labels.items())))


def test_contract_names_are_exported(metrics):
    metrics.init_categories({"escalation": ["shelling"]})
    names = {name for name, _ in samples(metrics)}
    assert names >= CONTRACT, CONTRACT - names


def test_registries_are_independent():
    a, b = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    a.items_received.inc(3)
    assert value(a, "signalwatch_items_received_total") == 3
    assert value(b, "signalwatch_items_received_total") == 0


def test_known_labels_are_preinitialised(metrics):
    for reason in INVALID_REASONS:
        assert value(metrics, "signalwatch_items_invalid_total", reason=reason) == 0
    for kind in ALERT_TYPES:
        for severity in SEVERITIES:
            assert value(metrics, "signalwatch_alerts_total", type=kind, severity=severity) == 0
    metrics.init_categories({"escalation": ["missile_strike"], "negotiation": ["ceasefire"]})
    assert value(metrics, "signalwatch_signals_total", kind="escalation", category="missile_strike") == 0
    assert value(metrics, "signalwatch_signals_total", kind="negotiation", category="ceasefire") == 0


def test_record_tagged_counts_labels_signals_and_actors(metrics):
    from streams.analytics.shard import Tagged

    metrics.record_tagged(Tagged.of(tagged) for tagged in (
        {"id": "a", "labels": ["escalation"], "actors": ["Russia", "Ukraine"],
         "signals": [{"kind": "escalation", "category": "missile_strike"},
                     {"kind": "escalation", "category": "missile_strike"},
                     {"kind": "escalation", "category": "missile_strike", "counts": False}]},
        {"id": "b", "labels": [], "actors": ["NATO"], "signals": []}))
    metrics.record_tagged([])
    assert value(metrics, "signalwatch_items_tagged_total") == 2
    assert value(metrics, "signalwatch_items_labelled_total", label="escalation") == 1
    assert value(metrics, "signalwatch_signals_total", kind="escalation", category="missile_strike") == 2
    assert value(metrics, "signalwatch_actor_mentions_total", actor="Russia") == 1
    assert value(metrics, "signalwatch_actor_mentions_total", actor="NATO") is None  # no signal, no mention


def test_consumer_lag_sets_and_drops_revoked_partitions(metrics):
    metrics.set_consumer_lag({("news.raw", 0): 5, ("news.raw", 1): 0, ("news.tagged", 3): 7})
    assert value(metrics, "signalwatch_consumer_lag", topic="news.raw", partition="0") == 5
    assert value(metrics, "signalwatch_consumer_lag", topic="news.tagged", partition="3") == 7
    metrics.set_consumer_lag({("news.raw", 0): 2})
    assert value(metrics, "signalwatch_consumer_lag", topic="news.raw", partition="0") == 2
    assert value(metrics, "signalwatch_consumer_lag", topic="news.raw", partition="1") is None
    assert value(metrics, "signalwatch_consumer_lag", topic="news.tagged", partition="3") is None
    metrics.set_consumer_lag({})
    assert not [k for k in samples(metrics) if k[0] == "signalwatch_consumer_lag"]


def test_compute_lag_prefers_committed_then_position_and_skips_changelogs():
    raw0, raw1, raw2, acc, log = (TP("news.raw", 0), TP("news.raw", 1), TP("news.raw", 2),
                                  TP("news.processed", 4), TP("signalwatch-story_segments-changelog", 4))
    lags = observability.compute_lag(
        [raw0, raw1, raw2, acc, log],
        highwaters={raw0: 100, raw1: 10, raw2: 5, acc: 3, log: 50},
        committed={raw0: 90, raw1: None, raw2: None, acc: 9, log: 0},
        positions={raw1: 4, raw2: None})
    assert lags == {("news.raw", 0): 10, ("news.raw", 1): 6, ("news.processed", 4): 0}


class FakeConsumer:
    def __init__(self, assigned, highwaters, committed, positions, fail: bool = False):
        self._assigned, self._hw, self._committed_offset, self._pos = assigned, highwaters, committed, positions
        self.fail = fail

    def assignment(self):
        return set(self._assigned)

    async def highwaters(self, *tps):
        if self.fail:
            raise RuntimeError("rebalancing")
        return {tp: self._hw[tp] for tp in tps}

    async def position(self, tp):
        return self._pos[tp]


class FakeSignal:
    def __init__(self):
        self.receivers = []

    def connect(self, fun):
        self.receivers.append(fun)


class FakeApp:
    def __init__(self, consumer):
        self.consumer = consumer
        self.timers: list[tuple[float, object]] = []
        self.tables: dict = {}  # name -> table (a table has a changelog_topic_name)
        self.on_partitions_assigned = FakeSignal()

    def timer(self, interval, name=None):
        def register(fun):
            self.timers.append((interval, fun))
            return fun
        return register


class FakeReader:
    """streams.intake.RawReader's lag: news.raw is read outside Faust's consumer."""

    async def lag(self):
        return {("news.raw", 3): 5}


def test_install_adds_a_timer_that_updates_the_lag(metrics):
    a, b = TP("news.processed", 0), TP("news.tagged", 1)
    consumer = FakeConsumer([a, b], {a: 12, b: 3}, {a: 2}, {b: 1})
    app = FakeApp(consumer)
    observability.install(app, metrics, FakeReader(), interval=1.5)
    [(interval, tick)] = app.timers
    assert interval == 1.5
    asyncio.run(tick())
    assert value(metrics, "signalwatch_consumer_lag", topic="news.processed", partition="0") == 10
    assert value(metrics, "signalwatch_consumer_lag", topic="news.tagged", partition="1") == 2
    assert value(metrics, "signalwatch_consumer_lag", topic="news.raw", partition="3") == 5
    consumer.fail = True  # errors are swallowed and the last values stay
    asyncio.run(tick())
    assert value(metrics, "signalwatch_consumer_lag", topic="news.processed", partition="0") == 10


def test_install_on_a_real_faust_app(metrics):
    import faust

    app = faust.App("sw-unit-observability", broker="kafka://127.0.0.1:1", autodiscover=False)
    before = len(app._app_tasks)
    observability.install(app, metrics, FakeReader())
    assert len(app._app_tasks) == before + 1
    assert value(metrics, "signalwatch_rebalances_total") == 0
    asyncio.run(app.on_partitions_assigned.send(set()))
    asyncio.run(app.on_partitions_assigned.send(set()))
    assert value(metrics, "signalwatch_rebalances_total") == 2
