"""What every command shares: the ``--broker`` option, settings from the environment, and failing with a fix."""

from __future__ import annotations

from typing import NoReturn

import click

from streams.settings import Settings, SettingsError

broker_option = click.option("--broker", default=None, metavar="URL",
                             help="Kafka bootstrap, kafka://host:port [env SIGNALWATCH_BROKER].")


def settings_from_env(**overrides) -> Settings:
    """:meth:`Settings.from_env` with a settings mistake shown as a usage error (the message names the fix)."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def fail(message: str) -> NoReturn:
    """Exit 1 with ``Error: message`` on stderr."""
    raise click.ClickException(message)
