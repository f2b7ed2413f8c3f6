"""YAML data files validated against a JSON Schema, with errors that name the file and line.

Rule packs (``streams/lexicons/``) and the source registry (``streams/sources/``) are edited by
analysts; a mistake must point at the line to fix, so schema error paths are mapped back to the start
mark of the offending YAML node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from streams.settings import SCHEMA_DIR

try:  # libyaml is much faster on large files
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


def read_schema(name: str, error: type[Exception]) -> dict[str, Any]:
    """The JSON Schema ``schemas/<name>`` (of the checkout, or ``SIGNALWATCH_SCHEMAS_DIR``)."""
    path = SCHEMA_DIR / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"schema {name} not found at {path}: set SIGNALWATCH_SCHEMAS_DIR to the schemas/ folder") from exc


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


def line_of(root: yaml.Node, path: list[Any]) -> int:
    """1-based line of the node at ``path`` (or of its nearest existing ancestor)."""
    return _node_at(root, path).start_mark.line + 1


def load_yaml(path: Path, schema: dict[str, Any], what: str, error: type[Exception]) -> tuple[dict, yaml.Node]:
    """Read, parse and validate ``path``; returns the data and its node tree (for line numbers).

    Raises ``error`` with a message ``<file>:<line>: ...`` naming the ``what`` (e.g. "rule pack").
    """
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc
    try:
        root = yaml.compose(source, Loader=_Loader)
        data = yaml.load(source, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise error(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None or not isinstance(data, dict):
        raise error(f"{path}:1: a {what} must be a YAML mapping")
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if errors:
        err = jsonschema.exceptions.best_match(errors) or errors[0]
        loc = "/".join(str(x) for x in err.absolute_path) or "(root)"
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        raise error(f"{path}:{line_of(root, list(err.absolute_path))}: invalid {what} at {loc}: {err.message}{more}")
    return data, root
