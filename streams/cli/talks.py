"""``signalwatch talks``: the negotiation threads and their state, read from the compacted topic."""

from __future__ import annotations

import click
import orjson

from streams.cli.options import broker_option, fail, require_topics, settings_from_env
from streams.cli.terminal import json_line, printable
from streams.talks import STATES

STATE_COLOURS = {"violated": "red", "collapsed": "red", "rejected": "red", "agreed": "green", "in_force": "green",
                 "expired": "white"}


@click.command()
@broker_option
@click.option("--state", "states", multiple=True, type=click.Choice(STATES), help="Only threads in this state "
              "(repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON thread record per line, for machines.")
def talks(broker: str | None, states: tuple[str, ...], as_json: bool) -> None:
    """List the negotiation threads (negotiations.threads), most recently updated first."""
    from streams.kafka_io import KafkaUnavailable, read_table
    from streams.talks.stream import thread_row

    settings = settings_from_env(broker=broker)
    require_topics(settings, [settings.topics.threads], False)
    try:
        table = read_table(settings, settings.topics.threads)
    except KafkaUnavailable as exc:
        fail(str(exc))
    threads = sorted((orjson.loads(v) for v in table.values()), key=lambda t: t["updated_at"], reverse=True)
    threads = [t for t in threads if not states or t["state"] in states]
    for thread in threads:
        if as_json:
            click.echo(json_line(thread))
            continue
        row = thread_row(thread)
        state = row["state"].replace("_", " ")
        click.echo(f"{click.style(f'{state:<10}', fg=STATE_COLOURS.get(row['state'], 'yellow'))} "
                   f"{printable(row['title'])}  updated {row['updated_at']}"
                   + (f", expires {row['expires_at']}" if row["expires_at"] else ""))
        for tr in row["history"]:
            click.echo(f"    {tr['at']}  {printable(tr['summary'])}")
    if not threads and not as_json:
        click.echo("no negotiation threads" + (f" in state {', '.join(states)}" if states else "") + ".")


COMMANDS = (talks,)
