"""Long-running processes: the ``worker``, and ``up``, which supervises a local broker, a worker and the alerts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import click

from streams.cli.alerts import print_alert
from streams.cli.broker import local_broker
from streams.cli.options import broker_option, fail, settings_from_env
from streams.cli.push import push_files

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
    from streams.logs import logging_config

    settings = settings_from_env(broker=broker, web_port=web_port, log_level=log_level)
    app = create_app(settings)
    runner = Worker(app, loglevel=settings.log_level, quiet=True, logging_config=logging_config(settings.log_level))
    runner.spinner = None  # logs, not a terminal animation
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
    if not os.environ.get("SIGNALWATCH_BROKER"):
        local = local_broker(port, str(settings_from_env().data_dir / "broker"))
        was_running = local.is_running()
        click.echo("starting the local Kafka broker (first run fetches its jars from Maven Central)…", err=True)
        try:
            bootstrap = local.start()
        except BrokerError as exc:
            fail(str(exc))
        started_broker = None if was_running else local
        os.environ["SIGNALWATCH_BROKER"] = f"kafka://{bootstrap}"
    settings = settings_from_env(web_port=web_port)
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
                fail(f"the worker exited with code {worker_proc.returncode}; run `signalwatch worker` to see why")
            for record in reader.poll(0.5):
                print_alert(record.value, False, None)
        reader.close()
    except KafkaUnavailable as exc:
        fail(str(exc))
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


COMMANDS = (worker, up)
