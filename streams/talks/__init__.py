"""Negotiation tracker: threads of talks, their states, deadlines and violations (pure core, no Kafka).

>>> from streams.talks import new_state, observe, tick
>>> state = new_state()
>>> update = observe(state, tagged_item)       # per news.tagged record, in event time  # doctest: +SKIP
>>> update = tick(state, now)                  # periodically: expiries, missed deadlines, eviction  # doctest: +SKIP

Rules are data: ``streams/lexicons/talks.yaml`` (schema ``schemas/talks.v1.json``).
"""

from .rules import DEFAULT_RULES, TalksRules, TalksRulesError, load_rules, read_rules
from .tracker import (
    STATES,
    TRANSITION_KINDS,
    new_state,
    observe,
    state_from_threads,
    summary,
    thread_title,
    threads_by_state,
    tick,
    transition_alert,
    transition_alert_id,
)

__all__ = [
    "DEFAULT_RULES",
    "STATES",
    "TRANSITION_KINDS",
    "TalksRules",
    "TalksRulesError",
    "load_rules",
    "new_state",
    "observe",
    "read_rules",
    "state_from_threads",
    "summary",
    "thread_title",
    "threads_by_state",
    "tick",
    "transition_alert",
    "transition_alert_id",
]
