"""The Prometheus configuration under docker/prometheus, checked and unit-tested by the real promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "docker" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
RUNBOOK = REPO / "docs" / "runbook.md"

REQUIRED_ALERTS = {
    "SignalwatchEscalationSurge", "SignalwatchNegotiationSurge", "SignalwatchDivergence",
    "SignalwatchPipelineStalled", "SignalwatchDeadLetterRateHigh", "SignalwatchConsumerLagHigh",
    "SignalwatchWorkerDown",
}


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: `make system-deps` installs Debian's prometheus package"
    return subprocess.run([tool, *args], cwd=PROM, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [r for r in group["rules"] if "alert" in r]
    return rules


def test_promtool_check_config():
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(RULE_FILES)} rule files found" in done.stdout + done.stderr


def test_promtool_check_rules():
    assert RULE_FILES
    done = promtool("check", "rules", *(str(p.relative_to(PROM)) for p in RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout + done.stderr


def test_promtool_test_rules():
    assert TEST_FILES
    done = promtool("test", "rules", *(str(p.relative_to(PROM)) for p in TEST_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(TEST_FILES), done.stdout


def test_every_required_alert_exists_with_labels_and_annotations():
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["labels"]["component"] in {"domain", "pipeline"}, rule["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{rule['alert']}: no {key}"


def test_every_runbook_url_points_at_a_runbook_section():
    headings = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(), flags=re.M)}
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", url
        assert anchor == rule["alert"].lower() and anchor in headings, f"{rule['alert']}: no section {url}"


@pytest.mark.parametrize("alert", sorted(REQUIRED_ALERTS))
def test_every_alert_is_tested_firing_and_not_firing(alert):
    firing = quiet = 0
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["alertname"] == alert:
                    if check.get("exp_alerts"):
                        firing += 1
                    else:
                        quiet += 1
    assert firing and quiet, f"{alert}: {firing} firing and {quiet} not-firing cases in {PROM / 'tests'}"
