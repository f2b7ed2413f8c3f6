"""The signalwatch Grafana dashboard as code (grafanalib); ``make dashboards`` writes the JSON model.

    python docker/grafana/dashboard.py [OUT]     # default: docker/grafana/dashboards/signalwatch.json

One function per dashboard row; each returns the row's title and its panels (with their widths).
:func:`build` lays the rows out on Grafana's 24-column grid and adds the template variables
``datasource``, ``job`` and ``instance``. Every query selects ``{job=~"$job", instance=~"$instance"}``
and uses only metrics that ``streams/metrics.py`` defines (or Prometheus' ``up``);
tests/e2e/test_dashboard_queries.py runs each query against a real Prometheus scraping a real worker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    BarGauge,
    Dashboard,
    GridPos,
    Panel,
    RowPanel,
    Stat,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

OUT = Path(__file__).resolve().parent / "dashboards" / "signalwatch.json"
UID = "signalwatch"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'
PANEL_HEIGHT = 8

Row = tuple[str, list[tuple[Panel, int]]]
"""A row: its title and its panels, each with its width in grid columns (24 = full width)."""


def sel(extra: str = "") -> str:
    """The label selector of every query: the chosen jobs and instances, plus ``extra`` matchers."""
    return "{" + SEL + (", " + extra if extra else "") + "}"


def rate(metric: str, extra: str = "", by: str = "") -> str:
    """Per-second rate of a counter over Grafana's rate interval, summed (``by`` labels kept)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{sel(extra)}[$__rate_interval]))"


def target(expr: str, legend: str, ref: str, instant: bool = False) -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, instant=instant, datasource=DATASOURCE)


def timeseries(title: str, targets: list[Target], unit: str = "short", stacked: bool = False,
               description: str = "", **kw) -> TimeSeries:
    return TimeSeries(
        title=title, description=description, dataSource=DATASOURCE, targets=targets, unit=unit,
        stacking={"mode": "normal", "group": "A"} if stacked else {"mode": "none"},
        fillOpacity=40 if stacked else 10, legendDisplayMode="table", legendPlacement="right",
        legendCalcs=["mean", "lastNotNull"], tooltipMode="multi", **kw)


def quantiles(metric: str) -> list[Target]:
    """p50 / p95 / p99 of a histogram over the chosen instances."""
    return [target(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{sel()}[$__rate_interval])))",
                   f"p{round(q * 100)}", ref)
            for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))]


# ---------------------------------------------------------------- rows
def overview_row() -> Row:
    """Which workers run, which version and rule pack they carry."""
    workers = Stat(
        title="Workers up", dataSource=DATASOURCE, reduceCalc="lastNotNull", graphMode="none",
        description="Scraped worker targets that answer (Prometheus' up).",
        targets=[target(f"sum(up{sel()})", "workers", "A")])
    build = Stat(
        title="Version and rule pack", dataSource=DATASOURCE, reduceCalc="lastNotNull", graphMode="none",
        textMode="name", description="signalwatch_build_info: service version and lexicon version.",
        targets=[target(f"count by (version, lexicon_version) (signalwatch_build_info{sel()})",
                        "{{version}} / lexicon {{lexicon_version}}", "A", instant=True)])
    return "Overview", [(workers, 6), (build, 18)]


def throughput_row() -> Row:
    """Items received, tagged, updated, dropped as duplicates, redelivered and dead-lettered, per second."""
    items = timeseries("Items per second", [
        target(rate("signalwatch_items_received_total"), "received", "A"),
        target(rate("signalwatch_items_tagged_total"), "tagged", "B"),
        target(rate("signalwatch_items_duplicate_total"), "duplicate", "C"),
        target(rate("signalwatch_items_invalid_total"), "invalid", "D"),
        target(rate("signalwatch_items_updated_total"), "updated", "E"),
        target(rate("signalwatch_duplicate_reasons_total", 'reason="redelivered"'), "redelivered", "F"),
    ], unit="reqps", description="news.raw in; news.tagged out (first copies; updated: a known id with changed "
                                 "text, sent as its next revision); duplicates dropped; redelivered: read again "
                                 "after a crash (not duplicates); invalid dead-lettered.")
    dead = timeseries("Dead letters by reason", [
        target(rate("signalwatch_items_invalid_total", by="reason"), "{{reason}}", "A"),
    ], unit="reqps", stacked=True, description="Messages written to news.deadletter, by reason.")
    return "Throughput", [(items, 14), (dead, 10)]


def signals_row() -> Row:
    """Signals per second by category, stacked, one panel per kind."""
    panels = []
    for kind, title in (("escalation", "Escalation signals by category"),
                        ("negotiation", "Negotiation mentions by category")):
        panels.append((timeseries(title, [
            target(rate("signalwatch_signals_total", f'kind="{kind}"', by="category"), "{{category}}", "A"),
        ], unit="reqps", stacked=True, description=f"signalwatch_signals_total{{kind=\"{kind}\"}} per second."),
            12))
    return "Signals by category", panels


def index_row() -> Row:
    """The two rolling-window indices side by side, and the raw signal rates by kind."""
    index = timeseries("Escalation vs negotiation index", [
        target(f"max(signalwatch_escalation_index{sel()})", "escalation", "A"),
        target(f"max(signalwatch_negotiation_index{sel()})", "negotiation", "B"),
    ], unit="percentunit", valueMin=0, valueMax=1,
        description="Activity over the rolling window (0-1), highest over the chosen workers.")
    by_kind = timeseries("Signals per second by kind", [
        target(rate("signalwatch_signals_total", by="kind"), "{{kind}}", "A"),
    ], unit="reqps", description="All categories of each kind: the inputs of the surge alerts.")
    return "Escalation vs negotiation", [(index, 14), (by_kind, 10)]


def alerts_row() -> Row:
    """Alerts sent, by type and severity: the rate over time and the totals of the time range."""
    per_second = timeseries("Alerts per second by type and severity", [
        target(rate("signalwatch_alerts_total", by="type, severity"), "{{type}} {{severity}}", "A"),
    ], unit="reqps", stacked=True, description="alerts.escalation, alerts.negotiation and alerts.trend.")
    totals = BarGauge(
        title="Alerts in the time range", dataSource=DATASOURCE, calc="lastNotNull", min=0, max=None,
        orientation="horizontal", displayMode="gradient",
        targets=[target(f"sum by (type, severity) (increase(signalwatch_alerts_total{sel()}[$__range]))",
                        "{{type}} {{severity}}", "A", instant=True)])
    return "Alerts", [(per_second, 14), (totals, 10)]


def sources_row() -> Row:
    """Who says so: alerts by the camps that carry their story, the share no other camp confirms, and the
    items from sources the registry does not know."""
    by_mix = timeseries("Alerts by camp mix", [
        target(rate("signalwatch_alerts_by_camp_mix_total", by="camp_mix"), "{{camp_mix}}", "A"),
    ], unit="reqps", stacked=True,
        description="Per-item alert versions sent, by the camps of their story's origins (docs/sources.md).")
    single = timeseries("Share of single-camp claims", [
        target(rate("signalwatch_alerts_single_camp_total", 'single="true"') + " / "
               + rate("signalwatch_alerts_single_camp_total"), "single camp", "A"),
    ], unit="percentunit", valueMin=0, valueMax=1,
        description="Alert versions whose story only one camp carries (no confirmation from another side).")
    unknown = timeseries("Items from unknown sources", [
        target(rate("signalwatch_sources_unknown_total"), "unknown", "A"),
        target(rate("signalwatch_items_received_total"), "received", "B"),
    ], unit="reqps", description="Sources not in streams/sources/registry.yaml: add the frequent ones.")
    return "Sources and camps", [(by_mix, 10), (single, 7), (unknown, 7)]


def latency_row() -> Row:
    """p50 / p95 / p99 of the two latency histograms."""
    processing = timeseries("Processing latency (received → tagged)",
                            quantiles("signalwatch_processing_seconds"), unit="s",
                            description="signalwatch_processing_seconds")
    alert = timeseries("Alert latency (received → alert sent)",
                       quantiles("signalwatch_alert_latency_seconds"), unit="s",
                       description="signalwatch_alert_latency_seconds")
    return "Latency", [(processing, 12), (alert, 12)]


def lag_row() -> Row:
    """Messages behind the end of each topic, over all workers of the group, and per partition; the CPU of
    each stage, which tells whether more workers would help."""
    by_topic = timeseries("Consumer lag by topic", [
        target(f"sum by (topic) (signalwatch_consumer_lag{sel()})", "{{topic}}", "A"),
    ], description="Highwater minus committed offset, summed over partitions and workers.")
    by_partition = timeseries("Consumer lag by partition", [
        target(f"max by (topic, partition) (signalwatch_consumer_lag{sel()})", "{{topic}}[{{partition}}]", "A"),
    ], description="A single high partition points at a hot key or a stuck worker.")
    stages = timeseries("CPU by stage", [
        target(rate("signalwatch_stage_cpu_seconds_total", by="stage, instance"), "{{stage}} {{instance}}", "A"),
    ], description="Cores each stage's own work uses. process scales with workers and partitions; decide and "
                   "talks are the story shard's thread, one per cluster: near one core it is the cluster's limit "
                   "(alert SignalwatchStoryShardBusy).")
    return "Consumer lag", [(by_topic, 8), (by_partition, 8), (stages, 8)]


def actors_row() -> Row:
    """The actors most named in items that carry a signal."""
    top = BarGauge(
        title="Top actors in the time range", dataSource=DATASOURCE, calc="lastNotNull", min=0, max=None,
        orientation="horizontal", displayMode="gradient",
        targets=[target(f"topk(10, sum by (actor) (increase(signalwatch_actor_mentions_total{sel()}[$__range])))",
                        "{{actor}}", "A", instant=True)])
    over_time = timeseries("Top actors per second", [
        target(f"topk(5, {rate('signalwatch_actor_mentions_total', by='actor')})", "{{actor}}", "A"),
    ], unit="reqps")
    return "Top actors", [(top, 10), (over_time, 14)]


def talks_row() -> Row:
    """The negotiation tracker: threads by state, and transitions by kind (each one an alert)."""
    threads = timeseries("Negotiation threads by state", [
        target(f"max by (state) (signalwatch_talks_threads{sel()})", "{{state}}", "A"),
    ], stacked=True, description="Threads the tracker holds (only the worker that holds the story shard has "
                                 "them; the others report 0).")
    transitions = BarGauge(
        title="Thread transitions in the time range", dataSource=DATASOURCE, calc="lastNotNull", min=0, max=None,
        orientation="horizontal", displayMode="gradient",
        targets=[target(f"sum by (kind) (increase(signalwatch_talks_transitions_total{sel()}[$__range]))",
                        "{{kind}}", "A", instant=True)])
    return "Talks", [(threads, 14), (transitions, 10)]


ROWS = (overview_row, throughput_row, signals_row, index_row, alerts_row, sources_row, latency_row, lag_row,
        actors_row, talks_row)


# ---------------------------------------------------------------- dashboard
def templating() -> Templating:
    datasource = Template(name="datasource", label="Data source", type="datasource", query="prometheus",
                          default="Prometheus")
    job = Template(name="job", label="Job", dataSource=DATASOURCE, includeAll=True, multi=True,
                   allValue=".+", default="signalwatch", refresh=2,
                   query="label_values(signalwatch_build_info, job)")
    instance = Template(name="instance", label="Instance", dataSource=DATASOURCE, includeAll=True,
                        multi=True, allValue=".+", default="$__all", refresh=2,
                        query='label_values(signalwatch_build_info{job=~"$job"}, instance)')
    return Templating(list=[datasource, job, instance])


def layout(rows: list[Row]) -> list[Panel]:
    """Place rows top to bottom and their panels left to right on the 24-column grid."""
    panels: list[Panel] = []
    y = 0
    for title, members in rows:
        panels.append(RowPanel(title=title, gridPos=GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        x = 0
        for panel, width in members:
            if x + width > 24:
                x, y = 0, y + PANEL_HEIGHT
            panel.gridPos = GridPos(h=PANEL_HEIGHT, w=width, x=x, y=y)
            panels.append(panel)
            x += width
        y += PANEL_HEIGHT
    return panels


def build() -> Dashboard:
    return Dashboard(
        title="signalwatch", uid=UID, tags=["signalwatch", "kafka", "faust"], timezone="browser",
        description="Escalation signals and negotiation mentions: throughput, signals, alerts, latency, lag.",
        refresh="10s", time=Time("now-1h", "now"), templating=templating(),
        panels=layout([row() for row in ROWS]), schemaVersion=39,
    ).auto_panel_ids()


def render() -> str:
    """The dashboard's JSON model, deterministic (sorted keys), with a final newline."""
    model = json.loads(json.dumps(build().to_json_data(), cls=DashboardEncoder))
    for variable in model["templating"]["list"]:
        if variable.get("includeAll") and variable["current"].get("value") == "$__all":
            variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return json.dumps(model, sort_keys=True, indent=2) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
