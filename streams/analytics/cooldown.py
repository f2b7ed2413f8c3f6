"""Alert cooldown: per (type, category, main actor), no repeat within the cooldown unless severity rises.

Time is the alert's event time (the item's ``published_at`` or the surge's triggering item), so a replay
of history suppresses exactly what the live run suppressed. A repeat of the very same alert id is dropped
unless its severity is higher (a corroboration update), or unless it comes from the very input position
that sent it (a replay after a crash, whose first send may not have reached Kafka).

Nothing is hidden without a count: an alert the cooldown holds back is counted in its key's state
(:func:`hold`: how many, their item ids and summaries, the highest severity), and the next alert sent for
the key carries that count (:func:`release`). When no next alert comes, :func:`digest` sends the count on
its own once the cooldown of the key's last alert is over: by then a next alert would have been sent, so
the digest takes its place and nothing held back waits longer than one cooldown. The held list is
bounded: an alert that no longer fits it (:data:`MAX_HELD`) sends the list at once as a digest and starts
a new one, so every alert held back is listed with its id and summary in exactly one alert. An alert more
severe than the last one sent for its key is never held back.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.alerting import alert_id
from streams.settings import SEVERITIES

MAX_HELD = 10
"""Most summaries, and most item ids, in one held list (one alert's ``suppressed``)."""


def cooldown_key(alert: Mapping) -> str:
    """``type|category|main actor`` of an alert (trend alerts: ``trend|key|``)."""
    if alert["type"] == "trend":
        return f"trend|{alert.get('key', '')}|"
    category = (alert.get("categories") or [""])[0]
    actor = (alert.get("actors") or [""])[0]
    return f"{alert['type']}|{category}|{actor}"


def decide(state: dict | None, alert_id: str, severity: str, at: float, cooldown: float, position: int = -1
           ) -> tuple[bool, str, dict | None]:
    """``(send, reason, new_state)`` for an alert given the key's last sent alert ``state``.

    ``state`` is ``{"id", "rank", "at", "pos"}`` of the last alert sent for the key (None: none yet);
    ``position`` is where the alert's input was read (-1: unknown).
    """
    rank = SEVERITIES.index(severity)
    sent = {"id": alert_id, "rank": rank, "at": at, "pos": position}
    if state is None:
        return True, "first", sent
    if rank > state["rank"]:
        return True, "severity_rises", sent
    if alert_id == state["id"]:
        if position >= 0 and state.get("pos") == position and rank == state["rank"]:
            return True, "replay", state
        return False, "repeat", state
    if cooldown > 0 and abs(at - state["at"]) < cooldown:
        return False, "cooldown", state
    return True, "cooled_down", sent


def hold(state: dict, alert: Mapping, position: int = -1) -> dict:
    """The key's state with ``alert`` counted as held back (an alert counted before, a replay, is not
    counted again; nor is one that the key's last sent alert or a digest already accounted for).

    When ``alert`` does not fit the held list (:data:`MAX_HELD` summaries or item ids), the list moves to
    ``spilled`` with ``by`` = ``position``, to go out at once as a digest (:func:`digest_alert`; kept so a
    replay of ``position`` sends it again), and ``alert`` starts a new list."""
    aid = alert.get("alert_id", "")
    held = state.get("held") or _new_list(state)
    if _counted(held, position, aid):
        return state
    ids = [i for i in alert.get("item_ids", []) if i not in held["ids"]]
    if held["n"] and (held["n"] == MAX_HELD or len(held["ids"]) + len(ids) > MAX_HELD):
        state = {**state, "spilled": {**held, "by": position}, "digested": held["pos"]}
        held, ids = {**_new_list(state), "at": held.get("at", [])}, alert.get("item_ids", [])
    return {**state, "held": {"n": held["n"] + 1, "ids": (held["ids"] + ids)[:MAX_HELD],
                              "summaries": held["summaries"] + [alert.get("summary", "")],
                              "rank": max(held["rank"], SEVERITIES.index(alert["severity"])), "pos": position,
                              "at": (held.get("at", []) if held["pos"] == position else []) + [aid],
                              "first": held.get("first", position), "lv": alert.get("lexicon_version", "")}}


def _new_list(state: dict) -> dict:
    """An empty held list: positions before the key's last sent alert, and up to its last digest, are
    already accounted for."""
    return {"n": 0, "ids": [], "summaries": [], "rank": 0, "pos": max(state.get("digested", -1), state["pos"] - 1)}


def _counted(held: dict, position: int, aid: str) -> bool:
    """Whether alert ``aid`` read at ``position`` is already in ``held`` or before it. One position can hold
    several alerts of a key (a surge per window size), so at the list's last position the alert ids
    held there (``at``) decide."""
    if position < 0:
        return False
    if position == held["pos"] and held["n"]:
        return aid in held.get("at", [aid])
    return position <= held["pos"]


def release(held: dict | None, alert: dict) -> dict:
    """``alert`` with what its key held back since the last alert sent (``held``, from :func:`hold`) as
    ``suppressed``: count, item ids, summaries, highest severity; unchanged when nothing was."""
    if not held:
        return alert
    return {**alert, "suppressed": {"count": held["n"], "item_ids": held["ids"], "summaries": held["summaries"],
                                    "highest_severity": SEVERITIES[held["rank"]]}}


def digest(key: str, state: dict, now: float, cooldown: float, created_at: str) -> tuple[dict | None, dict]:
    """``(digest alert, new state)`` for cooldown key ``key`` at event time ``now``: what the key held back,
    as an alert of its own, once the cooldown of its last sent alert is over (``(None, state)`` before that,
    or when nothing is held). The new state forgets the count and remembers the last position it covered,
    so a replay of those inputs is not counted again."""
    held = state.get("held")
    if not held or now - state["at"] < cooldown:
        return None, state
    new = {k: v for k, v in state.items() if k != "held"}
    return digest_alert(key, held, created_at), {**new, "digested": held["pos"]}


def digest_alert(key: str, held: dict, created_at: str) -> dict:
    """The digest alert of cooldown key ``key`` for its held list ``held``. Its id comes from the key and the
    first position held, so a digest sent again (a replay, or a crash before its state was written) is the
    same alert."""
    kind, category, actor = key.split("|")
    n, summaries = held["n"], held["summaries"]
    alert = {"alert_id": alert_id("digest", f"{key}|{held.get('first', held['pos'])}"), "type": kind,
             "severity": SEVERITIES[held["rank"]],
             "summary": f"+{n} more held back: {summaries[0] if summaries else key}" + ("; …" if n > 1 else ""),
             "item_ids": held["ids"], "categories": [category] if category and kind != "trend" else [],
             "actors": [actor] if actor else [], "evidence": summaries[1:], "created_at": created_at,
             "lexicon_version": held.get("lv", ""), "digest": True}
    if kind == "trend":
        alert["key"] = category
    return release(held, alert)
