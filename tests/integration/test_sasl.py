"""A SASL_PLAINTEXT / SCRAM-SHA-256 broker: worker and CLI with the right credentials, clear errors with wrong ones.

The broker is a LocalBroker of its own with a SCRAM user (``StorageTool format --add-scram``); the
password must never show up in what the worker or the CLI print.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from streams.broker import LocalBroker, free_port
from tests.conftest import REPO, collect, launch_worker

USER = "signalwatch-svc"
PASSWORD = f"pw-{uuid.uuid4().hex}"  # unique, so a leak is unambiguous


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory):
    broker = LocalBroker(tmp_path_factory.mktemp("kafka-scram"), free_port(), scram_user=USER,
                         scram_password=PASSWORD)
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


def _env(broker: LocalBroker, **overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWATCH_")}
    env.update(broker.client_env(), SIGNALWATCH_HOME=str(broker.data_dir / "client"))
    env.update(overrides)
    return env


def _cli(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_broker_config_has_a_scram_listener_and_no_plaintext_one(scram_broker):
    props = (scram_broker.data_dir / "server.properties").read_text()
    assert f"listeners=SASL_PLAINTEXT://127.0.0.1:{scram_broker.port}," in props
    assert "PLAINTEXT://" not in props.replace("SASL_PLAINTEXT://", "")
    assert "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config" in props
    assert LocalBroker(Path("/nonexistent")).security_protocol == "PLAINTEXT"  # default unchanged


def test_cli_and_worker_work_with_the_right_credentials(scram_broker, tmp_path):
    env = _env(scram_broker)
    created = _cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout or "all topics exist" in created.stdout

    worker = launch_worker(scram_broker.url, tmp_path / "worker", extra_env=_env(scram_broker))
    try:
        rid = uuid.uuid4().hex[:8]
        feed = tmp_path / "feed.jsonl"
        texts = ["Russian forces launched a missile strike on Kharkiv overnight.",
                 "Kyiv and Moscow agreed to a prisoner exchange brokered by the Emirates.",
                 "The Kremlin said it is ready to hold peace talks in Riyadh next month.",
                 "Farmers in the south reported a good sunflower harvest this autumn.",
                 "Drones hit power plants near Odesa, cutting electricity to thousands."]
        items = [{"id": f"{rid}-{i}", "text": text} for i, text in enumerate(texts)]
        feed.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in items))
        pushed = _cli(env, "push", str(feed))
        assert pushed.returncode == 0 and "sent 5 items" in pushed.stderr, pushed.stderr
        tagged = collect(worker.settings, worker.settings.topics.tagged, lambda v: v["id"].startswith(rid), 5,
                         settle=2)
        assert sorted(t["id"] for t in tagged) == sorted(i["id"] for i in items)
        alerts = collect(worker.settings, worker.settings.topics.escalation,
                         lambda v: any(i.startswith(rid) for i in v["item_ids"]), 1)
        assert alerts

        tail = subprocess.Popen([sys.executable, "-m", "streams.cli", "tail", "--from-beginning", "--json"],
                                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = tail.stdout.readline()  # the first alert; a hang is caught by pytest-timeout
        finally:
            tail.terminate()
            _, tail_err = tail.communicate(timeout=30)
        assert orjson.loads(line)["alert_id"]

        # the worker's web server listens on loopback only (SIGNALWATCH_WEB_HOST unset)
        assert _listening_addresses(worker.settings.web_port) == {"127.0.0.1"}
    finally:
        worker.stop()
    output = worker.log.read_text() + created.stdout + created.stderr + pushed.stderr + tail_err.decode()
    assert PASSWORD not in output
    assert "Authentication failed" not in output


def test_wrong_password_gives_a_clear_cli_error_not_a_hang(scram_broker):
    for args in (("topics", "create"), ("push", str(REPO / "streams" / "data" / "sample_feed.jsonl")), ("tail",)):
        done = _cli(_env(scram_broker, SIGNALWATCH_SASL_PASSWORD="not-" + PASSWORD), *args)
        assert done.returncode != 0, args
        # The broker's own reason ("rejected the … credentials") is reported when kafka-python logged it
        # before giving up, which depends on timing; either way the error names the user and the fix.
        assert "credentials" in done.stderr and "'signalwatch-svc'" in done.stderr, done.stderr[-2000:]
        assert "SIGNALWATCH_SASL_PASSWORD" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr


def test_missing_sasl_settings_name_the_fix(scram_broker):
    env = _env(scram_broker, SIGNALWATCH_SECURITY_PROTOCOL="PLAINTEXT")
    done = _cli(env, "topics", "create")
    assert done.returncode != 0
    assert "SIGNALWATCH_SECURITY_PROTOCOL" in done.stderr and "SIGNALWATCH_SASL_USERNAME" in done.stderr


def test_worker_with_a_wrong_password_exits_non_zero_with_a_clear_error(scram_broker, tmp_path):
    wrong = "not-" + PASSWORD
    worker = launch_worker(scram_broker.url, tmp_path / "worker", ready=False,
                           extra_env=_env(scram_broker, SIGNALWATCH_SASL_PASSWORD=wrong))
    try:
        code = worker.proc.wait(timeout=120)
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert code != 0
    lines = log.strip().splitlines()
    # "rejected the credentials", or when kafka-python gave up before logging the broker's reason, "wrong
    # credentials are the usual cause"
    assert len(lines) == 1 and "credentials" in lines[0] and "signalwatch-svc" in lines[0], log[-2000:]
    assert "SIGNALWATCH_SASL_PASSWORD" in log and "Traceback" not in log, "one line that names the fix"
    assert wrong not in log and PASSWORD not in log


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (Linux /proc/net/tcp, tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                if len(address) == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.add("::1" if address == "0" * 24 + "01000000" else f"ipv6:{address}")
    return found
