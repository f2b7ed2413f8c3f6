"""HTTP on the worker's web port: ``POST /news`` ingest and the live alert page.

Endpoints:

``POST /news``
    A JSON object, a JSON array of objects, or JSONL (one object a line), sent as ``application/json``,
    ``application/x-ndjson`` or ``application/jsonl``. Each item is validated as the worker does
    (:func:`streams.records.parse_item`) and produced to ``news.raw`` keyed by its id through the Faust
    app's producer, in chunks of :data:`CHUNK_ITEMS`: parsing runs in a thread and each chunk waits for
    the broker's acks before the next, so one large request neither blocks the event loop nor floods the
    topic. Answers (all JSON):

    * ``202 {"accepted": [ids], "rejected": [...], "topic": "news.raw"}`` when at least one item is valid;
      the rejected lines (if any) are listed as ``{"line", "reason", "detail"}`` — a partly valid batch
      is accepted, so a client retries only the lines it got back;
    * ``400`` with the same shape (``accepted`` empty) and ``error`` when no item is valid;
    * ``401`` without ``Authorization: Bearer <SIGNALWATCH_INGEST_TOKEN>`` when a token is set;
    * ``403`` for a request from another web origin (a browser page elsewhere: ``Origin`` or
      ``Sec-Fetch-Site``), or, without a token, a ``Host`` that is not this machine (DNS rebinding);
    * ``408`` when the body does not arrive within ``http_timeout`` seconds;
    * ``413`` when the body is over ``max_body_bytes`` or holds more than ``max_request_items`` items, or
      when every rejected item was over ``max_item_bytes`` (a single too-large item);
    * ``415`` for another content type (``text/plain`` and forms are what a page may send anywhere);
    * ``429`` with ``Retry-After`` when the client (by address) posts more than ``ingest_rate`` items a
      second on average (up to ``max_request_items`` at once);
    * ``503`` when the broker does not acknowledge the items: the ``accepted`` ids were sent, the rest
      were not (retry the request: ids the worker has seen are dropped as duplicates).

``GET /healthz``
    ``200`` when the worker has partitions and has recovered its tables, else ``503``; the body says which
    phase it is in and how far recovery is (:mod:`streams.health`).

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
``GET /talks?state=…&limit=N``
    The negotiation threads (``streams.talks.stream.thread_row``), most recently updated first: those of
    the worker that holds the story shard (the others answer ``[]``).

Nothing else is served: Faust's own views (``/router/``, ``/table/``, ``/graph/``, ``/stats/``, its index)
show internal topology and are removed. A client has ``http_timeout`` seconds to send its request headers
(slow or idle connections are closed), and a malformed request is an info line, not an error with a
traceback.

Every worker sees every alert: :class:`AlertHub` reads the alert topics with its own group-less
consumer, assigned to all partitions, starting a few records before the end of each partition (so a
fresh page has recent alerts) — not through the worker's consumer group, which would give each worker
only some partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web as aioweb
from aiohttp.http_exceptions import HttpProcessingError
from faust import web as faust_web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import health
from streams.records import InvalidItem, parse_item
from streams.settings import ALERT_TYPES, SEVERITIES, Settings, SettingsError
from streams.talks.stream import thread_row

log = logging.getLogger("signalwatch.web")

STATIC_DIR = Path(__file__).resolve().parent / "webui"
"""The page's static files (package data: ``webui/*``)."""

KEEPALIVE_SECONDS = 15.0
SUBSCRIBER_QUEUE = 256
METADATA_REFRESH = 30.0
"""Seconds between checks for new alert partitions (a topic created after the worker started)."""
SEND_TIMEOUT = 30.0
INGEST_TYPES = ("application/json", "application/x-ndjson", "application/jsonl")
"""Content types ``POST /news`` accepts; a browser cannot send these to another origin without asking (CORS)."""
CHUNK_ITEMS = 500
"""Items parsed (in a thread) and produced (then acknowledged) at a time by ``POST /news``."""
INGEST_CONCURRENCY = 4
"""``POST /news`` requests processed at once; others wait (bounded memory under many clients)."""
RATE_CLIENTS = 10_000
"""Clients whose ingest rate is remembered (the least recently seen are forgotten first)."""
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


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


def _json_array(stripped: bytes) -> list | None:
    """The values of a body that is one JSON array, else None."""
    if not stripped.startswith(b"["):
        return None
    with contextlib.suppress(orjson.JSONDecodeError):
        values = orjson.loads(stripped)
        if isinstance(values, list):
            return values
    return None


def _one_pretty_object(stripped: bytes) -> bool:
    """Whether a multi-line body is one pretty-printed JSON object (fails at once if it is not)."""
    if not (stripped.startswith(b"{") and b"\n" in stripped):
        return False
    with contextlib.suppress(orjson.JSONDecodeError):
        return isinstance(orjson.loads(stripped), dict)
    return False


def split_body(body: bytes) -> list[tuple[int, bytes]]:
    """(line number, bytes) of each item in a request body: one JSON object, a JSON array, or JSONL."""
    stripped = body.strip()
    if (values := _json_array(stripped)) is not None:
        return [(i, orjson.dumps(v)) for i, v in enumerate(values, 1)]
    if _one_pretty_object(stripped):
        return [(1, stripped)]
    return [(n, line.strip()) for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]


def count_items(body: bytes) -> int:
    """How many items a body holds at most, without splitting it: the elements of a JSON array, else the
    lines (blank ones included: a bound, in C time, so a huge body is refused at once)."""
    stripped = body.strip()
    if (values := _json_array(stripped)) is not None:
        return len(values)
    if _one_pretty_object(stripped):
        return 1
    return stripped.count(b"\n") + 1 if stripped else 0


def check_items(entries: list[tuple[int, bytes]], max_item_bytes: int) -> tuple[list[dict], list[dict]]:
    """Validate items (as :func:`split_body` gives them); return (valid items, rejected ``{line, reason, detail}``)."""
    accepted, rejected = [], []
    for line, raw in entries:
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


class RateLimiter:
    """A token bucket per client: ``rate`` items a second on average, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: float, clients: int = RATE_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clients, self.clock = rate, burst, clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)

    def _tokens(self, client: str, now: float) -> float:
        tokens, then = self._buckets.get(client, (self.burst, now))
        return min(self.burst, tokens + (now - then) * self.rate)

    def take(self, client: str, n: int) -> float:
        """Take ``n`` items' worth for ``client`` and return 0, or return the seconds until it could (nothing
        taken). ``n=0`` asks whether the client may send at all (one item's worth left)."""
        now = self.clock()
        tokens = self._tokens(client, now)
        need = max(n, 1)
        if tokens < need:
            return (need - tokens) / self.rate
        self._buckets[client] = (tokens - n, now)
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.clients:
            self._buckets.popitem(last=False)
        return 0.0


def cross_origin(request: aioweb.Request) -> bool:
    """Whether a browser sent the request from a page of another origin (``Sec-Fetch-Site``, else
    ``Origin``; clients that are no browser send neither)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and origin != f"{request.scheme}://{request.host}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without port) is this machine only."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(request: aioweb.Request) -> str:
    host = request.host or ""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_exposure(settings: Settings) -> None:
    """Refuse to serve ``POST /news`` beyond this machine without a token: anyone who reaches the port could
    inject items and so alerts."""
    if not is_loopback(settings.web_host) and not settings.ingest_token:
        raise SettingsError(
            f"SIGNALWATCH_WEB_HOST={settings.web_host} serves POST /news beyond this machine: set "
            "SIGNALWATCH_INGEST_TOKEN to a long random secret (clients send Authorization: Bearer <token>), "
            "or bind to 127.0.0.1")


class _ServerLog(logging.LoggerAdapter):
    """aiohttp's server logger, but a client's malformed request is one info line, not an error with a
    traceback (the client made the mistake; the worker is fine)."""

    def exception(self, msg, *args, exc_info=True, **kwargs) -> None:  # type: ignore[override]
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError | ConnectionError):
            self.info("bad request from a client: %s", str(exc).strip() or type(exc).__name__)
        else:
            self.error(msg, *args, exc_info=exc_info, **kwargs)


def _harden_server(app, settings: Settings) -> None:
    """Only our views on the web port, a header (and keep-alive) timeout, quiet client mistakes."""
    from aiohttp.web_runner import AppRunner

    app.web.blueprints._enabled.clear()  # Faust's /router/, /table/, /graph/, /stats/ and its "/" index
    # aiohttp closes a connection without a complete request after keepalive_timeout (counted from the
    # connection's start, and again after each response): the header timeout against slow clients. The
    # Faust driver builds its runner without options, so it is replaced before the server starts.
    app.web._runner = AppRunner(app.web.web_app, access_log=None, keepalive_timeout=settings.http_timeout,
                                logger=_ServerLog(logging.getLogger("signalwatch.web.server"), {}))


# ---------------------------------------------------------------- install
def install(app, settings: Settings, metrics=None) -> None:
    """Add ``GET /metrics`` (``metrics``' registry), ``POST /news``, the live alert page and its alert reader to
    a Faust app (see the module doc)."""
    check_exposure(settings)
    hub = AlertHub(settings.alert_buffer)
    app.alert_hub = hub
    raw_topic = app.topic(settings.topics.raw, value_type=bytes, key_type=bytes,
                          value_serializer="raw", key_serializer="raw")
    _harden_server(app, settings)
    readiness = health.install(app, metrics) if metrics is not None else None
    limiter = RateLimiter(settings.ingest_rate, settings.max_request_items)
    ingesting = asyncio.Semaphore(INGEST_CONCURRENCY)

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

    def _refuse(status: int, reason: str, detail: str, **headers: str) -> aioweb.Response:
        if metrics is not None:
            metrics.ingest_refused.labels(str(status)).inc()
        response = _error(status, reason, detail)
        response.headers.update(headers)
        return response

    def _gatekeeper(request: aioweb.Request) -> aioweb.Response | None:
        """401 / 403 / 415 / 429 before the body is read, or None."""
        if settings.ingest_token:
            given = request.headers.get("Authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                     settings.ingest_token.encode()):
                return _refuse(401, "unauthorized", "send Authorization: Bearer <SIGNALWATCH_INGEST_TOKEN>",
                               **{"WWW-Authenticate": "Bearer"})
        elif not is_loopback(_host_name(request)):
            return _refuse(403, "forbidden", f"Host {request.host!r} is not this machine: use http://127.0.0.1:"
                                             f"{settings.web_port}, or set SIGNALWATCH_INGEST_TOKEN")
        if cross_origin(request):
            return _refuse(403, "cross_origin", "POST /news does not take requests from pages of other origins")
        if request.content_type not in INGEST_TYPES:
            return _refuse(415, "unsupported_media_type",
                           f"Content-Type {request.content_type!r}: send {', '.join(INGEST_TYPES)}")
        wait = limiter.take(request.remote or "?", 0)
        if wait:
            return _too_fast(wait)
        return None

    def _too_fast(wait: float) -> aioweb.Response:
        return _refuse(429, "too_many_requests",
                       f"over {settings.ingest_rate:g} items a second from this client: retry after "
                       f"{math.ceil(wait)} s (SIGNALWATCH_INGEST_RATE)", **{"Retry-After": str(math.ceil(wait))})

    class News(faust_web.View):
        async def post(self, request):
            refused = _gatekeeper(request)
            if refused is not None:
                return refused
            try:
                body = await asyncio.wait_for(_read_capped(request, settings.max_body_bytes), settings.http_timeout)
            except asyncio.TimeoutError:
                return _refuse(408, "timeout", f"the body did not arrive within {settings.http_timeout:g} s")
            if body is None:
                return _refuse(413, "too_large", f"the request body is over {settings.max_body_bytes} bytes: "
                                                 "split it, or raise SIGNALWATCH_MAX_BODY_BYTES")
            if not body.strip():
                return _refuse(400, "empty", "send a JSON object, an array of objects or JSONL lines")
            async with ingesting:
                count = await asyncio.to_thread(count_items, body)
                if count > settings.max_request_items:
                    return _refuse(413, "too_many_items",
                                   f"{count} items in one request; the limit is {settings.max_request_items}: "
                                   "split it, or raise SIGNALWATCH_MAX_REQUEST_ITEMS")
                entries = await asyncio.to_thread(split_body, body)
                del body
                wait = limiter.take(request.remote or "?", len(entries))
                if wait:
                    return _too_fast(wait)
                return await _ingest(entries)

    async def _ingest(entries: list[tuple[int, bytes]]) -> aioweb.Response:
        """Validate and produce ``entries`` a chunk at a time: the next chunk is parsed (in a thread) while the
        broker acknowledges the previous one, never more than two chunks in flight."""
        result: dict = {"accepted": [], "rejected": [], "topic": raw_topic.get_topic_name()}
        in_flight: list[tuple[list[str], list]] = []
        try:
            for start in range(0, len(entries), CHUNK_ITEMS):
                items, rejected = await asyncio.to_thread(check_items, entries[start:start + CHUNK_ITEMS],
                                                          settings.max_item_bytes)
                result["rejected"] += rejected
                in_flight.append(([i["id"] for i in items], [
                    await raw_topic.send(key=i["id"].encode(), value=orjson.dumps(i)) for i in items]))
                if len(in_flight) > 1:
                    await _acknowledged(in_flight.pop(0), result)
            while in_flight:
                await _acknowledged(in_flight.pop(0), result)
        except Exception as exc:
            log.warning("POST /news: producing failed: %r", exc)
            if metrics is not None:
                metrics.ingest_refused.labels("503").inc()
            result.update(error="unavailable", detail=f"the broker did not take the items ({exc!r}): the "
                          "accepted ones were sent, retry the request later for the rest")
            return aioweb.Response(status=503, content_type="application/json", body=orjson.dumps(result))
        if not result["accepted"]:
            too_large = all(r["reason"] == "too_large" for r in result["rejected"])
            result["error"] = "too_large" if too_large else "no valid item"
            status = 413 if too_large else 400
            if metrics is not None:
                metrics.ingest_refused.labels(str(status)).inc()
            return aioweb.Response(status=status, content_type="application/json", body=orjson.dumps(result))
        return aioweb.Response(status=202, content_type="application/json", body=orjson.dumps(result))

    async def _acknowledged(chunk: tuple[list[str], list], result: dict) -> None:
        ids, futures = chunk
        await asyncio.wait_for(asyncio.gather(*futures), SEND_TIMEOUT)
        result["accepted"] += ids

    class Health(faust_web.View):
        async def get(self, request):
            state = readiness.check()
            return aioweb.Response(status=200 if state.ready else 503, content_type="application/json",
                                   body=orjson.dumps(state.as_dict()), headers={"Cache-Control": "no-cache"})

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

    class Talks(faust_web.View):
        """The negotiation threads, newest first (the worker that holds the story shard has them)."""

        async def get(self, request):
            book = getattr(app, "talks", None)
            state = request.query.get("state") or None
            rows = [thread_row(t, book.rules) for t in book.threads() if state in (None, t["state"])] if book else []
            return aioweb.Response(content_type="application/json",
                                   body=orjson.dumps(rows[:_int(request, "limit", 200)]),
                                   headers={"Cache-Control": "no-cache"})

    class Metrics(faust_web.View):
        async def get(self, request):
            return aioweb.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    if metrics is not None:
        app.page("/metrics", name="metrics")(Metrics)
        app.page("/healthz", name="healthz")(Health)
    app.page("/", name="alert_page")(Index)
    app.page("/news", name="news_ingest")(News)
    app.page("/alerts/recent", name="alerts_recent")(Recent)
    app.page("/alerts/stream", name="alerts_stream")(Stream)
    app.page("/talks", name="talks")(Talks)

    async def _close_streams(_web_app) -> None:
        hub.close()

    app.web.web_app.on_shutdown.append(_close_streams)

    @app.task
    async def alert_reader() -> None:
        await read_alerts(hub, settings, settings.topics.alerts())


def _event(alert: dict) -> bytes:
    alert_id = str(alert.get("alert_id", "")).replace("\n", " ")
    return b"id: " + alert_id.encode() + b"\nevent: alert\ndata: " + orjson.dumps(alert) + b"\n\n"
