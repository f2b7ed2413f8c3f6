"""Alerts in the terminal: how one alert is printed and filtered, and ``tail``."""

from __future__ import annotations

import click
import orjson

from streams.cli.options import broker_option, create_option, fail, require_topics, settings_from_env
from streams.cli.terminal import json_line, printable
from streams.settings import ALERT_TYPES, SEVERITIES
from streams.sources import CAMPS
from streams.tagging.engine import NEGOTIATION_STANCES

SEVERITY_COLOURS = {"low": "blue", "medium": "yellow", "high": "red", "critical": "magenta"}
TYPE_COLOURS = {"escalation": "red", "negotiation": "green", "trend": "cyan"}
EVIDENCE_CHARS = 160


def _clip(text: str, limit: int) -> str:
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_alert(alert: dict) -> str:
    """A readable, coloured alert: time (UTC), severity, type and summary; then the camp line (who reports
    its story); then the evidence snippet; then source and link. Every field is :func:`printable` (an alert carries item text); the colours are ours,
    and click drops them when the output is not a terminal."""
    created = printable(alert.get("created_at", ""))
    when = created[11:19] if len(created) >= 19 else "--:--:--"
    severity = printable(alert.get("severity", "low"))
    kind = printable(alert.get("type", "?"))
    badge = click.style(f"{severity.upper():8}", fg=SEVERITY_COLOURS.get(severity, "white"), bold=True)
    kind_badge = click.style(f"{kind:11}", fg=TYPE_COLOURS.get(kind, "white"))
    summary = printable(alert.get("summary", ""))
    if kind == "trend" and "count" in alert:
        summary += " " + printable(f"({alert['count']} vs baseline {alert.get('baseline', 0):g})")
    lines = [f"{when} {badge} {kind_badge} {summary}"]
    indent = " " * 9
    corroboration = alert.get("corroboration")
    if isinstance(corroboration, dict) and corroboration.get("summary"):
        counts = ", ".join(f"{n} {k if n != 1 else k[:-1]}" for k in ("origins", "camps")
                           if isinstance(n := (corroboration.get(k) or {}).get("count"), int))
        lines.append(indent + click.style(f"{printable(corroboration['summary'])} [{counts}]", fg="cyan"))
    evidence = [e for e in alert.get("evidence") or () if e]
    if evidence:
        more = f" (+{len(evidence) - 1})" if len(evidence) > 1 else ""
        lines.append(indent + click.style(f"“{_clip(evidence[0], EVIDENCE_CHARS)}”{more}", italic=True))
    where = " — ".join(printable(x) for x in (alert.get("source"), alert.get("url")) if x)
    if where:
        lines.append(indent + click.style(where, dim=True))
    return "\n".join(lines)


def alert_matches(alert: dict, *, types: tuple[str, ...] = (), min_severity: str | None = None,
                  categories: tuple[str, ...] = (), actors: tuple[str, ...] = (),
                  stances: tuple[str, ...] = (), camps: tuple[str, ...] = ()) -> bool:
    """Whether an alert passes the ``tail`` filters (each filter: any of its values; all filters: and).
    ``camps``: any of them among the camps that carry the alert's story."""
    if types and alert.get("type") not in types:
        return False
    if camps:
        have = ((alert.get("corroboration") or {}).get("camps") or {}).get("names") or ()
        if not set(camps) & set(have):
            return False
    if stances and alert.get("negotiation_stance") not in stances:
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


def print_alert(value: bytes, as_json: bool, min_severity: str | None, *, types: tuple[str, ...] = (),
                categories: tuple[str, ...] = (), actors: tuple[str, ...] = (), stances: tuple[str, ...] = (),
                camps: tuple[str, ...] = ()) -> bool:
    """Print one alert record if it passes the filters; return whether it was printed."""
    try:
        alert = orjson.loads(value)
    except orjson.JSONDecodeError:
        click.echo(f"(not JSON: {value[:80]!r})", err=True)
        return False
    if not isinstance(alert, dict):
        click.echo(f"(not an alert: {value[:80]!r})", err=True)
        return False
    if not alert_matches(alert, types=types, min_severity=min_severity, categories=categories, actors=actors,
                         stances=stances, camps=camps):
        return False
    click.echo(json_line(alert) if as_json else format_alert(alert))
    return True


@click.command()
@broker_option
@click.option("--topic", "topic_names", multiple=True, help="Alert topic(s) to read (default: all).")
@click.option("--type", "types", multiple=True, type=click.Choice(ALERT_TYPES),
              help="Only alerts of this type (repeatable).")
@click.option("--min-severity", type=click.Choice(SEVERITIES), default=None, help="Hide less severe alerts.")
@click.option("--category", "categories", multiple=True, metavar="NAME",
              help="Only alerts with this category, e.g. missile_strike or ceasefire (repeatable).")
@click.option("--actor", "actors", multiple=True, metavar="NAME",
              help="Only alerts naming this actor, e.g. Russia (repeatable; case-insensitive).")
@click.option("--stance", "stances", multiple=True, type=click.Choice(NEGOTIATION_STANCES),
              help="Only negotiation alerts whose item has this stance, e.g. rejected (repeatable).")
@click.option("--camp", "camps", multiple=True, type=click.Choice(CAMPS),
              help="Only alerts whose story this camp carries, e.g. russia-state (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON alert per line, for machines.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest alert, not the newest.")
@create_option
def tail(broker: str | None, topic_names: tuple[str, ...], types: tuple[str, ...], min_severity: str | None,
         categories: tuple[str, ...], actors: tuple[str, ...], stances: tuple[str, ...], camps: tuple[str, ...],
         as_json: bool,
         from_beginning: bool, create: bool) -> None:
    """Print alerts as they arrive until Ctrl-C: all alert topics, or those of --type / --topic."""
    from streams.kafka_io import KafkaUnavailable, TopicReader

    settings = settings_from_env(broker=broker)
    t = settings.topics
    by_type = {"escalation": t.escalation, "negotiation": t.negotiation, "trend": t.trend}
    names = list(topic_names) or [by_type[x] for x in types] or t.alerts()
    require_topics(settings, names, create)
    try:
        reader = TopicReader(settings, names, from_beginning=from_beginning)
    except KafkaUnavailable as exc:
        fail(str(exc))
    start = "the oldest alert" if from_beginning else "now"
    click.echo(f"following {', '.join(names)} from {start}; Ctrl-C stops", err=True)
    try:
        for record in reader:
            print_alert(record.value, as_json, min_severity, types=types, categories=categories, actors=actors,
                        stances=stances, camps=camps)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()


COMMANDS = (tail,)
