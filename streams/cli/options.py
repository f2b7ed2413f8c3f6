"""What every command shares: the ``--broker`` option, settings from the environment, and failing with a fix."""

from __future__ import annotations

from typing import NoReturn

import click

from streams.settings import ENV_VARS, Settings, SettingsError

broker_option = click.option("--broker", default=None, metavar="URL",
                             help="Kafka bootstrap, kafka://host:port [env SIGNALWATCH_BROKER].")


def settings_from_env(**overrides) -> Settings:
    """:meth:`Settings.from_env` with a settings mistake shown as a usage error that names what the user set:
    the option (``--broker``) when one was given, else the environment variable."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        message = str(exc)
        for name, value in overrides.items():
            if value is not None and name in ENV_VARS:
                message = message.replace(ENV_VARS[name], "--" + name.replace("_", "-"))
        raise click.UsageError(message) from None


def fail(message: str) -> NoReturn:
    """Exit 1 with ``Error: message`` on stderr."""
    raise click.ClickException(message)


create_option = click.option("--create", is_flag=True,
                             help="Create the topic if it does not exist (else a missing topic is an error: "
                                  "usually a typo).")


def require_topics(settings: Settings, names: list[str], create: bool) -> None:
    """Fail on a topic that does not exist, naming the fix, unless ``create`` (then create it).

    Kafka creates a topic on the first write or read by default, so a typo would silently go nowhere."""
    from streams.kafka_io import KafkaUnavailable, create_topics, missing_topics

    try:
        missing = missing_topics(settings, names)
        if missing and create:
            create_topics(settings, extra=missing)
    except KafkaUnavailable as exc:
        fail(str(exc))
    if missing and not create:
        known = ", ".join(settings.topics.all())
        fail(f"topic {', '.join(missing)} does not exist at {settings.broker}: check the name "
             f"(signalwatch's topics: {known}), or pass --create to create it")
