"""Every query of every panel of the committed Grafana dashboard, run by a real Prometheus that scrapes a
real worker (tests/conftest.py ``worker``: real broker, real ``signalwatch worker`` process, loopback).

Prometheus (Debian's ``prometheus`` binary) runs on a free loopback port with a temporary config that
scrapes the worker's /metrics every second and loads the repository's rule files; it is always killed
at the end. Grafana's variables are replaced by concrete values, as Grafana would send them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from streams.broker import free_port
from tests.conftest import send_items

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "docker" / "grafana" / "dashboards" / "signalwatch.json"
RULE_FILES = sorted((REPO / "docker" / "prometheus" / "rules").glob("*.yml"))
JOB = "signalwatch"
SETTLE_TIMEOUT = 60.0

# Panels that may legitimately read 0 after this test's items: the rolling-window indices (set by the
# trend stage) and consumer lag (0 once the worker has caught up). Every other panel must show a
# non-zero, non-NaN value somewhere, because the items below exercise it.
MAY_BE_ZERO = {"Escalation vs negotiation index", "Consumer lag by topic", "Consumer lag by partition"}

HEADLINES = [
    ("Russia launched a missile strike on Kyiv overnight",
     "Russian forces launched a massive missile strike on Kyiv overnight, hitting power plants and "
     "leaving parts of the city without electricity, Ukrainian officials said."),
    ("Zelensky rejects ceasefire talks",
     "Ukrainian President Volodymyr Zelensky rejected ceasefire talks proposed by the Kremlin, saying "
     "Ukraine will not accept a frozen conflict or territorial concessions."),
    ("Drones strike energy facilities in Kharkiv",
     "A wave of Russian drone strikes hit energy infrastructure in Kharkiv, and Ukraine shelled "
     "positions near Belgorod in response."),
    ("Turkey offers to mediate a prisoner exchange",
     "Turkey offered to host peace talks between Russia and Ukraine and to mediate a new prisoner "
     "exchange, the foreign ministry in Ankara said."),
]


def make_items(tag: str) -> list[dict]:
    return [{"id": f"dash-{tag}-{i}", "title": title, "text": text, "source": "e2e.example",
             "published_at": "2026-11-24T08:00:00Z", "language": "en"}
            for i, (title, text) in enumerate(HEADLINES)]


# ---------------------------------------------------------------- a real Prometheus
def _get(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@contextmanager
def prometheus(tmp: Path, target: str) -> Iterator[str]:
    """Run Prometheus on a free 127.0.0.1 port scraping ``target`` every second; yield its base URL."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: `make system-deps` installs Debian's prometheus package"
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [{"job_name": JOB, "scrape_interval": "1s", "scrape_timeout": "1s",
                            "static_configs": [{"targets": [target]}]}],
    }))
    log = tmp / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready after 30s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _api(base: str, path: str, **params: str) -> dict:
    body = _get(f"{base}/api/v1/{path}?" + urllib.parse.urlencode(params))
    assert body["status"] == "success", (path, params, body)
    return body["data"]


def query(base: str, expr: str) -> list[dict]:
    """An instant query (as Grafana runs targets marked instant): one ``value`` per series."""
    data = _api(base, "query", query=expr)
    if data["resultType"] == "scalar":
        return [{"metric": {}, "values": [data["result"]]}]
    return [{"metric": r["metric"], "values": [r["value"]]} for r in data["result"]]


def query_range(base: str, expr: str, start: float, end: float) -> list[dict]:
    """A range query over the test's window at a 1 s step (as Grafana runs time-series targets)."""
    return _api(base, "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step="1")["result"]


def has_value(result: list[dict]) -> bool:
    """Whether some series has a finite, non-zero value at some point."""
    return any(not math.isnan(float(v)) and float(v) != 0 for series in result for _, v in series["values"])


def scrape_health(base: str) -> list[dict]:
    """Each target's health and last scrape error, for failure messages."""
    targets = _get(f"{base}/api/v1/targets")["data"]["activeTargets"]
    return [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError", "lastScrapeDuration")} for t in targets]


# ---------------------------------------------------------------- the dashboard's queries
def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace ``$name`` and ``${name}`` as Grafana does; an unknown variable is an error."""
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in variables, f"dashboard uses ${name}, which this test does not know: {expr}"
        return variables[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def panel_queries(dashboard: dict) -> list[tuple[str, str, bool]]:
    """(panel title, expr, instant) of every target of every panel, rows' nested panels included."""
    out = []

    def walk(panels: list[dict]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for t in panel.get("targets", []):
                if not t.get("hide"):
                    out.append((panel["title"], t["expr"], bool(t.get("instant"))))
    walk(dashboard["panels"])
    return out


def grafana_regex(value: str) -> str:
    """A variable value as Grafana puts it into a Prometheus regex matcher (escaped, in a PromQL string)."""
    return re.escape(value).replace("\\", "\\\\")


def test_every_dashboard_query_returns_data(worker, tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    queries = panel_queries(dashboard)
    titles = {title for title, _, _ in queries}
    assert len(queries) >= 20 and len(titles) >= 14, "the dashboard lost panels"
    assert titles >= MAY_BE_ZERO

    target = f"127.0.0.1:{worker.settings.web_port}"
    variables = {"job": JOB, "instance": grafana_regex(target), "datasource": "prometheus",
                 "__rate_interval": "4s", "__interval": "1s"}
    tag = uuid.uuid4().hex[:8]
    started = time.monotonic()
    with prometheus(tmp_path, target) as base:
        window_start = time.time()
        while not query(base, f'up{{job="{JOB}"}} == 1'):  # the first scrape, so every increase shows
            assert time.monotonic() - started < 30, f"no successful scrape: {scrape_health(base)}"
            time.sleep(0.5)
        # wave 1: new label values (actors) appear; wave 2 a few scrapes later makes them increase.
        # Each wave has one message that is not JSON (a dead letter) and one repeated id (a duplicate).
        waves = [make_items(f"{tag}-{n}") for n in (1, 2)]
        sent = 0
        failures: list[str] = []
        while True:
            if sent < len(waves) and time.monotonic() - started > 4 * sent:
                wave = waves[sent]
                send_items(worker.settings, [*wave, b"{not json", wave[0]],
                           [w["id"].encode() for w in wave] + [None, wave[0]["id"].encode()])
                sent += 1
            now = time.time()
            variables["__range"] = f"{int(now - window_start) + 1}s"
            results = {}
            for title, expr, instant in queries:
                promql = substitute(expr, variables)
                results[(title, expr)] = (query(base, promql) if instant
                                          else query_range(base, promql, window_start, now))
            failures = [f"panel {title!r}: no data for {expr}" for (title, expr), r in results.items() if not r]
            failures += [f"panel {title!r}: only zero or NaN values" for title in sorted(titles - MAY_BE_ZERO)
                         if not any(has_value(r) for (t, _), r in results.items() if t == title)]
            if (not failures and sent == len(waves)) or time.monotonic() - started > SETTLE_TIMEOUT:
                break
            time.sleep(1)
        waited = time.monotonic() - started
        assert not failures, (f"dashboard panels without data after {waited:.0f}s:\n" + "\n".join(failures)
                              + f"\nscrape targets: {scrape_health(base)}"
                              + "\nworker log tail:\n" + worker.log.read_text(errors="replace")[-2000:])

        # consumer lag covers the agents' input topics (no changelogs) and drains to 0 once caught up
        deadline = time.monotonic() + 20
        while True:
            lag = query(base, f'signalwatch_consumer_lag{{job="{JOB}"}}')
            topics = {series["metric"]["topic"] for series in lag}
            total = sum(float(series["values"][0][1]) for series in lag)
            if (total == 0 and {"news.raw", "news.processed"} <= topics) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert {"news.raw", "news.processed"} <= topics, topics
        assert not [t for t in topics if t.endswith("-changelog")], topics
        assert total == 0, f"lag does not drain: {lag}"

        # the template variables' own queries (label_values) resolve to this job and instance
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"])
            assert m, f"variable {var['name']}: unexpected query {var['query']}"
            selector = substitute(m.group(1), variables)
            values = _api(base, f"label/{m.group(2)}/values", **{"match[]": selector})
            assert (JOB if var["name"] == "job" else target) in values, (var["name"], values)

        # the repository's recording rules load and produce series from the same data
        for record in ("job:signalwatch_items_received:rate5m", "job:signalwatch_items_tagged:rate5m",
                       "job_topic:signalwatch_consumer_lag:sum"):
            assert query(base, record), f"recording rule {record} has no data"
        firing = query(base, 'ALERTS{alertstate="firing", alertname="SignalwatchWorkerDown"}')
        assert not firing, firing
    assert time.monotonic() - started < 110
