"""The ``signalwatch`` command line: one module per concern, each listing its commands in ``COMMANDS``.

* :mod:`~streams.cli.broker`: the local Kafka broker and the topics;
* :mod:`~streams.cli.push`: items into Kafka (``push``, ``feed poll``);
* :mod:`~streams.cli.alerts`: alerts in the terminal (``tail`` and the alert printer);
* :mod:`~streams.cli.tagger`: the tagger without Kafka (``classify``, ``eval``);
* :mod:`~streams.cli.talks`: the negotiation threads (``talks``);
* :mod:`~streams.cli.processes`: the ``worker`` and ``up``, which supervises broker, worker and alerts.

A new command goes into the module of its concern and its ``COMMANDS``; nothing here changes.
"""

from __future__ import annotations

import click

from streams.cli import alerts, broker, processes, push, tagger, talks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="signalwatch")
def main() -> None:
    """signalwatch: escalation signals and negotiation mentions in conflict news, from Kafka to alerts."""


for _module in (broker, push, alerts, tagger, talks, processes):
    for _command in _module.COMMANDS:
        main.add_command(_command)
