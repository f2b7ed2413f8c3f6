"""Long-running processes: the ``worker``, and ``up``, which supervises a local broker, a worker and the alerts."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime

import click

from streams.cli.alerts import print_alert
from streams.cli.broker import local_broker
from streams.cli.options import broker_option, fail, settings_from_env
from streams.cli.push import push_files

GC_THRESHOLDS = (10_000, 20, 20)
"""Young allocations before a collection, and collections before an older generation's (CPython: 700, 10,
10). The story shard keeps many objects the collector tracks (its trend windows are dicts holding lists),
and each full collection scans them all: with these thresholds the shard's CPU per item fell 7.6% (0.445 ->
0.412 ms, 100k bench items, back to back; docs/architecture.md, "Scale limits"). Cyclic garbage lives a
little longer: the worker's RSS after the story cap grew 2.4% per 100k items with these and 4.0% without."""


TRIM_EVERY = 10.0
"""Seconds between two ``malloc_trim`` calls (glibc), which hand the free pages inside the worker's heap back
to the system. The worker's largest blocks are its ~1 MB news.processed records and produce requests; glibc
serves them from its heap once a larger block was freed (its mmap threshold rises to the largest block freed,
up to 32 MiB), and the heap's free pages stay with the process while long-lived objects sit between them:
over 100k bench items the RSS after the story cap rose ~5.5% per 100k (docs/architecture.md, "Where state
lives"). A trim walks the free lists (milliseconds); a fixed mmap threshold instead gave the RSS back as well
but mapped and zeroed every large block, and two workers on two busy cores measured 1.21-1.43x one with it
against 1.63-1.67x without."""


def tune_runtime() -> None:
    """Freeze what the worker loaded before it starts (the app, the compiled rule pack, the registries): it
    lives as long as the process, so a full collection need not scan it again; then collect less often
    (:data:`GC_THRESHOLDS`); and trim glibc's heap every :data:`TRIM_EVERY` seconds (nothing to do on another C
    library)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return

    def trim_now_and_then() -> None:  # ctypes releases the GIL for the call; glibc locks its arenas itself
        while True:
            time.sleep(TRIM_EVERY)
            trim(0)

    threading.Thread(target=trim_now_and_then, name="malloc-trim", daemon=True).start()


UP_BACKLOG = 3
"""``up`` first shows the last few alerts of each partition (a re-run's sample items are duplicates)."""


@click.command()
@broker_option
@click.option("--web-port", type=int, default=None, help="Port of /metrics [env SIGNALWATCH_WEB_PORT].")
@click.option("--log-level", default=None, help="debug, info, warning (default) or error.")
def worker(broker: str | None, web_port: int | None, log_level: str | None) -> None:
    """Run the Faust worker with all agents until stopped (SIGTERM or Ctrl-C)."""
    from faust.worker import Worker

    from streams.app import create_app
    from streams.kafka_io import KafkaUnavailable, admin
    from streams.logs import logging_config
    from streams.settings import SettingsError
    from streams.web import check_exposure

    settings = settings_from_env(broker=broker, web_port=web_port, log_level=log_level)
    try:  # one line naming the fix, not Faust's retries and a traceback
        check_exposure(settings)
        _check_port_free(settings.web_host, settings.web_port)
        admin(settings).close()
    except (SettingsError, KafkaUnavailable) as exc:
        fail(str(exc))
    app = create_app(settings)
    runner = Worker(app, loglevel=settings.log_level, quiet=True, logging_config=logging_config(settings.log_level))
    runner.spinner = None  # logs, not a terminal animation
    tune_runtime()
    runner.execute_from_commandline()


@click.command()
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
    worker_proc = None
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        if not os.environ.get("SIGNALWATCH_BROKER"):
            local = local_broker(port, str(settings_from_env().data_dir / "broker"))
            was_running = local.is_running()
            _say("starting the local Kafka broker (first run fetches its jars from Maven Central)…")
            if not was_running:
                started_broker = local  # from here on it is ours to stop, even if Ctrl-C comes mid-start
            try:
                bootstrap = local.start()
            except BrokerError as exc:
                fail(str(exc))
            os.environ["SIGNALWATCH_BROKER"] = f"kafka://{bootstrap}"
        settings = settings_from_env(web_port=web_port)
        create_topics(settings)
        reader = TopicReader(settings, settings.topics.alerts(), backlog=UP_BACKLOG)
        env = dict(os.environ, SIGNALWATCH_BROKER=settings.broker, SIGNALWATCH_WEB_PORT=str(settings.web_port))
        worker_proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env)
        _say(f"worker started: metrics at http://{settings.web_host}:{settings.web_port}/metrics")
        counts = push_files(settings, [str(p) for p in (feed_files or [SAMPLE_FEED])], settings.topics.raw)
        _say(f"pushed {counts['sent']} items; alerts follow (Ctrl-C stops everything)")
        # Ctrl-C reaches the worker too (same process group) and it exits at once: a flag, not an exception
        # that a client library may be in the middle of, so the loop below never takes that for a crash
        signal.signal(signal.SIGINT, _stop)
        deadline = time.monotonic() + seconds if seconds else None
        while not stopping and (deadline is None or time.monotonic() < deadline):
            if worker_proc.poll() is not None:
                fail(f"the worker exited with code {worker_proc.returncode}; run `signalwatch worker` to see why")
            for record in reader.poll(0.5):
                print_alert(record.value, False, None)
        reader.close()
    except KafkaUnavailable as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # whatever read our output has gone (`make run | tee log` after Ctrl-C)
        _drop_stdout()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave the broker running
        try:
            if worker_proc is not None and worker_proc.poll() is None:
                _say("stopping the worker…")
                worker_proc.send_signal(signal.SIGTERM)
                try:
                    worker_proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker_proc.kill()
        finally:
            if started_broker is not None:
                _say("stopping the local broker…")
                started_broker.stop()
            _say(f"stopped at {datetime.now():%H:%M:%S}")


def _check_port_free(host: str, port: int) -> None:
    """Raise :class:`SettingsError` naming the fix when the web port cannot be bound."""
    from streams.settings import SettingsError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SettingsError(
                f"the web port {host}:{port} cannot be used ({exc.strerror}; another worker?): choose another "
                "with --web-port or SIGNALWATCH_WEB_PORT") from None


def _say(message: str) -> None:
    """A status line on stderr; a closed pipe does not stop ``up`` from cleaning up."""
    with contextlib.suppress(OSError):
        click.echo(message, err=True)


def _drop_stdout() -> None:
    """Send further output (and the flush at exit) to /dev/null once the reader of stdout has gone."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


COMMANDS = (worker, up)
