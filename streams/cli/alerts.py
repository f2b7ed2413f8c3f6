"""Alerts in the terminal: how one alert is printed and filtered, and ``tail``."""

from __future__ import annotations

from datetime import timezone

import click
import orjson

from streams.cli.options import broker_option, create_option, fail, require_topics, settings_from_env
from streams.cli.terminal import json_line, printable
from streams.records import parse_rfc3339
from streams.settings import ALERT_TYPES, SEVERITIES
from streams.sources import CAMPS
from streams.tagging.engine import ESCALATION_STANCES, NEGOTIATION_STANCES

SEVERITY_COLOURS = {"low": "blue", "medium": "yellow", "high": "red", "critical": "magenta"}
TYPE_COLOURS = {"escalation": "red", "negotiation": "green", "trend": "cyan"}
EVIDENCE_CHARS = 160


def _clip(text: str, limit: int) -> str:
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


EVENT_TIMES = (
    ("published_at", ""),
    ("transition.at", "time: the thread's transition"),
    ("window_start", "time: the window's start"),
    ("created_at", "time: when the alert was made (no published_at)"),
)
"""Where an alert's event time comes from, in order, and what the place line then says: the item's
publication; a talks transition's time (its item's, or the deadline's); a trend window's start; else the
alert's own creation. The live page takes the same order."""


def event_time(alert: dict) -> tuple[str, str]:
    """The alert's event time as ISO 8601 UTC to the second (``""`` when no field of :data:`EVENT_TIMES` is a
    timestamp), and the note that says where it came from (``""`` for the item's ``published_at``)."""
    for path, note in EVENT_TIMES:
        value: object = alert
        for name in path.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        try:
            moment = parse_rfc3339(str(value or ""))
        except ValueError:
            continue
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), note
    return "", "no time given"


def _same_text(text: str) -> str:
    return " ".join(str(text).split()).casefold().rstrip(".!?…")


def evidence_line(alert: dict) -> str | None:
    """The first evidence sentence that is not the title (compared without case, spacing and the final
    stop); ``None`` when every one is: the title is on the summary line already."""
    title = _same_text(alert.get("title") or "")
    return next((e for e in alert.get("evidence") or () if e and _same_text(e) != title), None)


def format_alert(alert: dict) -> str:
    """A readable, coloured alert: event time (ISO 8601 UTC), severity, type and summary; then where and
    when (places, and where the time comes from unless it is the item's); then the camp line (who reports its story); then
    one evidence line that is not the title; then source and link. Every field is :func:`printable` (an
    alert carries item text); the colours are ours, and click drops them when the output is not a terminal."""
    when, note = event_time(alert)
    severity = printable(alert.get("severity", "low"))
    kind = printable(alert.get("type", "?"))
    badge = click.style(f"{severity.upper():8}", fg=SEVERITY_COLOURS.get(severity, "white"), bold=True)
    kind_badge = click.style(f"{kind:11}", fg=TYPE_COLOURS.get(kind, "white"))
    summary = printable(alert.get("summary", ""))
    if kind == "trend" and "count" in alert:
        summary += " " + printable(f"({alert['count']} vs baseline {alert.get('baseline', 0):g})")
    lines = [f"{when or 'no time':20} {badge} {kind_badge} {summary}"]
    indent = " " * 21
    places = ", ".join(printable(p) for p in alert.get("locations") or () if p)
    where = [f"in {places}" if places else "no place named"]
    if note:
        where.append(note)
    lines.append(indent + " · ".join(where))
    corroboration = alert.get("corroboration")
    if isinstance(corroboration, dict) and corroboration.get("summary"):
        counts = ", ".join(f"{n} {k if n != 1 else k[:-1]}" for k in ("origins", "camps")
                           if isinstance(n := (corroboration.get(k) or {}).get("count"), int))
        lines.append(indent + click.style(f"{printable(corroboration['summary'])} [{counts}]", fg="cyan"))
    evidence = evidence_line(alert)
    if evidence:
        lines.append(indent + click.style(f"“{_clip(evidence, EVIDENCE_CHARS)}”", italic=True))
    source = " — ".join(printable(x) for x in (alert.get("source"), alert.get("url")) if x)
    if source:
        lines.append(indent + click.style(source, dim=True))
    return "\n".join(lines)


def alert_stances(alert: dict) -> set[str]:
    """The item's ``negotiation_stance`` and the stance of each of the alert's categories."""
    found = {s.get("stance") for s in alert.get("stances") or () if isinstance(s, dict)}
    return {x for x in (alert.get("negotiation_stance"), *found) if isinstance(x, str) and x}


def alert_matches(alert: dict, *, types: tuple[str, ...] = (), min_severity: str | None = None,
                  categories: tuple[str, ...] = (), actors: tuple[str, ...] = (),
                  stances: tuple[str, ...] = (), camps: tuple[str, ...] = ()) -> bool:
    """Whether an alert passes the ``tail`` filters (each filter: any of its values; all filters: and).
    ``stances``: the item's negotiation stance or a category's stance is one of them; ``camps``: any of them
    among the camps that carry the alert's story."""
    if types and alert.get("type") not in types:
        return False
    if camps:
        have = ((alert.get("corroboration") or {}).get("camps") or {}).get("names") or ()
        if not set(camps) & set(have):
            return False
    if stances and not set(stances) & alert_stances(alert):
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
@click.option("--stance", "stances", multiple=True, type=click.Choice(NEGOTIATION_STANCES + ESCALATION_STANCES),
              help="Only alerts whose item or one of whose categories has this stance, e.g. rejected or "
                   "threatened (repeatable).")
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
