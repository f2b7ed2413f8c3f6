"""The ``signalwatch`` command line (command names and options are a contract: scripts use them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import click
import orjson

from streams.settings import ALERT_TYPES, SEVERITIES, Settings, SettingsError

broker_option = click.option("--broker", default=None, metavar="URL",
                             help="Kafka bootstrap, kafka://host:port [env SIGNALWATCH_BROKER].")

UP_BACKLOG = 3
"""``up`` first shows the last few alerts of each partition (a re-run's sample items are duplicates)."""

SEVERITY_COLOURS = {"low": "blue", "medium": "yellow", "high": "red", "critical": "magenta"}


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="signalwatch")
def main() -> None:
    """signalwatch: escalation signals and negotiation mentions in conflict news, from Kafka to alerts."""


# ---------------------------------------------------------------- broker
@main.group()
def broker() -> None:
    """A local single-node Apache Kafka (KRaft) on 127.0.0.1, jars from Maven Central."""


def _local_broker(port: int | None, data_dir: str | None):
    from streams.broker import LocalBroker, default_data_dir

    return LocalBroker(Path(data_dir) if data_dir else default_data_dir(), port or 9092)


port_option = click.option("--port", type=int, default=None, help="Listener port (default 9092).")
dir_option = click.option("--dir", "data_dir", default=None, metavar="DIR",
                          help="Data directory (default ~/.local/share/signalwatch/broker).")


@broker.command("start")
@port_option
@dir_option
def broker_start(port: int | None, data_dir: str | None) -> None:
    """Start the broker (no-op if it runs); print its bootstrap address once it answers."""
    from streams.broker import BrokerError

    local = _local_broker(port, data_dir)
    try:
        click.echo(local.start())
    except BrokerError as exc:
        _fail(str(exc))


@broker.command("stop")
@port_option
@dir_option
def broker_stop(port: int | None, data_dir: str | None) -> None:
    """Stop the broker cleanly."""
    local = _local_broker(port, data_dir)
    click.echo("stopped" if local.stop() else "not running")


@broker.command("status")
@port_option
@dir_option
def broker_status(port: int | None, data_dir: str | None) -> None:
    """Say whether the broker runs (exit 0) or not (exit 1)."""
    local = _local_broker(port, data_dir)
    if local.is_running():
        click.echo(f"running at 127.0.0.1:{local.running_port()} (pid {local.pid()}, data {local.data_dir})")
    else:
        click.echo(f"not running (data {local.data_dir})")
        sys.exit(1)


# ---------------------------------------------------------------- topics
@main.group()
def topics() -> None:
    """Kafka topics of signalwatch."""


@topics.command("create")
@broker_option
@click.option("--partitions", type=int, default=None, help="Partitions per topic [env SIGNALWATCH_PARTITIONS].")
def topics_create(broker: str | None, partitions: int | None) -> None:
    """Create every topic that does not exist yet."""
    from streams.kafka_io import KafkaUnavailable, create_topics

    settings = _settings(broker=broker, partitions=partitions)
    try:
        created = create_topics(settings)
    except KafkaUnavailable as exc:
        _fail(str(exc))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


# ---------------------------------------------------------------- worker
@main.command()
@broker_option
@click.option("--web-port", type=int, default=None, help="Port of /metrics [env SIGNALWATCH_WEB_PORT].")
@click.option("--log-level", default=None, help="debug, info, warning (default) or error.")
def worker(broker: str | None, web_port: int | None, log_level: str | None) -> None:
    """Run the Faust worker with all agents until stopped (SIGTERM or Ctrl-C)."""
    from faust.worker import Worker

    from streams.app import create_app
    from streams.logs import logging_config

    settings = _settings(broker=broker, web_port=web_port, log_level=log_level)
    app = create_app(settings)
    runner = Worker(app, loglevel=settings.log_level, quiet=True, logging_config=logging_config(settings.log_level))
    runner.spinner = None  # logs, not a terminal animation
    runner.execute_from_commandline()


# ---------------------------------------------------------------- push
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


@main.command()
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

    settings = _settings(broker=broker)
    for path in files:
        if path != "-" and not Path(path).is_file():
            _fail(f"{path}: no such file")
    if files.count("-") > 1:
        _fail("stdin (-) can be read only once")
    target = topic or settings.topics.raw
    try:
        mapping = parse_mapping(maps)
        counts = push_files(settings, list(files), target, fmt="feed" if fmt in ("rss", "atom") else fmt,
                            mapping=mapping, dry_run=dry_run)
    except (KafkaUnavailable, FeedError) as exc:
        _fail(str(exc))
    click.echo(push_summary(counts, target, dry_run), err=True)


# ---------------------------------------------------------------- feed
@main.group()
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

    settings = _settings(broker=broker)
    if interval <= 0:
        _fail("--interval must be a positive number of seconds")
    for url in urls:
        if not url.startswith(("http://", "https://", "file://")):
            _fail(f"{url}: not a feed URL; use http(s)://… (or file:// for a local file)")
    target = topic or settings.topics.raw
    try:
        state = StateFile(Path(state_file) if state_file else settings.data_dir / "poller" / "state.json")
        client = producer(settings)
    except (FeedError, KafkaUnavailable) as exc:
        _fail(str(exc))
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


# ---------------------------------------------------------------- tail
TYPE_COLOURS = {"escalation": "red", "negotiation": "green", "trend": "cyan"}
EVIDENCE_CHARS = 160


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_alert(alert: dict) -> str:
    """A readable, coloured alert: time (UTC), severity, type and summary; then the evidence snippet; then
    source and link. Colours are dropped by click when the output is not a terminal."""
    created = str(alert.get("created_at", ""))
    when = created[11:19] if len(created) >= 19 else "--:--:--"
    severity = str(alert.get("severity", "low"))
    kind = str(alert.get("type", "?"))
    badge = click.style(f"{severity.upper():8}", fg=SEVERITY_COLOURS.get(severity, "white"), bold=True)
    kind_badge = click.style(f"{kind:11}", fg=TYPE_COLOURS.get(kind, "white"))
    summary = alert.get("summary", "")
    if kind == "trend" and "count" in alert:
        summary += f" ({alert['count']} vs baseline {alert.get('baseline', 0):g})"
    lines = [f"{when} {badge} {kind_badge} {summary}"]
    indent = " " * 9
    evidence = [e for e in alert.get("evidence") or () if e]
    if evidence:
        more = f" (+{len(evidence) - 1})" if len(evidence) > 1 else ""
        lines.append(indent + click.style(f"“{_clip(evidence[0], EVIDENCE_CHARS)}”{more}", italic=True))
    where = " — ".join(str(x) for x in (alert.get("source"), alert.get("url")) if x)
    if where:
        lines.append(indent + click.style(where, dim=True))
    return "\n".join(lines)


def alert_matches(alert: dict, *, types: tuple[str, ...] = (), min_severity: str | None = None,
                  categories: tuple[str, ...] = (), actors: tuple[str, ...] = ()) -> bool:
    """Whether an alert passes the ``tail`` filters (each filter: any of its values; all filters: and)."""
    if types and alert.get("type") not in types:
        return False
    if min_severity:
        severity = alert.get("severity", "low")
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
        if rank < SEVERITIES.index(min_severity):
            return False
    if categories and not {c.lower() for c in categories} & {str(c).lower() for c in alert.get("categories", ())}:
        return False
    if actors:
        have = {str(a).lower() for a in alert.get("actors", ())}
        if not any(a.lower() in have for a in actors):
            return False
    return True


@main.command()
@broker_option
@click.option("--topic", "topic_names", multiple=True, help="Alert topic(s) to read (default: all).")
@click.option("--type", "types", multiple=True, type=click.Choice(ALERT_TYPES),
              help="Only alerts of this type (repeatable).")
@click.option("--min-severity", type=click.Choice(SEVERITIES), default=None, help="Hide less severe alerts.")
@click.option("--category", "categories", multiple=True, metavar="NAME",
              help="Only alerts with this category, e.g. missile_strike or ceasefire (repeatable).")
@click.option("--actor", "actors", multiple=True, metavar="NAME",
              help="Only alerts naming this actor, e.g. Russia (repeatable; case-insensitive).")
@click.option("--json", "as_json", is_flag=True, help="One JSON alert per line, for machines.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest alert, not the newest.")
def tail(broker: str | None, topic_names: tuple[str, ...], types: tuple[str, ...], min_severity: str | None,
         categories: tuple[str, ...], actors: tuple[str, ...], as_json: bool, from_beginning: bool) -> None:
    """Print alerts as they arrive until Ctrl-C: all alert topics, or those of --type / --topic."""
    from streams.kafka_io import KafkaUnavailable, TopicReader

    settings = _settings(broker=broker)
    t = settings.topics
    by_type = {"escalation": t.escalation, "negotiation": t.negotiation, "trend": t.trend}
    names = list(topic_names) or [by_type[x] for x in types] or t.alerts()
    try:
        reader = TopicReader(settings, names, from_beginning=from_beginning)
    except KafkaUnavailable as exc:
        _fail(str(exc))
    try:
        for record in reader:
            _print_alert(record.value, as_json, min_severity, types=types, categories=categories, actors=actors)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()


def _print_alert(value: bytes, as_json: bool, min_severity: str | None, *, types: tuple[str, ...] = (),
                 categories: tuple[str, ...] = (), actors: tuple[str, ...] = ()) -> bool:
    """Print one alert record if it passes the filters; return whether it was printed."""
    try:
        alert = orjson.loads(value)
    except orjson.JSONDecodeError:
        click.echo(f"(not JSON: {value[:80]!r})", err=True)
        return False
    if not isinstance(alert, dict):
        click.echo(f"(not an alert: {value[:80]!r})", err=True)
        return False
    if not alert_matches(alert, types=types, min_severity=min_severity, categories=categories, actors=actors):
        return False
    click.echo(value.decode() if as_json else format_alert(alert))
    return True


# ---------------------------------------------------------------- classify / eval
@main.command()
@click.argument("file", default="-")
def classify(file: str) -> None:
    """Tag JSONL news items (or plain text lines) from FILE or stdin; JSONL tagged items out, no Kafka.

    One output line per input line, in order; a line that is not valid input yields {"error": ...}.
    """
    from streams.feeds import read_feed
    from streams.records import now_iso, tagged_item
    from streams.tagging import load_tagger

    if file != "-" and not Path(file).is_file():
        _fail(f"{file}: no such file")
    tagger = load_tagger()
    out = sys.stdout.buffer
    for record in read_feed(file):
        if record.error is not None:
            line = {"error": {"reason": record.error.reason, "detail": record.error.detail},
                    "where": record.where}
        else:
            item = record.item
            line = tagged_item(item, tagger.tag(item["title"], item["text"]), now_iso())
        out.write(orjson.dumps(line) + b"\n")
    out.flush()


@main.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--report", default="eval-report.json", show_default=True, help="Where to write the JSON report.")
def evaluate(file: str, report: str) -> None:
    """Precision, recall and F1 per label and stance accuracy of the tagger on a labelled JSONL FILE."""
    from streams.tagging.evaluate import evaluate as run_eval
    from streams.tagging.evaluate import format_report

    result = run_eval(file)
    Path(report).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    click.echo(format_report(result))
    click.echo(f"report written to {report}", err=True)


# ---------------------------------------------------------------- up
@main.command()
@click.option("--port", type=int, default=None, help="Port of the local broker (default 9092).")
@click.option("--web-port", type=int, default=None, help="Port of /metrics [env SIGNALWATCH_WEB_PORT].")
@click.option("--feed", "feed_files", multiple=True, help="Feed file(s) to push (default: the bundled sample).")
@click.option("--seconds", type=float, default=None, help="Stop by itself after this many seconds.")
def up(port: int | None, web_port: int | None, feed_files: tuple[str, ...], seconds: float | None) -> None:
    """The embedded default: local broker, topics, worker, sample feed, live alerts; Ctrl-C stops it all."""
    from streams.broker import BrokerError, LocalBroker
    from streams.feeds import SAMPLE_FEED
    from streams.kafka_io import KafkaUnavailable, TopicReader, create_topics

    started_broker: LocalBroker | None = None
    if not os.environ.get("SIGNALWATCH_BROKER"):
        local = _local_broker(port, str(_settings().data_dir / "broker"))
        was_running = local.is_running()
        click.echo("starting the local Kafka broker (first run fetches its jars from Maven Central)…", err=True)
        try:
            bootstrap = local.start()
        except BrokerError as exc:
            _fail(str(exc))
        started_broker = None if was_running else local
        os.environ["SIGNALWATCH_BROKER"] = f"kafka://{bootstrap}"
    settings = _settings(web_port=web_port)
    worker_proc = None
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        create_topics(settings)
        reader = TopicReader(settings, settings.topics.alerts(), backlog=UP_BACKLOG)
        env = dict(os.environ, SIGNALWATCH_BROKER=settings.broker, SIGNALWATCH_WEB_PORT=str(settings.web_port))
        worker_proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env)
        click.echo(f"worker started: metrics at http://{settings.web_host}:{settings.web_port}/metrics", err=True)
        counts = push_files(settings, [str(p) for p in (feed_files or [SAMPLE_FEED])], settings.topics.raw)
        click.echo(f"pushed {counts['sent']} items; alerts follow (Ctrl-C stops everything)", err=True)
        # Ctrl-C reaches the worker too (same process group) and it exits at once: a flag, not an exception
        # that a client library may be in the middle of, so the loop below never takes that for a crash
        signal.signal(signal.SIGINT, _stop)
        deadline = time.monotonic() + seconds if seconds else None
        while not stopping and (deadline is None or time.monotonic() < deadline):
            if worker_proc.poll() is not None:
                _fail(f"the worker exited with code {worker_proc.returncode}; run `signalwatch worker` to see why")
            for record in reader.poll(0.5):
                _print_alert(record.value, False, None)
        reader.close()
    except KafkaUnavailable as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass
    finally:
        if worker_proc is not None and worker_proc.poll() is None:
            click.echo("stopping the worker…", err=True)
            worker_proc.send_signal(signal.SIGTERM)
            try:
                worker_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker_proc.kill()
        if started_broker is not None:
            click.echo("stopping the local broker…", err=True)
            started_broker.stop()
        click.echo(f"stopped at {datetime.now():%H:%M:%S}", err=True)


if __name__ == "__main__":
    main()
