"""`signalwatch feed poll` against a local HTTP server (loopback) serving feed files written here: ETag /
Last-Modified, a feed that changes, a server that fails and recovers, state across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from streams.kafka_io import TopicReader
from streams.poller import MAX_BACKOFF, Poller, StateFile, backoff


def rss(run: str, entries: list[tuple[str, str]]) -> bytes:
    items = "".join(
        f"<item><title>{title}</title><link>https://example.org/{run}/{slug}</link><guid>{run}-{slug}</guid>"
        f"<description>{title}. Officials gave no further details.</description></item>"
        for slug, title in entries)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Poll Test {run}</title>'
            f"<link>https://example.org/{run}</link>{items}</channel></rss>").encode()


class FeedServer:
    """Serves ``self.body`` at /feed.xml with an ETag; answers 304 to a matching If-None-Match and
    ``self.fail`` (a list of status codes) to the next requests while it is not empty."""

    def __init__(self) -> None:
        self.body = b""
        self.version = 0
        self.fail: list[int] = []
        self.log: list[tuple[int, str | None, str | None]] = []  # (status, If-None-Match, If-Modified-Since)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                etag = f'"v{server.version}"'
                if server.fail:
                    status = server.fail.pop(0)
                    self.send_response(status)
                    self.end_headers()
                elif self.headers.get("If-None-Match") == etag:
                    status = 304
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                else:
                    status = 200
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", formatdate(usegmt=True))
                    self.send_header("Content-Length", str(len(server.body)))
                    self.end_headers()
                    self.wfile.write(server.body)
                server.log.append((status, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")))

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feed.xml"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, body: bytes) -> None:
        self.body = body
        self.version += 1


@pytest.fixture
def feed_server():
    server = FeedServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def poll_once(env: dict, state: Path, *urls: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", "feed", "poll", "--once", "--state", str(state),
                           *urls], env=env, capture_output=True, text=True, timeout=60)


def sent_items(settings, run: str, count: int, timeout: float = 20, settle: float = 1.5) -> list[dict]:
    """Items of this run on news.raw (which also holds other tests' deliberately malformed messages)."""
    reader = TopicReader(settings, [settings.topics.raw], from_beginning=True)
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for record in reader.poll(0.5):
                if run.encode() in (record.value or b""):
                    found.append(orjson.loads(record.value))
            if len(found) >= count:
                deadline = min(deadline, time.monotonic() + settle)
    finally:
        reader.close()
    return found


def test_each_entry_is_sent_once_across_restarts_and_feed_changes(kafka, feed_server, tmp_path):
    from streams.settings import Settings

    settings = Settings(broker=kafka.url)
    env = {**os.environ, "SIGNALWATCH_BROKER": kafka.url, "SIGNALWATCH_HOME": str(tmp_path)}
    run = uuid.uuid4().hex[:8]
    state = tmp_path / "state.json"
    feed_server.publish(rss(run, [("a", "Missile strike on Kharkiv"), ("b", "Peace talks in Riyadh")]))

    first = poll_once(env, state, feed_server.url)
    assert first.returncode == 0, first.stderr
    assert "2 new, 0 already sent" in first.stderr
    assert feed_server.log[-1] == (200, None, None)

    second = poll_once(env, state, feed_server.url)  # a new process: the state file carries the ETag
    assert second.returncode == 0 and "not modified" in second.stderr
    assert feed_server.log[-1][0] == 304 and feed_server.log[-1][1] == '"v1"' and feed_server.log[-1][2]

    feed_server.publish(rss(run, [("c", "Drone attack on Odesa port"), ("a", "Missile strike on Kharkiv"),
                                  ("b", "Peace talks in Riyadh")]))
    third = poll_once(env, state, feed_server.url)
    assert third.returncode == 0 and "1 new, 2 already sent" in third.stderr, third.stderr

    items = sent_items(settings, run, 3)
    assert sorted(i["url"].rsplit("/", 1)[1] for i in items) == ["a", "b", "c"], "each entry exactly once"
    for item in items:
        assert item["id"].startswith("u-") and item["source"] == f"Poll Test {run}" and item["guid"]


def test_a_failing_server_is_retried_and_recovers(kafka, feed_server, tmp_path):
    from streams.settings import Settings

    settings = Settings(broker=kafka.url)
    env = {**os.environ, "SIGNALWATCH_BROKER": kafka.url, "SIGNALWATCH_HOME": str(tmp_path)}
    run = uuid.uuid4().hex[:8]
    state = tmp_path / "state.json"
    feed_server.publish(rss(run, [("x", "Ceasefire proposal rejected")]))
    feed_server.fail = [503]

    failed = poll_once(env, state, feed_server.url)
    assert failed.returncode == 1 and "HTTP 503" in failed.stderr and "retry in" in failed.stderr
    saved = orjson.loads(state.read_bytes())["feeds"][feed_server.url]
    assert saved["failures"] == 1 and saved["sent"] == []

    recovered = poll_once(env, state, feed_server.url)
    assert recovered.returncode == 0 and "1 new" in recovered.stderr, recovered.stderr
    assert orjson.loads(state.read_bytes())["feeds"][feed_server.url]["failures"] == 0
    assert len(sent_items(settings, run, 1)) == 1

    unreachable = poll_once(env, state, "http://127.0.0.1:9/feed.xml")
    assert unreachable.returncode == 1 and "cannot reach the feed" in unreachable.stderr


def test_the_long_running_poller_backs_off_then_sends_each_entry_once(feed_server, tmp_path):
    """In-process, with a fake clock: errors push the next poll back exponentially; recovery resets it."""
    run = uuid.uuid4().hex[:8]
    feed_server.publish(rss(run, [("a", "Shelling of Kherson"), ("b", "Talks in Istanbul")]))
    feed_server.fail = [500, 502, 503]
    now = [1000.0]
    sent: list[bytes] = []
    flushed: list[int] = []
    results = []
    poller = Poller(StateFile(tmp_path / "state.json"), lambda k, v: sent.append(k),
                    lambda: flushed.append(len(sent)), interval=10, clock=lambda: now[0])

    def sleep(seconds):
        now[0] += seconds

    def report(result):
        results.append((now[0], result))

    poller.run([feed_server.url], report=report, stopped=lambda: now[0] > 1000 + 10 * (2 + 4 + 8) + 35,
               sleep=sleep)
    times = [t for t, _ in results]
    errors = [r for _, r in results if r.error]
    assert [r.error for r in errors] == ["HTTP 500 Internal Server Error", "HTTP 502 Bad Gateway",
                                         "HTTP 503 Service Unavailable"]
    assert [round(b - a) for a, b in zip(times, times[1:], strict=False)][:3] == [20, 40, 80], "back-off doubles"
    assert len(sent) == 2 and flushed == [2], "each entry once, flushed before it is recorded"
    assert len([r for _, r in results if r.status == 304]) >= 2, "unchanged feed: conditional requests"
    assert backoff(10, 20) == MAX_BACKOFF
