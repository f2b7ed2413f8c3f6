"""HTTP on the worker's web port: ``POST /news`` ingest and the live alert page.

Endpoints:

``POST /news``
    A JSON object, a JSON array of objects, or JSONL (one object a line). Each item is validated as the
    worker does (:func:`streams.records.parse_item`) and produced to ``news.raw`` keyed by its id through
    the Faust app's producer. Answers (all JSON):

    * ``202 {"accepted": [ids], "rejected": [...], "topic": "news.raw"}`` when at least one item is valid;
      the rejected lines (if any) are listed as ``{"line", "reason", "detail"}`` — a partly valid batch
      is accepted, so a client retries only the lines it got back;
    * ``400`` with the same shape (``accepted`` empty) and ``error`` when no item is valid;
    * ``413`` when the body is over ``max_body_bytes``, or when every rejected item was over
      ``max_item_bytes`` (a single too-large item);
    * ``503`` when the broker does not acknowledge the items (retry later).

``GET /metrics``
    Prometheus text format of the worker's own registry (``signalwatch_*``; Faust's monitor is not installed).
``GET /``
    The live alert page (``streams/webui/index.html``, no build step).
``GET /alerts/recent?type=…&min_severity=…&limit=N``
    The most recent alerts (newest first) from a ring buffer of ``alert_buffer`` alerts.
``GET /alerts/stream?type=…&min_severity=…&backlog=N``
    Server-sent events: ``event: alert`` with the alert as JSON data and its ``alert_id`` as event id;
    first up to N recent alerts (oldest first), then ``event: ready``, then live ones; a comment line
    every 15 s keeps proxies from closing the stream.

Every worker sees every alert: :class:`AlertHub` reads the alert topics with its own group-less
consumer, assigned to all partitions, starting a few records before the end of each partition (so a
fresh page has recent alerts) — not through the worker's consumer group, which would give each worker
only some partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web as aioweb
from faust import web as faust_web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.records import InvalidItem, parse_item
from streams.settings import ALERT_TYPES, SEVERITIES, Settings

log = logging.getLogger("signalwatch.web")

STATIC_DIR = Path(__file__).resolve().parent / "webui"
"""The page's static files (package data: ``webui/*``)."""

KEEPALIVE_SECONDS = 15.0
SUBSCRIBER_QUEUE = 256
METADATA_REFRESH = 30.0
"""Seconds between checks for new alert partitions (a topic created after the worker started)."""
SEND_TIMEOUT = 30.0


# ---------------------------------------------------------------- alert fan-out
class AlertHub:
    """Recent alerts (a bounded buffer, one entry per ``alert_id``) and the live subscribers to fan out to."""

    def __init__(self, size: int = 200) -> None:
        self.size = size
        self._recent: OrderedDict[str, dict] = OrderedDict()
        self._subscribers: set[asyncio.Queue] = set()
        self.closed = False

    def publish(self, alert: dict) -> bool:
        """Add an alert and hand it to every subscriber; ``False`` for a repeat of a buffered alert."""
        key = str(alert.get("alert_id") or id(alert))
        if key in self._recent:
            return False
        self._recent[key] = alert
        while len(self._recent) > self.size:
            self._recent.popitem(last=False)
        for queue in list(self._subscribers):
            if queue.full():  # a slow client loses its oldest alerts, never blocks the others
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(alert)
        return True

    def recent(self, limit: int | None = None, **filters: Any) -> list[dict]:
        """Buffered alerts that pass ``filters`` (see :func:`matches`), newest first."""
        alerts = sorted(self._recent.values(), key=lambda a: str(a.get("created_at", "")), reverse=True)
        alerts = [a for a in alerts if matches(a, **filters)]
        return alerts[:limit] if limit is not None else alerts

    def subscribe(self) -> asyncio.Queue:
        """A queue that receives every alert published from now on, and ``None`` when the hub closes."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        if self.closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        """Stop delivering to ``queue``."""
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        """Number of live subscribers (open event streams)."""
        return len(self._subscribers)

    def close(self) -> None:
        """End every event stream (the web server waits for open requests when it stops)."""
        self.closed = True
        for queue in list(self._subscribers):
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)


def matches(alert: dict, types: Iterable[str] = (), min_severity: str | None = None) -> bool:
    """Whether an alert is of one of ``types`` (any when empty) and at least ``min_severity``."""
    types = tuple(types)
    if types and alert.get("type") not in types:
        return False
    if min_severity in SEVERITIES:
        severity = alert.get("severity")
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
        if rank < SEVERITIES.index(min_severity):
            return False
    return True


async def read_alerts(hub: AlertHub, settings: Settings, topics: list[str]) -> None:
    """Feed ``hub`` from ``topics`` with a group-less consumer on all partitions, until cancelled.

    At start each partition is read from ``backlog`` records before its end, so the buffer holds recent
    alerts; partitions that appear later (a topic created afterwards) are read from their beginning.
    Broker errors are logged and retried with back-off.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    first_round = True
    positions: dict = {}
    delay = 1.0
    while True:
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, client_id="signalwatch-alert-page",
                                    auto_offset_reset="latest", **settings.aiokafka_client_options())
        try:
            await consumer.start()
            assigned: set = set()
            next_check = 0.0
            while True:
                if time.monotonic() >= next_check:
                    # Metadata of every topic: a consumer without a subscription does not fetch it by itself.
                    cluster = await consumer._client.fetch_all_metadata()
                    wanted = {TopicPartition(t, p) for t in topics for p in (cluster.partitions_for_topic(t) or ())}
                    missing = [t for t in topics if not cluster.partitions_for_topic(t)]
                    next_check = time.monotonic() + (5.0 if missing else METADATA_REFRESH)
                    new = wanted - assigned
                    if new:
                        for tp in assigned:
                            positions[tp] = await consumer.position(tp)
                        consumer.assign(sorted(wanted))
                        begins = await consumer.beginning_offsets(sorted(new))
                        ends = await consumer.end_offsets(sorted(new))
                        backlog = math.ceil(hub.size / max(1, len(wanted))) if first_round else None
                        for tp in sorted(wanted):
                            if tp in positions:
                                consumer.seek(tp, positions[tp])
                            elif backlog is not None:
                                consumer.seek(tp, max(begins[tp], ends[tp] - backlog))
                            else:
                                consumer.seek(tp, begins[tp])
                        assigned = wanted
                        first_round = False
                if not assigned:
                    await asyncio.sleep(1.0)
                    continue
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        positions[tp] = record.offset + 1
                        try:
                            alert = orjson.loads(record.value)
                        except (orjson.JSONDecodeError, TypeError):
                            continue
                        if isinstance(alert, dict):
                            hub.publish(alert)
                delay = 1.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker went away: keep the page up and retry
            log.warning("alert reader: %r; retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


# ---------------------------------------------------------------- POST /news
def _error(status: int, reason: str, detail: str) -> aioweb.Response:
    return aioweb.Response(status=status, content_type="application/json",
                           body=orjson.dumps({"error": reason, "detail": detail}))


def split_body(body: bytes) -> list[tuple[int, bytes]]:
    """(line number, bytes) of each item in a request body: one JSON object, a JSON array, or JSONL."""
    stripped = body.strip()
    if stripped.startswith(b"["):
        try:
            values = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            values = None
        if isinstance(values, list):
            return [(i, orjson.dumps(v)) for i, v in enumerate(values, 1)]
    if stripped.startswith(b"{") and b"\n" in stripped:
        try:  # a pretty-printed single object
            if isinstance(orjson.loads(stripped), dict):
                return [(1, stripped)]
        except orjson.JSONDecodeError:
            pass
    return [(n, line.strip()) for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]


def check_items(body: bytes, max_item_bytes: int) -> tuple[list[dict], list[dict]]:
    """Validate every item of a body; return (valid items, rejected ``{line, reason, detail}``)."""
    accepted, rejected = [], []
    for line, raw in split_body(body):
        try:
            accepted.append(parse_item(raw, max_item_bytes))
        except InvalidItem as exc:
            rejected.append({"line": line, "reason": exc.reason, "detail": exc.detail})
    return accepted, rejected


async def _read_capped(request: aioweb.Request, cap: int) -> bytes | None:
    """The request body, or ``None`` as soon as it is over ``cap`` bytes."""
    if request.content_length is not None and request.content_length > cap:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------- install
def install(app, settings: Settings, metrics=None) -> None:
    """Add ``GET /metrics`` (``metrics``' registry), ``POST /news``, the live alert page and its alert reader to
    a Faust app (see the module doc)."""
    hub = AlertHub(settings.alert_buffer)
    app.alert_hub = hub
    raw_topic = app.topic(settings.topics.raw, value_type=bytes, key_type=bytes,
                          value_serializer="raw", key_serializer="raw")
    # Faust serves {"status": "OK"} at "/" (its production index); the alert page takes "/" instead.
    manager = app.web.blueprints
    manager._enabled = [(prefix, bp) for prefix, bp in manager._enabled
                        if "production_index" not in str(bp)]

    def _filters(request: aioweb.Request) -> dict:
        types = [t for v in request.query.getall("type", []) for t in v.split(",") if t in ALERT_TYPES]
        severity = request.query.get("min_severity")
        return {"types": types, "min_severity": severity if severity in SEVERITIES else None}

    def _int(request: aioweb.Request, name: str, default: int) -> int:
        try:
            return max(0, min(int(request.query.get(name, default)), settings.alert_buffer))
        except ValueError:
            return default

    class Index(faust_web.View):
        async def get(self, request):
            return aioweb.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    class News(faust_web.View):
        async def post(self, request):
            body = await _read_capped(request, settings.max_body_bytes)
            if body is None:
                return _error(413, "too_large", f"the request body is over {settings.max_body_bytes} bytes: "
                                                "split it, or raise SIGNALWATCH_MAX_BODY_BYTES")
            if not body.strip():
                return _error(400, "empty", "send a JSON object, an array of objects or JSONL lines")
            items, rejected = check_items(body, settings.max_item_bytes)
            result = {"accepted": [i["id"] for i in items], "rejected": rejected, "topic": raw_topic.get_topic_name()}
            if not items:
                too_large = all(r["reason"] == "too_large" for r in rejected)
                result["error"] = "too_large" if too_large else "no valid item"
                return aioweb.Response(status=413 if too_large else 400, content_type="application/json",
                                       body=orjson.dumps(result))
            try:
                futures = [await raw_topic.send(key=i["id"].encode(), value=orjson.dumps(i)) for i in items]
                await asyncio.wait_for(asyncio.gather(*futures), SEND_TIMEOUT)
            except Exception as exc:
                log.warning("POST /news: producing failed: %r", exc)
                return _error(503, "unavailable", f"the broker did not take the items ({exc!r}); retry later")
            return aioweb.Response(status=202, content_type="application/json", body=orjson.dumps(result))

    class Recent(faust_web.View):
        async def get(self, request):
            alerts = hub.recent(_int(request, "limit", settings.alert_buffer), **_filters(request))
            return aioweb.Response(content_type="application/json", body=orjson.dumps(alerts),
                                   headers={"Cache-Control": "no-cache"})

    class Stream(faust_web.View):
        async def get(self, request):
            filters = _filters(request)
            response = aioweb.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            await response.prepare(request)
            queue = hub.subscribe()
            try:
                await response.write(b"retry: 3000\n: connected\n\n")
                for alert in reversed(hub.recent(_int(request, "backlog", 0), **filters)):
                    await response.write(_event(alert))
                await response.write(b"event: ready\ndata: {}\n\n")  # backlog done: what follows is live
                while True:
                    try:
                        alert = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except asyncio.TimeoutError:
                        await response.write(b": keep-alive\n\n")
                        continue
                    if alert is None:
                        break
                    if matches(alert, **filters):
                        await response.write(_event(alert))
            except (ConnectionResetError, RuntimeError):  # the browser went away
                pass
            finally:
                hub.unsubscribe(queue)
            return response

    class Metrics(faust_web.View):
        async def get(self, request):
            return aioweb.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    if metrics is not None:
        app.page("/metrics", name="metrics")(Metrics)
    app.page("/", name="alert_page")(Index)
    app.page("/news", name="news_ingest")(News)
    app.page("/alerts/recent", name="alerts_recent")(Recent)
    app.page("/alerts/stream", name="alerts_stream")(Stream)

    async def _close_streams(_web_app) -> None:
        hub.close()

    app.web.web_app.on_shutdown.append(_close_streams)

    @app.task
    async def alert_reader() -> None:
        await read_alerts(hub, settings, settings.topics.alerts())


def _event(alert: dict) -> bytes:
    alert_id = str(alert.get("alert_id", "")).replace("\n", " ")
    return b"id: " + alert_id.encode() + b"\nevent: alert\ndata: " + orjson.dumps(alert) + b"\n\n"
