"""POST /news on the worker's web port, the alert feed of the live page (/alerts/recent, SSE) and
`signalwatch tail` filters — on the real broker with a real worker."""

from __future__ import annotations

import http.client
import os
import select
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import orjson

from streams.records import derive_id
from tests.conftest import collect

STRIKE = "Russian forces launched a missile strike on Kharkiv overnight, hitting an apartment block."
TALKS = "The Kremlin said it is ready to hold peace talks with Washington in Riyadh next month."


def post(base: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/news", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def rid() -> str:
    return uuid.uuid4().hex[:10]


def test_one_json_object_is_accepted_with_the_workers_id_and_tagged(worker):
    item = {"title": "Strike on Kharkiv", "text": STRIKE, "url": f"https://example.org/{rid()}/kharkiv?utm_source=x"}
    status, body = post(worker.base_url, orjson.dumps(item))
    assert status == 202, body
    assert body["accepted"] == [derive_id(dict(item))] and body["rejected"] == []
    assert body["accepted"][0].startswith("u-") and body["topic"] == "news.raw"
    tagged = collect(worker.settings, worker.settings.topics.tagged, lambda v: v["id"] == body["accepted"][0], 1)
    assert tagged and tagged[0]["labels"] == ["escalation"]


def test_jsonl_with_some_bad_lines_accepts_the_good_ones_and_lists_the_rest(worker):
    r = rid()
    lines = [orjson.dumps({"id": f"{r}-a", "text": TALKS}), b"{not json", b"[1]",
             orjson.dumps({"id": f"{r}-b", "title": "Talks", "text": TALKS}), b'{"url": "https://example.org/x"}']
    status, body = post(worker.base_url, b"\n".join(lines) + b"\n", "application/x-ndjson")
    assert status == 202, body
    assert body["accepted"] == [f"{r}-a", f"{r}-b"]
    assert [(x["line"], x["reason"]) for x in body["rejected"]] == [(2, "not_json"), (3, "not_object"),
                                                                      (5, "no_text")]
    assert all(x["detail"] for x in body["rejected"])
    tagged = collect(worker.settings, worker.settings.topics.tagged, lambda v: v["id"].startswith(r), 2)
    assert sorted(t["id"] for t in tagged) == [f"{r}-a", f"{r}-b"]


def test_a_json_array_is_a_batch(worker):
    r = rid()
    status, body = post(worker.base_url, orjson.dumps([{"id": f"{r}-1", "text": TALKS}, {"id": f"{r}-2", "text": STRIKE}]))
    assert status == 202 and body["accepted"] == [f"{r}-1", f"{r}-2"]


def test_nothing_valid_is_400_with_a_reason_per_line(worker):
    status, body = post(worker.base_url, b'{"title": 42}\n{oops\n')
    assert status == 400
    assert body["accepted"] == [] and [x["reason"] for x in body["rejected"]] == ["schema", "not_json"]
    status, body = post(worker.base_url, b"  \n")
    assert status == 400 and body["error"] == "empty"


def test_an_item_over_the_item_limit_is_413(worker):
    big = orjson.dumps({"text": "x" * (worker.settings.max_item_bytes + 10)})
    status, body = post(worker.base_url, big)
    assert status == 413 and body["rejected"][0]["reason"] == "too_large"


def test_a_body_over_the_body_limit_is_413_before_it_is_read(worker):
    conn = http.client.HTTPConnection("127.0.0.1", worker.settings.web_port, timeout=10)
    try:
        conn.putrequest("POST", "/news")
        conn.putheader("Content-Type", "application/x-ndjson")
        conn.putheader("Content-Length", str(worker.settings.max_body_bytes + 1))
        conn.endheaders()  # no body is sent: the limit is checked on the header
        response = conn.getresponse()
        assert response.status == 413
        assert "SIGNALWATCH_MAX_BODY_BYTES" in orjson.loads(response.read())["detail"]
    finally:
        conn.close()


def test_alert_page_endpoints_see_alerts_of_posted_items(worker):
    """/alerts/stream delivers the alert live, /alerts/recent keeps it, filters apply."""
    r = rid()
    url = f"https://example.org/{r}/talks"
    received: list[dict] = []

    def listen():
        with urllib.request.urlopen(f"{worker.base_url}/alerts/stream?type=negotiation", timeout=40) as stream:
            event = None
            for line in stream:
                if line.startswith(b"event: "):
                    event = line[7:].strip()
                elif line.startswith(b"data: ") and event == b"alert":
                    alert = orjson.loads(line[6:])
                    received.append(alert)
                    if alert.get("url") == url:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(1.0)  # the stream is open before the item is sent
    status, body = post(worker.base_url, orjson.dumps({"title": "Talks in Riyadh", "text": TALKS, "url": url}))
    assert status == 202
    listener.join(timeout=45)
    ours = [a for a in received if a.get("url") == url]
    assert ours, f"no alert for {url} on /alerts/stream (got {len(received)} others)"
    assert all(a["type"] == "negotiation" for a in received), "the type filter applies"
    alert = ours[0]
    assert alert["item_ids"] == body["accepted"] and alert["evidence"]

    with urllib.request.urlopen(f"{worker.base_url}/alerts/recent?type=negotiation", timeout=10) as response:
        recent = orjson.loads(response.read())
    assert alert["alert_id"] in [a["alert_id"] for a in recent]
    with urllib.request.urlopen(f"{worker.base_url}/alerts/recent?type=escalation", timeout=10) as response:
        assert alert["alert_id"] not in [a["alert_id"] for a in orjson.loads(response.read())]
    with urllib.request.urlopen(f"{worker.base_url}/", timeout=10) as response:
        page = response.read().decode()
    assert response.headers["Content-Type"].startswith("text/html") and "alerts/stream" in page


def read_line(pipe, deadline: float) -> bytes:
    """The next line of ``pipe``, or b"" when none is complete by ``deadline`` (time.monotonic())."""
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([pipe], [], [], left)[0]:
            return b""
        byte = os.read(pipe.fileno(), 1)  # unbuffered, so select() sees every byte not yet read
        if not byte:
            return line
        line += byte
    return line


def test_tail_filters_on_live_alerts(worker):
    r = rid()
    item = {"title": "Strike on Kharkiv", "text": STRIKE, "url": f"https://example.org/{r}/strike"}

    def start(*args):
        return subprocess.Popen([sys.executable, "-m", "streams.cli", "tail", *args], env=worker.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    wanted = start("--json", "--type", "escalation", "--actor", "russia", "--category", "missile_strike")
    other = start("--json", "--category", "ceasefire")
    human = start("--type", "escalation", "--min-severity", "high")
    try:
        for proc in (wanted, other, human):  # each reader has its positions before the item is sent
            ready = read_line(proc.stderr, time.monotonic() + 60)
            assert ready.startswith(b"following "), ready
        status, body = post(worker.base_url, orjson.dumps(item))
        assert status == 202
        item_id = body["accepted"][0]
        got = None
        deadline = time.monotonic() + 45
        while got is None and time.monotonic() < deadline:
            line = read_line(wanted.stdout, deadline)
            if not line:
                break
            alert = orjson.loads(line)
            if item_id in alert["item_ids"]:
                got = alert
        assert got and got["type"] == "escalation" and "missile_strike" in got["categories"]
        time.sleep(2)
    finally:
        for proc in (wanted, other, human):
            proc.terminate()
    other_out = other.communicate(timeout=10)[0]
    assert item_id.encode() not in other_out, "the category filter hides the alert"
    human_out = human.communicate(timeout=10)[0].decode()
    assert got["summary"].split(" — ")[0] in human_out and "example.org" in human_out
    assert "{" not in human_out.splitlines()[0], "people get readable lines, not JSON"
