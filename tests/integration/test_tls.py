"""A TLS broker (SSL listener, certificate from a CA made for the test): worker and CLI trust it through
SIGNALWATCH_SSL_CAFILE; an untrusted certificate or a plaintext client gets a clear error, not a hang."""

from __future__ import annotations

import subprocess
import uuid

import orjson
import pytest

from streams.broker import LocalBroker, free_port
from tests.conftest import collect, launch_worker
from tests.integration.test_sasl import _cli, _env


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    broker = LocalBroker(tmp_path_factory.mktemp("kafka-tls"), free_port(), tls=True)
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def untrusted_ca(tmp_path):
    """A CA certificate that did not sign the broker's certificate."""
    ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                    "-keyout", str(tmp_path / "other.key"), "-out", str(ca)], check=True, capture_output=True)
    return ca


def test_broker_config_has_only_a_tls_client_listener(tls_broker):
    props = (tls_broker.data_dir / "server.properties").read_text()
    assert f"listeners=SSL://127.0.0.1:{tls_broker.port}," in props
    assert "PLAINTEXT://127.0.0.1" not in props
    assert tls_broker.client_env()["SIGNALWATCH_SSL_CAFILE"] == str(tls_broker.ca_file)


def test_cli_and_worker_work_over_tls(tls_broker, tmp_path):
    env = _env(tls_broker)
    created = _cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    worker = launch_worker(tls_broker.url, tmp_path / "worker", extra_env=env)
    try:
        rid = uuid.uuid4().hex[:8]
        feed = tmp_path / "feed.jsonl"
        items = [{"id": f"{rid}-0", "text": "Russian forces launched a missile strike on Kharkiv overnight."},
                 {"id": f"{rid}-1", "text": "The Kremlin said it is ready to hold peace talks in Riyadh."}]
        feed.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in items))
        pushed = _cli(env, "push", str(feed))
        assert pushed.returncode == 0 and "sent 2 items" in pushed.stderr, pushed.stderr
        tagged = collect(worker.settings, worker.settings.topics.tagged, lambda v: v["id"].startswith(rid), 2,
                         settle=2)
        assert sorted(t["id"] for t in tagged) == [f"{rid}-0", f"{rid}-1"]
        assert collect(worker.settings, worker.settings.topics.escalation,
                       lambda v: f"{rid}-0" in v["item_ids"], 1)
    finally:
        worker.stop()


def test_an_untrusted_certificate_or_a_plaintext_client_fails_clearly(tls_broker, untrusted_ca):
    for overrides, reason in (({"SIGNALWATCH_SSL_CAFILE": str(untrusted_ca)}, "no TLS session"),
                              ({"SIGNALWATCH_SECURITY_PROTOCOL": "PLAINTEXT"}, "no Kafka session")):
        done = _cli(_env(tls_broker, **overrides), "topics", "create", timeout=90)
        assert done.returncode != 0, overrides
        assert reason in done.stderr, done.stderr[-2000:]
        assert "SIGNALWATCH_SECURITY_PROTOCOL" in done.stderr and "SIGNALWATCH_SSL_CAFILE" in done.stderr


def test_a_worker_that_does_not_trust_the_broker_exits_with_the_reason(tls_broker, untrusted_ca, tmp_path):
    worker = launch_worker(tls_broker.url, tmp_path / "worker", ready=False,
                           extra_env=_env(tls_broker, SIGNALWATCH_SSL_CAFILE=str(untrusted_ca)))
    try:
        code = worker.proc.wait(timeout=120)
    finally:
        worker.stop()
    assert code != 0
    log = worker.log.read_text()
    assert len(log.strip().splitlines()) == 1 and "no TLS session could be set up" in log, log[-2000:]
    assert "SIGNALWATCH_SSL_CAFILE" in log and "Traceback" not in log, "one line that names the fix"
