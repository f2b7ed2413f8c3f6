"""The process stage's work on a batch of news.raw messages, with no Kafka in it: parse, validate, id, tag,
sketch, event key, attribute and candidate alerts for each message (:func:`process_item`), the accepted ones
joined into news.processed records, the rejected ones named with their reason (:func:`process_batch`).

:class:`ProcessPool` runs it in helper processes beside the worker (``SIGNALWATCH_PROCESS_HELPERS``): the
per-item work is most of a worker's CPU, and in a helper it runs on another core while the worker's own
process consumes Kafka and runs the story shard. Only bytes cross between them: the messages' values in,
the records out. A helper that dies stops the worker without committing (:func:`streams.stages.stop_worker`);
the restarted worker reads the batch again.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from streams.alerting import build_alerts, corroborated
from streams.analytics.dedup import Features
from streams.analytics.event_identity import EventKey, event_key
from streams.analytics.shard import Entry, Tagged, batch_records, trend_record
from streams.records import InvalidItem, parse_item, tagged_item
from streams.settings import Settings
from streams.sources import SourceRegistry, default_registry, is_unknown
from streams.tagging import load_tagger
from streams.talks.rules import load_rules
from streams.talks.tracker import negotiation_signals, read_text


def process_item(raw: bytes | None, settings: Settings, tagger: Any, received_at: str, received: float,
                 registry: SourceRegistry | None = None) -> Entry:
    """One message of news.raw to an accepted item's entry (raises :class:`InvalidItem`); its copy record
    says who reported it (outlet, origin, camp), looked up in ``registry`` (the bundled one by default).
    The steps of :func:`process_batch`, on one message."""
    item = parse_item(raw, settings.max_item_bytes)
    tags = tagger.tag(item["title"], item["text"])
    features = Features.of(item, settings.dedup_stories, _event_key(item, tags, settings))
    return _entry(item, tags, features, registry or default_registry(), received_at, received)


def _event_key(item: dict, tags: dict, settings: Settings) -> EventKey | None:
    """The item's event key (None without story dedup: the shard then matches ids only)."""
    return event_key(item["title"], item["text"], tags) if settings.dedup_stories else None


def _entry(item: dict, tags: dict, features: Features, registry: SourceRegistry, received_at: str,
           received: float) -> Entry:
    """A parsed, tagged and sketched item's entry: its tagged record, copy record and alerts."""
    tagged = tagged_item(item, tags, received_at)
    tagged["revision"] = 1  # a first copy; the shard numbers updates
    copy = registry.attribute(item).copy(item["id"], item.get("url", ""))
    alerts = build_alerts(tagged, "low")
    if alerts:  # the first copy's alerts as the story shard sends them
        by_one = registry.corroborate([copy])
        alerts = [dict(corroborated(alert, by_one, [copy], 1), revision=1) for alert in alerts]
    rules = load_rules()
    text = read_text(rules, tagged) if negotiation_signals(rules, tagged.get("signals") or ()) else None
    facts = Tagged.of(tagged, text.wire() if text else None)
    return Entry.of(facts, alerts, features, trend_record(tagged), received, copy)


@dataclass
class Rejected:
    """A message of the batch that is not an accepted item: its index in the batch, the dead-letter
    reason and detail, and for an ``internal_error`` (a bug) the traceback to log."""

    index: int
    reason: str
    detail: str
    trace: str = ""


@dataclass
class BatchResult:
    """What the process stage hands on for a batch: its news.processed records (in input order), its
    rejected messages, how many accepted items came from unlisted sources, and the thread CPU it took."""

    records: list[bytes] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    unknown_sources: int = 0
    cpu_seconds: float = 0.0


Message = tuple[bytes | None, int, int]
"""A news.raw message as the process stage needs it: value, partition, offset."""


def process_batch(messages: list[Message], settings: Settings, tagger: Any, registry: SourceRegistry,
                  received_at: str, received: float) -> BatchResult:
    """Every message of a batch through the steps of :func:`process_item`; never raises for one message's
    sake. Each step runs over the whole batch before the next one starts, so that the tagger's automaton and
    rule tables, then the event key's and the sketch's, stay in the CPU's caches for a whole batch instead of
    evicting each other on every item: 11% less CPU per item than item after item (docs/architecture.md,
    "Process helpers")."""
    start = time.thread_time()
    rejected: dict[int, Rejected] = {}

    def each(step: Callable[..., Any], rows: list[tuple]) -> list[tuple]:
        """``step`` on each row ``(index, *values)``: the rows it succeeds on, its result appended; the others
        are rejected (an invalid item, or ``internal_error`` for a bug, which must not stop the worker)."""
        done = []
        for index, *values in rows:
            try:
                done.append((index, *values, step(*values)))
            except InvalidItem as exc:
                rejected[index] = Rejected(index, exc.reason, exc.detail)
            except Exception as exc:  # noqa: BLE001
                rejected[index] = Rejected(index, "internal_error", repr(exc)[:500], traceback.format_exc())
        return done

    rows = each(lambda message: parse_item(message[0], settings.max_item_bytes), list(enumerate(messages)))
    rows = each(lambda _, item: tagger.tag(item["title"], item["text"]), rows)
    rows = each(lambda _, item, tags: _event_key(item, tags, settings), rows)
    rows = each(lambda _, item, tags, event: Features.of(item, settings.dedup_stories, event), rows)
    rows = each(lambda _, item, tags, event, features: _entry(item, tags, features, registry, received_at,
                                                              received), rows)
    rows = each(lambda message, item, tags, event, features, entry: _wire(entry, message), rows)
    result = BatchResult(batch_records([part for *_, (part, _) in rows]),
                         [rejected[index] for index in sorted(rejected)],
                         sum(unknown for *_, (_, unknown) in rows))
    result.cpu_seconds = time.thread_time() - start
    return result


def _wire(entry: Entry, message: Message) -> tuple[tuple[bytes, bytes], bool]:
    """The entry's part of a news.processed record (read where ``message`` was), and whether its source is
    unlisted."""
    entry.raw = message[1:]
    return entry.wire(), is_unknown(entry.copy["outlet"])


class ProcessPool:
    """Runs :func:`process_batch` in ``helpers`` processes (a batch is split between them, in order), or in
    the calling thread when ``helpers`` is 0. Helpers start on the first :meth:`ready` or batch."""

    def __init__(self, settings: Settings, tagger: Any, helpers: int) -> None:
        self.settings = settings
        self.tagger = tagger
        self.helpers = helpers
        self.registry = default_registry()
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.helpers, mp_context=get_context("spawn"),
                                                 initializer=_start_helper, initargs=(self.settings, os.getpid()))
        return self._executor

    async def ready(self) -> None:
        """Start the helpers (importing and compiling the rule packs takes a second or two), so that the
        first batch does not wait for them."""
        if self.helpers:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(self._pool(), _ping) for _ in range(self.helpers)))

    async def run(self, messages: list[Message], received_at: str, received: float) -> BatchResult:
        if not self.helpers:
            return process_batch(messages, self.settings, self.tagger, self.registry, received_at, received)
        loop = asyncio.get_running_loop()
        size = -(-len(messages) // self.helpers)
        starts = range(0, len(messages), size) if messages else range(0)
        parts = await asyncio.gather(*(loop.run_in_executor(
            self._pool(), _batch_in_helper, messages[at:at + size], received_at, received) for at in starts))
        result = BatchResult()
        for at, part in zip(starts, parts, strict=True):
            result.records += part.records
            result.rejected += [Rejected(r.index + at, r.reason, r.detail, r.trace) for r in part.rejected]
            result.unknown_sources += part.unknown_sources
            result.cpu_seconds += part.cpu_seconds
        return result

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


_helper: dict[str, Any] = {}
"""A helper process's settings, tagger and registry (set once by :func:`_start_helper`)."""


def _start_helper(settings: Settings, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the worker, which stops its helpers
    _helper.update(settings=settings, tagger=load_tagger(), registry=default_registry())
    gc.freeze()  # the compiled rule packs live as long as the helper (as in the worker: cli.processes.tune_runtime)

    def exit_with_parent() -> None:  # a worker killed with -9 leaves no helper behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()


def _ping() -> int:
    return os.getpid()


def _batch_in_helper(messages: list[Message], received_at: str, received: float) -> BatchResult:
    return process_batch(messages, _helper["settings"], _helper["tagger"], _helper["registry"], received_at, received)
