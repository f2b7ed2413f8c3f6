"""Getting items into Kafka: ``push`` (files and stdin) and ``feed poll`` (RSS/Atom URLs)."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from pathlib import Path

import click

from streams.cli.options import broker_option, fail, settings_from_env
from streams.settings import Settings


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress(size: int, label: str, show: bool):
    """A byte progress bar on stderr when it is a terminal, else nothing."""
    if not show:
        return _NoProgress()
    return click.progressbar(length=size, label=label, file=sys.stderr)


MAX_REJECT_LINES = 50
"""``push`` prints at most this many rejected entries (with where and why); the summary counts all."""


def push_files(settings: Settings, paths: list[str], topic: str, *, progress: bool = True, fmt: str = "auto",
               mapping: dict[str, str] | None = None, dry_run: bool = False) -> Counter:
    """Send the items of ``paths`` to ``topic``; return counts of sent / rejected by reason / bytes.

    With ``dry_run`` nothing is sent (no broker needed): items are read and validated and counted as
    ``sent`` would be. Raises :class:`streams.feeds.FeedError` for a file that cannot be read at all.
    """
    from streams.feeds import encode, read_feed
    from streams.kafka_io import producer

    counts: Counter = Counter()
    client = None if dry_run else producer(settings)
    printed = 0
    try:
        for path in paths:
            records = read_feed(path, fmt=fmt, max_bytes=settings.max_item_bytes, mapping=mapping)
            show = progress and path != "-" and sys.stderr.isatty()
            size = os.path.getsize(path) if show else 0
            done = 0
            with _progress(size, Path(path).name, show) as bar:
                for record in records:
                    step = min(len(record.raw) + 1, max(0, size - done))
                    bar.update(step)
                    done += step
                    if record.error is not None:
                        counts[f"rejected:{record.error.reason}"] += 1
                        if printed < MAX_REJECT_LINES:
                            click.echo(f"{record.where}: {record.error}", err=True)
                        printed += 1
                        continue
                    key, value = encode(record.item)
                    if client is not None:
                        client.send(topic, key=key, value=value)
                    counts["sent"] += 1
                    counts["bytes"] += len(value)
                bar.update(max(0, size - done))
        if printed > MAX_REJECT_LINES:
            click.echo(f"… and {printed - MAX_REJECT_LINES} more rejected entries", err=True)
        if client is not None:
            client.flush(timeout=60)
    finally:
        if client is not None:
            client.close(timeout=10)
    return counts


def push_summary(counts: Counter, topic: str, dry_run: bool = False) -> str:
    """One line: items sent (or valid, for a dry run), bytes, and rejected items by reason."""
    rejected = sum(v for k, v in counts.items() if k.startswith("rejected:"))
    reasons = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in sorted(counts.items()) if k.startswith("rejected:"))
    head = (f"dry run: {counts['sent']} valid items ({counts['bytes']} bytes) would be sent to {topic}"
            if dry_run else f"sent {counts['sent']} items ({counts['bytes']} bytes) to {topic}")
    return f"{head}; rejected {rejected}" + (f" ({reasons})" if reasons else "")


@click.command()
@broker_option
@click.option("--topic", default=None, help="Target topic (default news.raw).")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "csv", "rss", "atom", "text"]),
              default="auto", show_default=True,
              help="Input format; auto = from the file name (.jsonl .csv .tsv .rss .atom .xml .txt), else the content.")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help="CSV: fill item FIELD from COLUMN, e.g. --map title=headline --map text=body (repeatable; "
                   "other formats ignore it).")
@click.option("--dry-run", is_flag=True, help="Read and validate only; send nothing (no broker needed).")
@click.argument("files", nargs=-1, required=True)
def push(broker: str | None, topic: str | None, fmt: str, maps: tuple[str, ...], dry_run: bool,
         files: tuple[str, ...]) -> None:
    """Send JSONL, CSV, RSS/Atom or text FILES (- for stdin) into news.raw, with a progress bar and a summary.

    Items get the id the worker derives (their own id, else from the url, else a content hash), so
    pushing a file twice gives duplicates the worker recognises and drops.
    """
    from streams.feeds import FeedError, parse_mapping
    from streams.kafka_io import KafkaUnavailable

    settings = settings_from_env(broker=broker)
    for path in files:
        if path != "-" and not Path(path).is_file():
            fail(f"{path}: no such file")
    if files.count("-") > 1:
        fail("stdin (-) can be read only once")
    target = topic or settings.topics.raw
    try:
        mapping = parse_mapping(maps)
        counts = push_files(settings, list(files), target, fmt="feed" if fmt in ("rss", "atom") else fmt,
                            mapping=mapping, dry_run=dry_run)
    except (KafkaUnavailable, FeedError) as exc:
        fail(str(exc))
    click.echo(push_summary(counts, target, dry_run), err=True)


@click.group()
def feed() -> None:
    """RSS/Atom feeds."""


@feed.command("poll")
@broker_option
@click.option("--interval", type=float, default=300.0, show_default=True, metavar="S",
              help="Seconds between two polls of a feed (failing feeds back off exponentially).")
@click.option("--once", is_flag=True, help="Poll every feed once and exit (for cron); exit 1 if any failed.")
@click.option("--topic", default=None, help="Target topic (default news.raw).")
@click.option("--state", "state_file", default=None, metavar="FILE",
              help="State file: ETags and sent entries (default <SIGNALWATCH_HOME>/poller/state.json).")
@click.option("--timeout", type=float, default=20.0, show_default=True, help="HTTP timeout in seconds.")
@click.argument("urls", nargs=-1, required=True)
def feed_poll(broker: str | None, interval: float, once: bool, topic: str | None, state_file: str | None,
              timeout: float, urls: tuple[str, ...]) -> None:
    """Poll RSS/Atom feed URLS into news.raw, each entry once (remembered across restarts)."""
    from streams.feeds import FeedError
    from streams.kafka_io import KafkaUnavailable, producer
    from streams.poller import Poller, StateFile

    settings = settings_from_env(broker=broker)
    if interval <= 0:
        fail("--interval must be a positive number of seconds")
    for url in urls:
        if not url.startswith(("http://", "https://", "file://")):
            fail(f"{url}: not a feed URL; use http(s)://… (or file:// for a local file)")
    target = topic or settings.topics.raw
    try:
        state = StateFile(Path(state_file) if state_file else settings.data_dir / "poller" / "state.json")
        client = producer(settings)
    except (FeedError, KafkaUnavailable) as exc:
        fail(str(exc))
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    poller = Poller(state, lambda key, value: client.send(target, key=key, value=value),
                    lambda: client.flush(timeout=60), interval=interval, timeout=timeout,
                    max_item_bytes=settings.max_item_bytes)
    try:
        results = poller.run(list(urls), once=once, report=lambda r: click.echo(r.describe(), err=True),
                             stopped=lambda: stopping)
    finally:
        client.close(timeout=10)
    if once and any(r.error for r in results):
        sys.exit(1)


COMMANDS = (push, feed)
