"""Corroboration of one story by independent origins and camps (pure: plain dicts in, a dict out).

Copies of a story are counted by *origin* (the wire a copy carries, else its own outlet), not by
site: five sites reprinting one TASS wire are one report from ``russia-state``. The registry's rules
say which mixes of camps and origins raise the alert's severity, and its wording turns the camps into
the line an analyst reads ("claimed by Russian state media only (TASS)").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.settings import SEVERITIES

UNCOUNTED_CAMP = "other"
"""Origins in this camp count for no rule unless the rule names it: an unlisted site proves little."""


@dataclass(frozen=True)
class CorroborationRules:
    """The registry's ``camps`` and ``corroboration`` sections, ready to apply."""

    version: str
    camps: Mapping[str, Mapping[str, str]]
    """camp -> {label, verb}"""
    rules: tuple[Mapping[str, Any], ...]
    wording: Mapping[str, str]
    max_listed: int
    max_named: int

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> CorroborationRules:
        """From a validated registry's data."""
        c = data["corroboration"]
        return cls(data["version"], data["camps"], tuple(c["rules"]), c["wording"], c["max_listed"], c["max_named"])


def _meets(rule: Mapping[str, Any], origin_camps: list[str]) -> bool:
    counted = rule.get("camps")
    camps = [c for c in origin_camps if (c in counted if counted else c != UNCOUNTED_CAMP)]
    return len(camps) >= rule.get("min_origins", 0) and len(set(camps)) >= rule.get("min_camps", 0)


def _named(names: list[str], most: int) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} +{len(names) - most} more"


def summary_line(by_camp: Mapping[str, list[str]], rules: CorroborationRules) -> str:
    """The wording for origins grouped by camp, camps in the order they first carried the story."""
    camps, w, most = list(by_camp), rules.wording, rules.max_named
    label = {c: rules.camps[c]["label"] for c in camps}
    if len(camps) == 1:
        c = camps[0]
        return w["one_camp"].format(verb=rules.camps[c]["verb"], camp=label[c], origins=_named(by_camp[c], most))
    if len(camps) == 2:
        a, b = camps
        return w["two_camps"].format(first=label[a], first_origins=_named(by_camp[a], most),
                                     second=label[b], second_origins=_named(by_camp[b], most))
    return w["across_camps"].format(camps="; ".join(f"{label[c]} ({_named(by_camp[c], most)})" for c in camps))


def corroborate(copies: Iterable[Mapping[str, Any]], rules: CorroborationRules) -> dict[str, Any]:
    """The corroboration of one story from its copies, in arrival order.

    A copy is ``{"id", "outlet", "outlet_name", "origin", "origin_name", "camp"}`` (``camp`` is the
    origin's camp; :meth:`streams.sources.Attribution.copy` makes one; ``url`` and other keys are
    ignored). Copies with an ``id`` already seen count once. Returns the alert's ``corroboration``::

        {"origins": {"count", "names"}, "camps": {"count", "names"}, "outlets": {"count", "names"},
         "copies", "by_camp": {camp: [origin names]}, "single_camp", "camp_mix", "rules",
         "severity_bump", "summary", "registry_version"}

    ``names`` lists keep arrival order, at most ``max_listed`` each (``camps`` is never cut: there are
    seven). ``camp_mix`` is the sorted camps joined by "+", a bounded metric label (at most 127 values).
    ``severity_bump`` is how many of the registry's rules the story meets (``rules`` names them).
    """
    origins: dict[str, tuple[str, str]] = {}
    outlets: dict[str, str] = {}
    seen: set[str] = set()
    count = 0
    for c in copies:
        cid = c.get("id")
        if cid is not None:
            if cid in seen:
                continue
            seen.add(cid)
        count += 1
        origins.setdefault(c["origin"], (c["origin_name"], c["camp"]))
        outlets.setdefault(c["outlet"], c["outlet_name"])
    if not count:
        raise ValueError("corroborate() needs at least one copy of the story")
    by_camp: dict[str, list[str]] = {}
    for name, camp in origins.values():
        by_camp.setdefault(camp, []).append(name)
    origin_camps = [camp for _, camp in origins.values()]
    met = [r["id"] for r in rules.rules if _meets(r, origin_camps)]
    most = rules.max_listed
    return {
        "origins": {"count": len(origins), "names": [n for n, _ in origins.values()][:most]},
        "camps": {"count": len(by_camp), "names": list(by_camp)},
        "outlets": {"count": len(outlets), "names": list(outlets.values())[:most]},
        "copies": count,
        "by_camp": {camp: names[:most] for camp, names in by_camp.items()},
        "single_camp": len(by_camp) == 1,
        "camp_mix": "+".join(sorted(by_camp)),
        "rules": met,
        "severity_bump": len(met),
        "summary": summary_line(by_camp, rules),
        "registry_version": rules.version,
    }


def bumped_severity(severity: str, bump: int) -> str:
    """``severity`` raised ``bump`` levels, capped at the highest (``critical``)."""
    return SEVERITIES[min(SEVERITIES.index(severity) + max(bump, 0), len(SEVERITIES) - 1)]
