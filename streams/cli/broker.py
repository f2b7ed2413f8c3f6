"""The local broker (``broker start|stop|status``) and the topics (``topics create``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from streams.cli.options import broker_option, fail, settings_from_env


def local_broker(port: int | None, data_dir: str | None):
    """The :class:`streams.broker.LocalBroker` of ``--port`` / ``--dir`` (defaults: 9092, the user's data dir)."""
    from streams.broker import LocalBroker, default_data_dir

    return LocalBroker(Path(data_dir) if data_dir else default_data_dir(), port or 9092)


port_option = click.option("--port", type=int, default=None, help="Listener port (default 9092).")
dir_option = click.option("--dir", "data_dir", default=None, metavar="DIR",
                          help="Data directory (default ~/.local/share/signalwatch/broker).")


@click.group()
def broker() -> None:
    """A local single-node Apache Kafka (KRaft) on 127.0.0.1, jars from Maven Central."""


@broker.command("start")
@port_option
@dir_option
def broker_start(port: int | None, data_dir: str | None) -> None:
    """Start the broker (no-op if it runs); print its bootstrap address once it answers."""
    from streams.broker import BrokerError

    local = local_broker(port, data_dir)
    try:
        click.echo(local.start())
    except BrokerError as exc:
        fail(str(exc))


@broker.command("stop")
@port_option
@dir_option
def broker_stop(port: int | None, data_dir: str | None) -> None:
    """Stop the broker cleanly."""
    local = local_broker(port, data_dir)
    click.echo("stopped" if local.stop() else "not running")


@broker.command("status")
@port_option
@dir_option
def broker_status(port: int | None, data_dir: str | None) -> None:
    """Say whether the broker runs (exit 0) or not (exit 1)."""
    local = local_broker(port, data_dir)
    if local.is_running():
        click.echo(f"running at 127.0.0.1:{local.running_port()} (pid {local.pid()}, data {local.data_dir})")
    else:
        click.echo(f"not running (data {local.data_dir})")
        sys.exit(1)


@click.group()
def topics() -> None:
    """Kafka topics of signalwatch."""


@topics.command("create")
@broker_option
@click.option("--partitions", type=int, default=None, help="Partitions per topic [env SIGNALWATCH_PARTITIONS].")
def topics_create(broker: str | None, partitions: int | None) -> None:
    """Create every topic that does not exist yet."""
    from streams.kafka_io import KafkaUnavailable, create_topics

    settings = settings_from_env(broker=broker, partitions=partitions)
    try:
        created = create_topics(settings)
    except KafkaUnavailable as exc:
        fail(str(exc))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


COMMANDS = (broker, topics)
