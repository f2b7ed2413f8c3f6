"""Who says so: the source registry, wire origin and corroboration across camps (pure, no Kafka).

    registry = default_registry()                 # streams/sources/registry.yaml, loaded once
    a = registry.attribute(item)                  # outlet, origin (credited wire or the outlet), camp
    copy = a.copy(item["id"], item.get("url", ""))    # keep one per copy of the story
    c = registry.corroborate(copies)              # {origins, camps, outlets, summary, severity_bump, ...}
    severity = bumped_severity(alert_severity, c["severity_bump"])

docs/sources.md explains the registry to analysts.
"""

from .corroboration import CorroborationRules, bumped_severity, corroborate
from .registry import (
    DEFAULT_REGISTRY,
    Attribution,
    Outlet,
    RegistryError,
    SourceRegistry,
    default_registry,
    is_unknown,
    load_registry,
    source_key,
    split_url,
    unknown_outlet,
)

CAMPS = ("ukraine-official", "ukraine-media", "russia-state", "russia-independent", "western", "international", "other")
"""Every camp, as the schema names them."""

__all__ = [
    "CAMPS",
    "DEFAULT_REGISTRY",
    "Attribution",
    "CorroborationRules",
    "Outlet",
    "RegistryError",
    "SourceRegistry",
    "bumped_severity",
    "corroborate",
    "default_registry",
    "is_unknown",
    "load_registry",
    "source_key",
    "split_url",
    "unknown_outlet",
]
