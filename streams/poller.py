"""``signalwatch feed poll``: RSS/Atom feeds into ``news.raw``, each entry once.

For every feed URL the poller keeps, in a small JSON state file (default
``<data_dir>/poller/state.json``), the ``ETag`` and ``Last-Modified`` of the last answer (sent back as
``If-None-Match`` / ``If-Modified-Since``, so an unchanged feed costs a ``304``), the keys of the entries
it has sent (guid, link and item id — a bounded list per feed) and its failure count. After an error
(network, HTTP 4xx/5xx, not a feed) the feed is retried with exponential back-off, capped at
:data:`MAX_BACKOFF` seconds.

Entries are sent, the producer flushed, and only then recorded as sent and the state saved: a crash in
between sends an entry again with the same id (the worker drops it as a duplicate), never loses one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streams import __version__
from streams.feeds import FeedError, _checked, encode, entry_key, entry_to_item, parse_feed_document
from streams.records import InvalidItem

MAX_BACKOFF = 3600.0
"""Longest wait between two attempts on a failing feed, in seconds."""
KEEP_KEYS = 5000
"""Entry keys remembered per feed (a feed lists its latest entries; older keys are forgotten)."""
USER_AGENT = f"signalwatch/{__version__} (+feed poller)"


@dataclass
class FeedState:
    """What the poller remembers about one feed."""

    etag: str | None = None
    last_modified: str | None = None
    sent: list[str] = field(default_factory=list)
    failures: int = 0
    last_error: str | None = None
    next_poll: float = 0.0


@dataclass
class PollResult:
    """The outcome of one poll of one feed."""

    url: str
    status: int | None = None
    new: int = 0
    seen: int = 0
    rejected: int = 0
    error: str | None = None
    retry_in: float | None = None

    def describe(self) -> str:
        """One line for the terminal."""
        if self.error:
            return f"{self.url}: {self.error}; retry in {self.retry_in:.0f}s"
        if self.status == 304:
            return f"{self.url}: not modified"
        return f"{self.url}: {self.new} new, {self.seen} already sent, {self.rejected} rejected"


def backoff(interval: float, failures: int) -> float:
    """Seconds before the next attempt after ``failures`` consecutive errors."""
    if failures <= 0:
        return interval
    return min(interval * 2 ** failures, max(MAX_BACKOFF, interval))


class StateFile:
    """The poller's state: ``{"feeds": {url: FeedState}}`` in a JSON file, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.feeds: dict[str, FeedState] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.feeds = {url: FeedState(**state) for url, state in data.get("feeds", {}).items()}
            except (ValueError, TypeError) as exc:
                raise FeedError(f"{self.path}: unreadable poller state ({exc}); move it away to start afresh") \
                    from None

    def feed(self, url: str) -> FeedState:
        """The state of ``url`` (new and empty the first time)."""
        return self.feeds.setdefault(url, FeedState())

    def save(self) -> None:
        """Write the state (a temporary file renamed over the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"feeds": {u: asdict(s) for u, s in self.feeds.items()}}, indent=1))
        os.replace(tmp, self.path)


class Poller:
    """Polls feeds and hands new items to ``send(key, value)``; ``flush()`` must make them durable."""

    def __init__(self, state: StateFile, send: Callable[[bytes, bytes], None], flush: Callable[[], None],
                 *, interval: float = 300.0, timeout: float = 20.0, max_item_bytes: int = 1024 * 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.send = send
        self.flush = flush
        self.interval = interval
        self.timeout = timeout
        self.max_item_bytes = max_item_bytes
        self.clock = clock

    def fetch(self, url: str, feed: FeedState) -> tuple[int, bytes, Any]:
        """(status, body, headers) of a conditional GET; 304 has an empty body."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/rss+xml, application/atom+xml, "
                   "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status or 200, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return 304, b"", exc.headers
            raise

    def poll(self, url: str) -> PollResult:
        """Poll one feed now: send its new entries, update and save the state."""
        feed = self.state.feed(url)
        result = PollResult(url)
        try:
            status, body, headers = self.fetch(url, feed)
            result.status = status
            if status != 304:
                parsed = parse_feed_document(body, url)
                sent = set(feed.sent)
                keys: list[str] = []
                for entry in parsed.entries:
                    item = entry_to_item(entry, parsed.feed, url)
                    try:
                        item = _checked(item, self.max_item_bytes)
                    except InvalidItem:
                        result.rejected += 1
                        keys.append(entry_key(entry))
                        continue
                    entry_keys = [k for k in (entry_key(entry), item.get("url"), item["id"]) if k]
                    if any(k in sent for k in entry_keys):
                        result.seen += 1
                        continue
                    self.send(*encode(item))
                    keys += entry_keys
                    sent.update(entry_keys)
                    result.new += 1
                if result.new:
                    self.flush()
                feed.sent = (feed.sent + [k for k in keys if k not in feed.sent])[-KEEP_KEYS:]
            feed.etag = headers.get("ETag") or feed.etag  # an email.message.Message: case-insensitive
            feed.last_modified = headers.get("Last-Modified") or feed.last_modified
            feed.failures = 0
            feed.last_error = None
            feed.next_poll = self.clock() + self.interval
        except (urllib.error.URLError, OSError, FeedError, ValueError) as exc:
            feed.failures += 1
            if isinstance(exc, urllib.error.HTTPError):
                feed.last_error = f"HTTP {exc.code} {exc.reason}"
            elif isinstance(exc, urllib.error.URLError):
                feed.last_error = f"cannot reach the feed ({exc.reason})"
            else:
                feed.last_error = str(exc)
            result.error = feed.last_error
            result.retry_in = backoff(self.interval, feed.failures)
            feed.next_poll = self.clock() + result.retry_in
        self.state.save()
        return result

    def run(self, urls: list[str], *, once: bool = False, report: Callable[[PollResult], None] = print,
            stopped: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep
            ) -> list[PollResult]:
        """Poll ``urls`` (each when due) until ``stopped()``; with ``once``, poll each one now and return
        the results (the long-running mode only reports them)."""
        results: list[PollResult] = []
        if once:
            for url in urls:
                results.append(self.poll(url))
                report(results[-1])
            return results
        while not stopped():
            now = self.clock()
            for url in urls:
                if stopped():
                    break
                if self.state.feed(url).next_poll <= now:
                    report(self.poll(url))
            due = min(self.state.feed(u).next_poll for u in urls)
            with contextlib.suppress(KeyboardInterrupt):
                sleep(max(0.05, min(1.0, due - self.clock())))
        return results
