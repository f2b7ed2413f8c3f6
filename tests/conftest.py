"""Shared fixtures: a real local Kafka broker and real worker processes (tests/integration)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from streams.broker import LocalBroker, free_port
from streams.kafka_io import TopicReader, create_topics, producer
from streams.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka(tmp_path_factory) -> Iterator[LocalBroker]:
    """A real single-node Kafka (KRaft) on a free loopback port, stopped after the session."""
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), free_port())
    broker.start(timeout=120)
    try:
        create_topics(Settings(broker=broker.url))
        yield broker
    finally:
        broker.stop()


@dataclass
class WorkerProcess:
    """A ``signalwatch worker`` subprocess and how to reach it."""

    proc: subprocess.Popen
    settings: Settings
    log: Path
    env: dict = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=5) as response:
            return response.read().decode()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def send_items(settings: Settings, values: list[bytes | dict], keys: list[bytes | None] | None = None) -> None:
    """Produce raw values (dicts are JSON-encoded) to news.raw and wait for the broker's acks."""
    client = producer(settings)
    try:
        for i, value in enumerate(values):
            if isinstance(value, dict):
                value = orjson.dumps(value)
            key = keys[i] if keys else None
            client.send(settings.topics.raw, key=key, value=value)
        client.flush(timeout=60)
    finally:
        client.close()


def collect(settings: Settings, topic: str, match: Callable[[dict], bool], count: int,
            timeout: float = 60, settle: float = 0.0) -> list[dict]:
    """Read ``topic`` from the beginning until ``count`` JSON records satisfy ``match`` (or time out).

    With ``settle`` > 0, keep reading that many seconds after reaching ``count`` so extra records show.
    """
    reader = TopicReader(settings, [topic], from_beginning=True)
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for record in reader.poll(0.5):
                value = orjson.loads(record.value)
                if match(value):
                    found.append(value)
            if len(found) >= count:
                if settle <= 0:
                    break
                deadline = min(deadline, time.monotonic() + settle)
                settle = 0
    finally:
        reader.close()
    return found


def wait_ready(worker: WorkerProcess, timeout: float = 90) -> None:
    """Wait until the worker tags a probe item end to end (consumer group joined, agents running)."""
    probe = f"probe-{uuid.uuid4().hex}"
    deadline = time.monotonic() + timeout
    # the text is the id's hex in 4-letter words: with a fixed text, or with the id as one word among a few
    # fixed ones (4 of 8 shingles shared), it would be a (near-)duplicate story of an earlier worker's probe
    words = " ".join(probe[i:i + 4] for i in range(6, len(probe), 4))
    send_items(worker.settings, [{"id": probe, "text": f"readiness probe {words}"}], [probe.encode()])
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.proc.returncode}:\n{worker.log.read_text()[-4000:]}")
        got = collect(worker.settings, worker.settings.topics.tagged, lambda v: v.get("id") == probe, 1,
                      timeout=5)
        if got:
            return
    raise RuntimeError(f"worker not ready after {timeout}s:\n{worker.log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def start_worker(kafka, tmp_path_factory) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start a real worker process on the session broker; all are stopped at the end."""
    started: list[WorkerProcess] = []

    def _start(app_id: str | None = None, web_port: int | None = None, ready: bool = True,
               extra_env: dict | None = None) -> WorkerProcess:
        worker = launch_worker(kafka.url, tmp_path_factory.mktemp("worker"), app_id=app_id, web_port=web_port,
                               ready=ready, extra_env=extra_env)
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def worker(start_worker) -> WorkerProcess:
    """One shared worker for tests that only need the pipeline running.

    The pipeline tests send the same texts under new ids in several tests and expect each to be tagged and
    alerted, so this worker drops only repeated ids (no url, content or near-duplicate detection) and has
    no alert cooldown; tests/integration/test_analytics*.py cover those with workers of their own.
    """
    return start_worker(extra_env=PIPELINE_ENV)


PIPELINE_ENV = {"SIGNALWATCH_DEDUP_STORIES": "0", "SIGNALWATCH_ALERT_COOLDOWN": "0"}


# ---------------------------------------------------------------- isolated brokers (issue 7)
def launch_worker(broker_url: str, home: Path, *, app_id: str | None = None, web_port: int | None = None,
                  ready: bool = True, extra_env: dict | None = None) -> WorkerProcess:
    """Start a ``signalwatch worker`` process on any broker (the caller stops it)."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ,
               SIGNALWATCH_BROKER=broker_url,
               SIGNALWATCH_APP_ID=app_id or f"sw-test-{uuid.uuid4().hex[:8]}",
               SIGNALWATCH_WEB_PORT=str(web_port or free_port()),
               SIGNALWATCH_LOG_LEVEL="info")
    env.update(extra_env or {})
    env["SIGNALWATCH_HOME"] = str(home)
    settings = Settings.from_env(env)
    log = home / "worker.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    worker = WorkerProcess(proc, settings, log, env)
    if ready:
        try:
            wait_ready(worker)
        except Exception:
            worker.stop(signal.SIGKILL)
            raise
    return worker


@dataclass
class IsolatedKafka:
    """A broker of its own (topics created) for tests that count every record on a topic."""

    broker: LocalBroker
    home: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(broker=self.broker.url)

    def start_worker(self, **kw) -> WorkerProcess:
        worker = launch_worker(self.broker.url, self.home / f"worker-{len(self.workers)}", **kw)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def own_workers(isolated_kafka):
    """Every test stops its workers, also when it fails: news.raw and news.processed are shared by all app
    ids on the broker, so a worker left running would also handle the next test's items."""
    isolated_kafka.stop_all()
    yield
    isolated_kafka.stop_all()


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of series ``name{labels}`` in a /metrics page (``labels`` exactly as printed, "" for the
    unlabelled one; 0 when absent)."""
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)}\s+(\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


@pytest.fixture(scope="module")
def isolated_kafka(tmp_path_factory) -> Iterator[IsolatedKafka]:
    """A fresh broker for one test module; its workers are stopped and the broker with them."""
    broker = LocalBroker(tmp_path_factory.mktemp("kafka-isolated"), free_port())
    broker.start(timeout=120)
    iso = IsolatedKafka(broker, tmp_path_factory.mktemp("isolated-home"))
    try:
        create_topics(iso.settings)
        yield iso
    finally:
        iso.stop_all()
        broker.stop()


class TopicDrain:
    """Accumulates every record of some topics from the beginning (one reader, polled on demand)."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        self.reader = TopicReader(settings, topics, from_beginning=True)
        self.records: dict[str, list] = {t: [] for t in topics}

    def poll(self, timeout: float = 0.5) -> int:
        got = self.reader.poll(timeout)
        for record in got:
            self.records[record.topic].append(record)
        return len(got)

    def until(self, done: Callable[[dict[str, list]], bool], timeout: float, settle: float = 0.0) -> bool:
        """Poll until ``done(records)`` (then ``settle`` more seconds so extras show) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if done(self.records):
                end = time.monotonic() + settle
                while time.monotonic() < end:
                    self.poll()
                return True
        return False

    def close(self) -> None:
        self.reader.close()
