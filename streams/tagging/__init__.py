"""Pure tagging core: text in, escalation/negotiation signals out (no Kafka, no I/O per call).

>>> from streams.tagging import load_tagger
>>> result = load_tagger().tag("Kremlin rules out a ceasefire", "")
>>> result["labels"], result["negotiation_stance"]
(['negotiation'], 'rejected')

``tag(title, text)`` offsets index ``title + "\\n" + text`` when the title is non-empty, else ``text``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .engine import ESCALATION_STANCES, NEGOTIATION_STANCES, Tagger, build_tagger, severity_for
from .lexicon import DEFAULT_PACK, LexiconError, load_pack

__all__ = [
    "DEFAULT_PACK",
    "ESCALATION_STANCES",
    "NEGOTIATION_STANCES",
    "LexiconError",
    "Tagger",
    "load_pack",
    "load_tagger",
    "severity_from_score",
]

_cache: dict[str, Tagger] = {}
_lock = threading.Lock()

def load_tagger(path: str | Path | None = None) -> Tagger:
    """The compiled tagger of a rule pack (default ``streams/lexicons/ukraine.yaml``), cached per path.

    Raises :class:`LexiconError` (message names file and line) when the pack is invalid.
    """
    key = str(Path(path).resolve()) if path is not None else str(DEFAULT_PACK)
    tagger = _cache.get(key)
    if tagger is None:
        with _lock:
            tagger = _cache.get(key)
            if tagger is None:
                tagger = build_tagger(path)
                _cache[key] = tagger
    return tagger


def severity_from_score(score: float) -> str:
    """low|medium|high|critical for a 0..1 score, with the thresholds the item severity uses."""
    return severity_for(score, load_tagger().thresholds)
