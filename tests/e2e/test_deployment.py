"""What can be checked of the Docker deployment without a Docker engine: docker-compose.yml, the
Dockerfile, the Prometheus and Grafana files they mount, against the code they deploy."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from streams.broker import KAFKA_VERSION
from streams.cli import main
from streams.metrics import Metrics
from streams.settings import ENV_VARS, Settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
PROMETHEUS_YML = REPO / "docker" / "prometheus" / "prometheus.yml"
GRAFANA = REPO / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "signalwatch.json"
SERVICES = {"kafka", "topics", "worker", "prometheus", "grafana"}
WEB_PORT = Settings().web_port


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def instructions(lines: list[str], name: str) -> list[str]:
    return [line[len(name):].strip() for line in lines if line.upper().startswith(name + " ")]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def known_env_names() -> set[str]:
    """SIGNALWATCH_* names the code reads: Settings' ENV_VARS plus those read directly in streams/."""
    source = "\n".join(p.read_text() for p in (REPO / "streams").rglob("*.py"))
    return set(ENV_VARS.values()) | set(re.findall(r"SIGNALWATCH_[A-Z_]+[A-Z]", source))


def cli_accepts(args: list[str]) -> None:
    """``signalwatch ARGS --help`` exits 0, i.e. ARGS name a real command."""
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, f"`signalwatch {' '.join(args)}` is not a command: {result.output}"


# ---------------------------------------------------------------- docker-compose.yml
def test_compose_has_every_service(compose):
    assert set(compose["services"]) >= SERVICES
    assert {"kafka-data", "prometheus-data"} <= set(compose["volumes"])


def test_every_mounted_path_exists(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
        build = service.get("build")
        if build:
            assert (REPO / build["context"] / build["dockerfile"]).is_file(), f"{name}: no {build}"


def test_kafka_is_kraft_at_the_pinned_version(compose):
    kafka = compose["services"]["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka" and tag == KAFKA_VERSION
    env = env_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_LOG_DIRS"] in {v.split(":")[1] for v in kafka["volumes"]}, "broker data not on a volume"
    assert "healthcheck" in kafka


def test_worker_is_scalable_and_configured_like_the_code(compose):
    worker = compose["services"]["worker"]
    assert "ports" not in worker, "a fixed host port prevents --scale worker=N"
    assert "container_name" not in worker
    assert str(WEB_PORT) in [str(p) for p in worker.get("expose", [])]
    env = env_of(worker)
    assert env["SIGNALWATCH_WEB_PORT"] == str(WEB_PORT)
    assert env["SIGNALWATCH_WEB_HOST"] == "0.0.0.0"
    settings = Settings.from_env(env)  # every value is one the worker accepts
    broker_host = settings.broker.removeprefix("kafka://").split(";")[0]
    advertised = env_of(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{broker_host}" in advertised, (broker_host, advertised)
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_every_signalwatch_variable_is_one_the_code_reads(compose, dockerfile):
    known = known_env_names()
    used = set()
    for service in compose["services"].values():
        used |= {k for k in env_of(service) if k.startswith("SIGNALWATCH_")}
    for env in instructions(dockerfile, "ENV"):
        used |= set(re.findall(r"(SIGNALWATCH_[A-Z_]+)=", env))
    used |= {k for k in compose.get("x-signalwatch-env", {}) if k.startswith("SIGNALWATCH_")}
    assert used, "no SIGNALWATCH_* settings found"
    assert used <= known, f"unknown settings: {sorted(used - known)}"


def test_compose_commands_are_real_cli_commands(compose):
    assert compose["services"]["topics"]["command"] == ["topics", "create"]
    for name in ("topics", "worker"):
        command = compose["services"][name]["command"]
        cli_accepts(command if isinstance(command, list) else command.split())


# ---------------------------------------------------------------- Dockerfile
def test_dockerfile_entrypoint_and_cmd_are_the_signalwatch_cli(dockerfile):
    [entrypoint] = instructions(dockerfile, "ENTRYPOINT")[-1:]
    [cmd] = instructions(dockerfile, "CMD")[-1:]
    assert json.loads(entrypoint) == ["signalwatch"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["signalwatch"] == "streams.cli:main"
    assert json.loads(cmd) == ["worker"]
    cli_accepts(json.loads(cmd))


def test_dockerfile_is_multistage_non_root_with_a_metrics_healthcheck(dockerfile):
    stages = instructions(dockerfile, "FROM")
    assert len(stages) >= 2 and any(re.search(r"\sAS\s+build\b", s, re.I) for s in stages), stages
    users = instructions(dockerfile, "USER")
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"
    [healthcheck] = instructions(dockerfile, "HEALTHCHECK")
    assert "/metrics" in healthcheck and "SIGNALWATCH_WEB_PORT" in healthcheck
    env = " ".join(instructions(dockerfile, "ENV"))
    assert "SIGNALWATCH_WEB_HOST=0.0.0.0" in env
    assert f"SIGNALWATCH_WEB_PORT={WEB_PORT}" in env
    assert f"EXPOSE {WEB_PORT}" in dockerfile


def test_dockerfile_ships_the_schemas_where_it_points(dockerfile):
    schemas_dir = re.search(r"SIGNALWATCH_SCHEMAS_DIR=(\S+)", " ".join(instructions(dockerfile, "ENV"))).group(1)
    copies = instructions(dockerfile, "COPY")
    assert f"schemas {schemas_dir}" in copies, (schemas_dir, copies)
    shipped = {p.name for p in (REPO / "schemas").glob("*.json")}
    assert {"news-item.v1.json", "tagged-item.v1.json", "alert.v1.json"} <= shipped


def test_package_data_covers_every_data_file_of_the_package():
    """The image installs signalwatch as a wheel: every non-Python file in streams/ must be package data."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["streams"]
    missing = []
    for path in (REPO / "streams").rglob("*"):
        rel = path.relative_to(REPO / "streams").as_posix()
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in rel \
                and not any(fnmatch.fnmatch(rel, p) for p in patterns):
            missing.append(rel)
    assert not missing, f"not in [tool.setuptools.package-data] streams (the Docker image lacks them): {missing}"


# ---------------------------------------------------------------- Prometheus
def test_prometheus_scrapes_the_workers_web_port(compose):
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "signalwatch"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [(name, sd["port"]) for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
    targets += [tuple(t.rsplit(":", 1)) for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert targets
    for host, port in targets:
        assert host in compose["services"], f"scrape target {host} is not a compose service"
        assert int(port) == WEB_PORT
    for pattern in config["rule_files"]:
        assert list(PROMETHEUS_YML.parent.glob(pattern)), f"rule_files {pattern} matches nothing"
    prometheus = compose["services"]["prometheus"]
    assert "./docker/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


# ---------------------------------------------------------------- Grafana
def test_grafana_provisioning_matches_compose(compose):
    grafana = compose["services"]["grafana"]
    assert "3000:3000" in " ".join(grafana["ports"])
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./docker/grafana/provisioning"] == "/etc/grafana/provisioning"
    [datasource] = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in compose["services"]["prometheus"]["ports"]
    [provider] = yaml.safe_load((GRAFANA / "provisioning/dashboards/signalwatch.yml").read_text())["providers"]
    assert mounts["./docker/grafana/dashboards"] == provider["options"]["path"]


def defined_metric_names() -> set[str]:
    """Every series name streams/metrics.py can export (suffixes included)."""
    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"],
                "info": ["_info"], "gauge": [""], "summary": ["", "_count", "_sum", "_created"]}
    names = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        names |= {family.name + s for s in suffixes[family.type]}
    return names


def test_dashboard_json_uses_only_defined_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "signalwatch"
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"job", "instance"}
    defined = defined_metric_names()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    used = set()
    for expr in exprs:
        assert 'job=~"$job"' in expr and 'instance=~"$instance"' in expr, expr
        used |= set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))
        used |= set(re.findall(r"\b(signalwatch_\w+)", expr))
    unknown = {n for n in used if n not in defined and n != "up" and not n.startswith("faust_")}
    assert not unknown, f"dashboard queries metrics that streams/metrics.py does not define: {unknown}"
    assert {"signalwatch_consumer_lag", "signalwatch_actor_mentions_total",
            "signalwatch_processing_seconds_bucket", "signalwatch_alert_latency_seconds_bucket"} <= used


def test_committed_dashboard_is_what_the_generator_writes():
    pytest.importorskip("grafanalib", reason="make dashboards needs grafanalib")
    spec = importlib.util.spec_from_file_location("sw_dashboard", GRAFANA / "dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == DASHBOARD.read_text(), "stale dashboard JSON: run `make dashboards`"
