"""Loading and validating rule packs (``streams/lexicons/*.yaml``).

A pack is validated against ``schemas/lexicon.v1.json`` (JSON Schema 2020-12) when it is loaded; an
invalid pack raises :class:`LexiconError` whose message names the file and line of the offending
node (the schema error path is mapped back to the YAML node's start mark).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from streams.settings import SCHEMA_DIR

_HERE = Path(__file__).resolve().parent
DEFAULT_PACK = _HERE.parent / "lexicons" / "ukraine.yaml"
_SCHEMA_CANDIDATES = (SCHEMA_DIR / "lexicon.v1.json",)  # schemas/ of the checkout or SIGNALWATCH_SCHEMAS_DIR

try:  # libyaml is much faster on large packs
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


class LexiconError(ValueError):
    """A rule pack that cannot be used (unreadable, not YAML, or not valid against the schema)."""


@lru_cache(maxsize=1)
def lexicon_schema() -> dict[str, Any]:
    """The JSON Schema of rule packs."""
    for cand in _SCHEMA_CANDIDATES:
        if cand.is_file():
            return json.loads(cand.read_text(encoding="utf-8"))
    raise LexiconError(f"lexicon schema not found (looked in {', '.join(map(str, _SCHEMA_CANDIDATES))})")


def _node_at(root: yaml.Node, path: list[Any]) -> yaml.Node:
    """Follow a JSON path (keys / indices) through a composed YAML node tree, as far as it goes."""
    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    node = value_node
                    break
            else:
                return node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _best_error(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    return jsonschema.exceptions.best_match(errors) or errors[0]


def load_pack(path: str | Path | None = None) -> dict[str, Any]:
    """Read, parse and validate a rule pack; returns the plain data. Raises :class:`LexiconError`."""
    p = Path(path) if path is not None else DEFAULT_PACK
    try:
        source = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise LexiconError(f"cannot read rule pack {p}: {exc}") from exc
    try:
        root = yaml.compose(source, Loader=_Loader)
        data = yaml.load(source, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise LexiconError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None or not isinstance(data, dict):
        raise LexiconError(f"{p}:1: a rule pack must be a YAML mapping")
    validator = jsonschema.Draft202012Validator(lexicon_schema())
    errors = list(validator.iter_errors(data))
    if errors:
        err = _best_error(errors)
        node = _node_at(root, list(err.absolute_path))
        line = node.start_mark.line + 1
        loc = "/".join(str(x) for x in err.absolute_path) or "(root)"
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        raise LexiconError(f"{p}:{line}: invalid rule pack at {loc}: {err.message}{more}")
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
                    node = _node_at(root, ["categories", cname, key])
                    raise LexiconError(f"{p}:{node.start_mark.line + 1}: {cname} {key} unknown context group {ctx!r}")
        for i, term in enumerate(cat["terms"]):
            if isinstance(term, dict):
                for key in ("requires", "blocked_by"):
                    for ctx in term.get(key, []):
                        if ctx not in contexts:
                            node = _node_at(root, ["categories", cname, "terms", i])
                            raise LexiconError(
                                f"{p}:{node.start_mark.line + 1}: term {term['term']!r} of {cname} {key} "
                                f"unknown context group {ctx!r}"
                            )
