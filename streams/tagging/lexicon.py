"""Loading and validating rule packs (``streams/lexicons/*.yaml``).

A pack is validated against ``schemas/lexicon.v1.json`` (JSON Schema 2020-12) when it is loaded; an
invalid pack raises :class:`LexiconError` whose message names the file and line of the offending
node (the schema error path is mapped back to the YAML node's start mark).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from streams.datafile import line_of, load_yaml, read_schema

_HERE = Path(__file__).resolve().parent
DEFAULT_PACK = _HERE.parent / "lexicons" / "ukraine.yaml"


class LexiconError(ValueError):
    """A rule pack that cannot be used (unreadable, not YAML, or not valid against the schema)."""


@lru_cache(maxsize=1)
def lexicon_schema() -> dict[str, Any]:
    """The JSON Schema of rule packs."""
    return read_schema("lexicon.v1.json", LexiconError)


def load_pack(path: str | Path | None = None) -> dict[str, Any]:
    """Read, parse and validate a rule pack; returns the plain data. Raises :class:`LexiconError`."""
    p = Path(path) if path is not None else DEFAULT_PACK
    data, root = load_yaml(p, lexicon_schema(), "rule pack", LexiconError)
    _check_references(data, root, p)
    return data


def _check_references(data: dict[str, Any], root: yaml.Node, p: Path) -> None:
    """Checks the schema cannot express: context groups named by ``requires``, ``blocked_by`` (of terms and
    categories) and ``item_requires`` must exist."""
    contexts = set(data.get("contexts", {}))
    for cname, cat in data["categories"].items():
        for key in ("item_requires", "blocked_by"):
            for ctx in cat.get(key, []):
                if ctx not in contexts:
                    line = line_of(root, ["categories", cname, key])
                    raise LexiconError(f"{p}:{line}: {cname} {key} unknown context group {ctx!r}")
        for i, term in enumerate(cat["terms"]):
            if isinstance(term, dict):
                for key in ("requires", "blocked_by"):
                    for ctx in term.get(key, []):
                        if ctx not in contexts:
                            line = line_of(root, ["categories", cname, "terms", i])
                            raise LexiconError(
                                f"{p}:{line}: term {term['term']!r} of {cname} {key} "
                                f"unknown context group {ctx!r}"
                            )
