"""The worker's web port under hostile or careless clients, on a real worker (loopback only, bounded)."""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
import urllib.request
import uuid

import orjson
import pytest

from streams.kafka_io import TopicReader
from tests.conftest import PIPELINE_ENV, send_items

TALKS = "The Kremlin said it is ready to hold peace talks with Washington in Riyadh next month."
TOKEN = "test-token-" + uuid.uuid4().hex
STRICT = {**PIPELINE_ENV, "SIGNALWATCH_INGEST_TOKEN": TOKEN, "SIGNALWATCH_INGEST_RATE": "5",
          "SIGNALWATCH_MAX_REQUEST_ITEMS": "50", "SIGNALWATCH_HTTP_TIMEOUT": "2"}


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def raw_records_with(settings, marker: bytes, seconds: float = 5.0) -> list[bytes]:
    """Values on news.raw (from its beginning; it also holds other tests' invalid bytes) that contain ``marker``."""
    reader = TopicReader(settings, [settings.topics.raw], from_beginning=True)
    found, deadline = [], time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            found += [r.value for r in reader.poll(0.5) if marker in (r.value or b"")]
    finally:
        reader.close()
    return found


def item(**extra) -> bytes:
    return orjson.dumps({"id": f"web-{uuid.uuid4().hex[:10]}", "title": "Talks", "text": TALKS, **extra})


@pytest.fixture(scope="module")
def strict(start_worker):
    """A worker with a token, a low rate and item limit, and a 2 s header/body timeout, once its /healthz says
    ready (the start fixture's probe item may be tagged by another worker of the session)."""
    worker = start_worker(extra_env=STRICT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert worker.proc.poll() is None, worker.log.read_text()[-3000:]
        try:
            if request(worker.settings.web_port, "GET", "/healthz", timeout=5)[0] == 200:
                return worker
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"the strict worker is not ready:\n{worker.log.read_text()[-3000:]}")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", ""])
def test_content_types_a_page_may_send_anywhere_are_refused(worker, content_type):
    status, _, body = request(worker.settings.web_port, "POST", "/news", item(),
                              {"Content-Type": content_type} if content_type else {})
    assert status == 415 and b"application/x-ndjson" in body


def test_a_cross_origin_browser_request_is_refused_and_produces_nothing(worker):
    port = worker.settings.web_port
    value = item()
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": f"http://127.0.0.1:{port + 1}"}):
        status, _, body = request(port, "POST", "/news", value, {"Content-Type": "application/json", **headers})
        assert status == 403, (headers, body)
    status, _, body = request(port, "POST", "/news", value, {"Content-Type": "application/json",
                                                             "Host": "evil.example"})
    assert status == 403 and b"not this machine" in body, "a rebound DNS name is not this machine"
    item_id = orjson.loads(value)["id"]
    assert not raw_records_with(worker.settings, item_id.encode()), "nothing refused reached news.raw"
    status, _, body = request(port, "POST", "/news", value, {"Content-Type": "application/json",
                                                             "Origin": f"http://127.0.0.1:{port}"})
    assert status == 202 and orjson.loads(body)["accepted"] == [item_id], "the page's own origin may post"
    assert raw_records_with(worker.settings, item_id.encode()), "and that one is produced (the check can fail)"


def test_844k_tiny_items_are_refused_at_once_while_metrics_answer(worker):
    port = worker.settings.web_port
    body = b'{"text":"x"}\n' * 844_000
    assert len(body) < worker.settings.max_body_bytes, "within the byte limit: the item limit refuses it"
    latencies: list[float] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            started = time.monotonic()
            status, _, _ = request(port, "GET", "/metrics", timeout=10)
            latencies.append(time.monotonic() - started)
            assert status == 200
            time.sleep(0.05)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    time.sleep(0.2)
    started = time.monotonic()
    status, _, answer = request(port, "POST", "/news", body, {"Content-Type": "application/x-ndjson"})
    elapsed = time.monotonic() - started
    time.sleep(0.3)
    done.set()
    scraper.join(timeout=15)
    assert status == 413, answer[:300]
    detail = orjson.loads(answer)["detail"]
    assert "844000 items" in detail and "SIGNALWATCH_MAX_REQUEST_ITEMS" in detail
    assert elapsed < 2.0, f"answered in {elapsed:.2f}s"
    assert latencies and max(latencies) < 1.0, f"/metrics took up to {max(latencies):.2f}s"


def test_only_our_pages_are_served(worker):
    port = worker.settings.web_port
    for path in ("/router/", "/table/", "/table/seen_ids/", "/graph/", "/stats/", "/signals/"):
        assert request(port, "GET", path)[0] == 404, path
    assert request(port, "GET", "/")[0] == 200
    assert request(port, "GET", "/metrics")[0] == 200
    status, headers, body = request(port, "GET", "/healthz")
    state = orjson.loads(body)
    assert status == 200 and state["ready"] is True and state["phase"] == "ready" and state["partitions"] > 0
    assert "signalwatch_ready 1.0" in worker.metrics()
    started = [orjson.loads(line) for line in worker.log.read_bytes().splitlines() if line.startswith(b"{")]
    chatter = [x for x in started if "Coordinator" in x["msg"] and x["level"] in ("error", "critical")]
    assert not chatter, "transient coordinator errors at start-up are not error lines"


def test_malformed_http_is_a_400_without_a_traceback(worker):
    before = worker.log.stat().st_size
    for payload in (b"GARBAGE \x00\x01 HTTP/9\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
                    b"POST /news HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
                    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", worker.settings.web_port), timeout=10) as conn:
            conn.sendall(payload)
            assert conn.recv(64).startswith(b"HTTP/1.0 400") or payload.startswith(b"GET /a")
    assert request(worker.settings.web_port, "GET", "/healthz")[0] == 200, "the worker is fine"
    time.sleep(0.5)
    with open(worker.log, "rb") as log:
        log.seek(before)
        lines = [orjson.loads(line) for line in log.read().splitlines() if line.startswith(b"{")]
    assert not [x for x in lines if x["level"] in ("error", "critical") or "exc" in x], lines


def test_the_token_is_required_when_set(strict):
    port = strict.settings.web_port
    value = item()
    status, headers, _ = request(port, "POST", "/news", value, {"Content-Type": "application/json"})
    assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
    status, _, _ = request(port, "POST", "/news", value, {"Content-Type": "application/json",
                                                          "Authorization": "Bearer wrong"})
    assert status == 401
    status, _, body = request(port, "POST", "/news", value, {"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {TOKEN}"})
    assert status == 202, body


def test_a_client_over_its_rate_gets_429_with_retry_after(strict):
    port = strict.settings.web_port
    auth = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {TOKEN}"}
    status, _, body = request(port, "POST", "/news", b"\n".join(item() for _ in range(51)), auth)
    assert status == 413 and b"the limit is 50" in body
    answers = [request(port, "POST", "/news", b"\n".join(item() for _ in range(40)), auth) for _ in range(3)]
    statuses = [a[0] for a in answers]
    assert 429 in statuses and statuses[0] == 202, statuses
    refused = answers[statuses.index(429)]
    assert 1 <= int(refused[1]["Retry-After"]) <= 8 and b"SIGNALWATCH_INGEST_RATE" in refused[2]


def test_slowloris_connections_are_closed_within_the_timeout(strict):
    port, timeout = strict.settings.web_port, strict.settings.http_timeout
    conns = []
    for _ in range(100):
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn.sendall(b"POST /news HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        conns.append(conn)
    started = time.monotonic()
    open_ = set(range(len(conns)))
    while open_ and time.monotonic() - started < timeout + 10:
        for i in list(open_):
            try:
                conns[i].sendall(b"X")  # one header byte at a time, never the end of the headers
            except OSError:
                open_.discard(i)
        time.sleep(0.25)
    elapsed = time.monotonic() - started
    for conn in conns:
        conn.close()
    assert not open_, f"{len(open_)} of 100 slow connections still open after {elapsed:.1f}s"
    assert elapsed < timeout + 5
    # a slow body is cut off too (408), and the port still serves others
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /news HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        answer = conn.recv(64)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    with urllib.request.urlopen(f"{strict.base_url}/healthz", timeout=10) as response:
        assert response.status == 200



def test_a_restarted_worker_says_what_it_waits_for(start_worker):
    """After a kill -9 the group waits for the old member's session to expire before it assigns partitions:
    /healthz, signalwatch_ready and the log (at the default level) say so, then say ready."""
    app_id = f"sw-restart-{uuid.uuid4().hex[:6]}"
    env = {**PIPELINE_ENV, "SIGNALWATCH_LOG_LEVEL": "warning"}
    first = start_worker(app_id=app_id, extra_env=env)
    send_items(first.settings, [{"id": f"restart-{uuid.uuid4().hex}", "text": TALKS}])
    time.sleep(3)
    first.stop(signal.SIGKILL)
    second = start_worker(app_id=app_id, ready=False, extra_env=env)
    phases, deadline = [], time.monotonic() + 150
    while time.monotonic() < deadline:
        assert second.proc.poll() is None, second.log.read_text()[-3000:]
        try:
            status, _, body = request(second.settings.web_port, "GET", "/healthz", timeout=5)
        except OSError:
            time.sleep(0.5)
            continue
        state = orjson.loads(body)
        phases.append(state["phase"])
        if status == 200:
            break
        assert status == 503 and state["ready"] is False and state["reason"]
        assert "signalwatch_ready 0.0" in second.metrics()
        time.sleep(1)
    assert phases and phases[-1] == "ready", phases
    assert "assigning" in phases, f"the wait for the old member shows: {phases}"
    deadline = time.monotonic() + 10  # the log is written by a task that checks every 2 s
    while True:
        log = [orjson.loads(line) for line in second.log.read_bytes().splitlines() if line.startswith(b"{")]
        said = [x["msg"] for x in log if x["logger"] == "signalwatch.startup"]
        if (said and said[-1].startswith("ready (")) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any("waiting for the consumer group to assign partitions" in m for m in said), said
    assert said[-1].startswith("ready ("), said
    assert not [x for x in log if x["level"] == "error"], "no error lines for a normal restart"
