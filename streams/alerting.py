"""Per-item alert rules: a tagged item in, zero to two alerts out (pure, no Kafka).

An alert is raised for each kind (escalation, negotiation) whose counting signals reach the minimum
severity; signals that do not count (hypothetical, historical, negated) stay on the tagged item only.
A negotiation alert carries the item's ``negotiation_stance`` and its summary starts with it
("REJECTED — Zelensky rules out ceding Donbas"). An alert says where and when: the item's ``locations``
and ``published_at``, its two scores, and per category the stance of its first counting signal with that
signal's sentence (headline first, as for ``negotiation_stance``), so a stance comes with what it reads.
Alert ids are deterministic (rule + item id), so a consumer can drop repeats after a worker restart.
"""

from __future__ import annotations

import hashlib

from streams.records import now_iso
from streams.settings import SEVERITIES
from streams.sources import bumped_severity
from streams.tagging import severity_from_score

KINDS = ("escalation", "negotiation")
MAX_EVIDENCE = 3
MAX_SUMMARY = 240
MAX_COPIES_LISTED = 10
"""Copies (id, outlet, url) an alert's corroboration lists; ``copies.count`` is the total."""


def severity_rank(severity: str) -> int:
    """0 for low … 3 for critical."""
    return SEVERITIES.index(severity)


def alert_id(rule: str, item_id: str) -> str:
    """Deterministic id of the alert that ``rule`` raised for ``item_id``."""
    return rule[:3] + "-" + hashlib.sha256(f"{rule}|{item_id}".encode()).hexdigest()[:24]


def _unique(values) -> list:
    return list(dict.fromkeys(v for v in values if v))


MAX_EVIDENCE_CHARS = 280


def evidence_sentence(doc: str, start: int, end: int) -> str:
    """The sentence of ``doc`` around the span ``start:end`` (trimmed around the span when very long)."""
    left = max(doc.rfind(mark, 0, start) for mark in ".!?\n") + 1
    ends = [i for i in (doc.find(mark, end) for mark in ".!?\n") if i != -1]
    right = min(ends) + 1 if ends else len(doc)
    if right - left > MAX_EVIDENCE_CHARS:
        half = (MAX_EVIDENCE_CHARS - (end - start)) // 2
        left, right = max(left, start - half), min(right, end + half)
        return "…" + " ".join(doc[left:right].split()) + "…"
    return " ".join(doc[left:right].split())


def _summary(kind: str, signals: list[dict], actors: list[str], item: dict) -> str:
    """``STANCE — headline (categories; actors)``; an escalation alert starts with ``ESCALATION``."""
    stance = item.get("negotiation_stance") if kind == "negotiation" else None
    head = (stance or kind).upper()
    parts = _unique(s["category"] for s in signals)
    tail = ", ".join(parts[:4])
    if actors:
        tail += f"; {', '.join(actors[:4])}"
    subject = " ".join((item.get("title") or signals[0]["text"]).split())
    line = f"{head} — {subject} ({tail})"
    return line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 1] + "…"


def category_stances(signals: list[dict], sentences: list[str]) -> list[dict]:
    """``[{category, stance, evidence}]``, one per category of ``signals`` (in text order): the category's
    first signal gives its stance and its sentence the evidence (``sentences[i]``:
    :func:`evidence_sentence` of ``signals[i]``)."""
    first: dict[str, tuple[dict, str]] = {}
    for s, sentence in zip(signals, sentences, strict=True):
        first.setdefault(s["category"], (s, sentence))
    return [{"category": c, "stance": s.get("stance") or "", "evidence": sentence}
            for c, (s, sentence) in first.items()]


def corroborated(alert: dict, corroboration: dict, copies: list[dict], total: int) -> dict:
    """A version of ``alert`` (same id) saying who reported its story: ``corroboration`` is
    :func:`streams.sources.corroborate` of the story's kept ``copies``; ``total`` counts every copy.

    The severity is the alert's ``base_severity`` (its own, kept on every version) raised one level per
    registry rule the story meets, so a version never compounds an earlier bump.
    """
    base = alert.get("base_severity", alert["severity"])
    listed = [{"id": c["id"], "outlet": c["outlet_name"], "url": c.get("url", "")} for c in copies[:MAX_COPIES_LISTED]]
    return dict(alert, severity=bumped_severity(base, corroboration["severity_bump"]), base_severity=base,
                created_at=now_iso(),
                corroboration=dict(corroboration, copies={"count": max(int(total), len(copies)), "listed": listed}))


def build_alerts(tagged: dict, min_severity: str = "medium") -> list[dict]:
    """The per-item alerts for one tagged item, at or above ``min_severity``."""
    alerts = []
    doc = f"{tagged['title']}\n{tagged['text']}" if tagged.get("title") else tagged.get("text", "")
    for kind in KINDS:
        signals = [s for s in tagged.get("signals", ()) if s["kind"] == kind and s.get("counts", True)]
        if not signals:
            continue
        severity = severity_from_score(tagged.get(f"{kind}_score", 0.0))
        if severity_rank(severity) < severity_rank(min_severity):
            continue
        actors = _unique(a for s in signals for a in s.get("actors", ())) or list(tagged.get("actors", ()))
        sentences = [evidence_sentence(doc, s["start"], s["end"]) for s in signals]
        alert = {
            "alert_id": alert_id(kind, tagged["id"]),
            "type": kind,
            "severity": severity,
            "summary": _summary(kind, signals, actors, tagged),
            "item_ids": [tagged["id"]],
            "categories": _unique(s["category"] for s in signals),
            "actors": actors,
            "stances": category_stances(signals, sentences),
            "evidence": _unique(sentences)[:MAX_EVIDENCE],
            "locations": list(tagged.get("locations", ())),
            "escalation_score": tagged.get("escalation_score", 0.0),
            "negotiation_score": tagged.get("negotiation_score", 0.0),
            "created_at": now_iso(),
            "lexicon_version": tagged.get("lexicon_version", ""),
        }
        if kind == "negotiation" and tagged.get("negotiation_stance"):
            alert["negotiation_stance"] = tagged["negotiation_stance"]
        for field in ("source", "url", "title", "published_at"):
            if tagged.get(field):
                alert[field] = tagged[field]
        alerts.append(alert)
    return alerts
