"""The source registry: which outlet published an item, whose report it carries, and its camp.

``streams/sources/registry.yaml`` is validated against ``schemas/source-registry.v1.json`` when it is
loaded, then checked for what a schema cannot say (ids, domains, names, Telegram channels and credits
unique across outlets; wording templates that format); errors name the file, line and outlet.

Everything an item needs is precomputed at load: matching is a dict lookup on the normalised
``source``, else one per label of the URL's host (``m.bbc.co.uk`` -> ``bbc.co.uk``); the wire credit
costs one scan of the lead and the tail for credit names (see :mod:`streams.sources.wire`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from streams.datafile import line_of, load_yaml, read_schema
from streams.sources.corroboration import CorroborationRules, corroborate, summary_line
from streams.sources.wire import WireCredits, WirePatternError

DEFAULT_REGISTRY = Path(__file__).resolve().parent / "registry.yaml"
UNKNOWN_CAMP = "other"


class RegistryError(ValueError):
    """A source registry that cannot be used; the message names the file, line and entry."""


@dataclass(frozen=True, slots=True)
class Outlet:
    """A news outlet. Unknown sources get one too: ``known`` False, camp ``other``, id ``unknown:<key>``."""

    id: str
    name: str
    camp: str
    country: str = ""
    wire: bool = False
    short: str = ""
    known: bool = True

    @property
    def display(self) -> str:
        """The name an alert shows ("AP", "TASS")."""
        return self.short or self.name


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who published one copy (``outlet``) and whose report it is (``origin``: the credited wire, else the outlet)."""

    outlet: Outlet
    origin: Outlet
    matched_by: str
    """"source" (the item's source field), "url" (its URL's host or Telegram channel) or "unknown"."""

    @property
    def known(self) -> bool:
        """False when the item's outlet is not in the registry (count it: an operator adds it)."""
        return self.outlet.known

    @property
    def camp(self) -> str:
        """The camp of the origin: a TASS wire reprinted anywhere is ``russia-state``."""
        return self.origin.camp

    @property
    def credited(self) -> bool:
        """True when the origin is a wire credited in the text, not the outlet itself."""
        return self.origin is not self.outlet

    def copy(self, item_id: str, url: str = "") -> dict[str, str]:
        """The plain record of this copy that :func:`corroborate` takes (small enough to keep per story)."""
        return {"id": item_id, "url": url, "outlet": self.outlet.id, "outlet_name": self.outlet.display,
                "origin": self.origin.id, "origin_name": self.origin.display, "camp": self.origin.camp}


_NON_WORD = re.compile(r"[\W_]+")
_URL_HOST = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//(?:[^/?#@]*@)?([^/?#:]*)(?::\d*)?([^?#]*)")
_AMP_CACHE = ".cdn.ampproject.org"
_TELEGRAM = frozenset({"t.me", "telegram.me"})


def source_key(source: str) -> str:
    """A ``source`` value as registry names are compared: case-folded, punctuation as spaces, no leading "the"."""
    key = " ".join(_NON_WORD.sub(" ", source.casefold()).split())
    return key[4:] if key.startswith("the ") else key


def split_url(url: str) -> tuple[str, str]:
    """(lower-case host without port or trailing dot, path) of a URL; a bare ``host/path`` works too."""
    m = _URL_HOST.match(url if "//" in url else "//" + url)
    return (m.group(1).lower().rstrip("."), m.group(2)) if m else ("", "")


def _amp_cache_host(host: str) -> str:
    """The publisher's host behind a Google AMP cache host (``www-reuters-com.cdn.ampproject.org``)."""
    label = host[: -len(_AMP_CACHE)]
    return label.replace("--", "\0").replace("-", ".").replace("\0", "-")


class SourceRegistry:
    """Outlets, wire credits and corroboration rules of one registry file (immutable once loaded)."""

    def __init__(self, data: Mapping[str, Any], root: Any = None, path: Path | str = "<registry>") -> None:
        self.path = Path(path)
        self.version: str = data["version"]
        self.data = data
        self.outlets: dict[str, Outlet] = {}
        self._by_source: dict[str, Outlet] = {}
        self._by_domain: dict[str, Outlet] = {}
        self._by_telegram: dict[str, Outlet] = {}
        credits: dict[str, list[str]] = {}
        own_patterns: dict[str, list[str]] = {}
        credit_owner: dict[str, str] = {}

        def fail(index: int | None, message: str, *path: Any) -> RegistryError:
            where = ["outlets", index, *path] if index is not None else list(path)
            line = line_of(root, where) if root is not None else 0
            return RegistryError(f"{self.path}:{line}: {message}")

        def claim(table: dict[str, Outlet], key: str, outlet: Outlet, what: str, i: int, field: str) -> None:
            other = table.get(key)
            if other is not None and other.id != outlet.id:
                raise fail(i, f"outlet {outlet.id!r}: {what} {key!r} already belongs to outlet {other.id!r}", field)
            table[key] = outlet

        for i, entry in enumerate(data["outlets"]):
            oid = entry["id"]
            if oid in self.outlets:
                raise fail(i, f"outlet id {oid!r} is used twice", "id")
            outlet = Outlet(oid, entry["name"], entry["camp"], entry["country"], entry["wire"], entry.get("short", ""))
            self.outlets[oid] = outlet
            for name in (oid, entry["name"], entry.get("short", ""), *entry.get("aliases", ())):
                if name and source_key(name):
                    claim(self._by_source, source_key(name), outlet, "name", i, "aliases")
            for domain in entry["domains"]:
                claim(self._by_domain, domain, outlet, "domain", i, "domains")
            for channel in entry.get("telegram", ()):
                claim(self._by_telegram, channel.casefold(), outlet, "Telegram channel", i, "telegram")
            for credit in entry.get("credits", ()):
                if credit_owner.setdefault(credit, oid) != oid:
                    raise fail(i, f"outlet {oid!r}: credit {credit!r} already belongs to outlet "
                                  f"{credit_owner[credit]!r}", "credits")
                credits.setdefault(oid, []).append(credit)
            if entry.get("patterns"):
                own_patterns[oid] = entry["patterns"]
        try:
            self.wires = WireCredits(data["wire_patterns"], credits, own_patterns)
        except WirePatternError as exc:
            raise fail(None, f"wire_patterns: {exc}", "wire_patterns") from exc
        self.rules = CorroborationRules.of(data)
        try:  # every wording template formats with the fields it is given
            for n in (1, 2, 3):
                summary_line({camp: ["X"] for camp in list(data["camps"])[:n]}, self.rules)
        except (KeyError, IndexError, ValueError) as exc:
            raise fail(None, f"corroboration wording: unknown or malformed field {exc}",
                       "corroboration", "wording") from exc

    # -- matching -------------------------------------------------------------------------------------

    def _by_url(self, url: str) -> Outlet | None:
        host, path = split_url(url)
        if host.endswith(_AMP_CACHE):
            host = _amp_cache_host(host)
        elif host in _TELEGRAM:
            parts = [p for p in path.split("/") if p]
            if parts and parts[0] == "s":
                parts = parts[1:]
            return self._by_telegram.get(parts[0].casefold()) if parts else None
        while host:
            outlet = self._by_domain.get(host)
            if outlet is not None:
                return outlet
            dot = host.find(".")
            if dot < 0:
                return None
            host = host[dot + 1:]
        return None

    def match(self, source: str = "", url: str = "") -> tuple[Outlet | None, str]:
        """The registered outlet of an item and how it was found: (outlet, "source" | "url"), or (None, "unknown").

        ``source`` is tried first (names, aliases, ids; or a host name such as ``reuters.com``), then
        the URL's host and its parent domains.
        """
        if source:
            outlet = self._by_source.get(source_key(source))
            if outlet is None and "." in source and " " not in source.strip():
                outlet = self._by_url(source.strip())
            if outlet is not None:
                return outlet, "source"
        if url:
            outlet = self._by_url(url)
            if outlet is not None:
                return outlet, "url"
        return None, "unknown"

    def wire_of(self, title: str, text: str) -> Outlet | None:
        """The wire whose credit line (or, failing one, attribution in the lead) the text carries."""
        oid = self.wires.find(title, text)
        return self.outlets[oid] if oid is not None else None

    def attribute(self, item: Mapping[str, Any]) -> Attribution:
        """Outlet, origin and camp of a news item (uses its ``source``, ``url``, ``title`` and ``text``)."""
        source, url = str(item.get("source") or ""), str(item.get("url") or "")
        outlet, how = self.match(source, url)
        if outlet is None:
            outlet = unknown_outlet(source, url)
        wire = self.wire_of(str(item.get("title") or ""), str(item.get("text") or ""))
        return Attribution(outlet, wire if wire is not None and wire.id != outlet.id else outlet, how)

    def corroborate(self, copies: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """:func:`streams.sources.corroboration.corroborate` with this registry's rules."""
        return corroborate(copies, self.rules)

    # -- the registry's own examples --------------------------------------------------------------------

    def check_examples(self) -> list[str]:
        """What the registry's ``examples`` expect and do not get (empty: all pass)."""
        failures = []
        examples = self.data["examples"]
        for ex in examples["match"]:
            outlet, _ = self.match(ex.get("source", ""), ex.get("url", ""))
            got = outlet.id if outlet else None
            if got != ex["expect"]:
                failures.append(f"match {ex}: got {got!r}")
        for ex in examples["origin"]:
            a = self.attribute(ex)
            got = a.origin.id if a.origin.known else None
            if got != ex["expect"]:
                failures.append(f"origin of {ex['text'][:60]!r}: expected {ex['expect']!r}, got {got!r}")
        for ex in examples["corroboration"]:
            copies = [self.attribute(c).copy(f"copy-{i}", c.get("url", "")) for i, c in enumerate(ex["copies"])]
            got = self.corroborate(copies)
            want = {"origins": ex["origins"], "camps": ex["camps"], "bump": ex["bump"], "summary": ex["summary"]}
            have = {"origins": got["origins"]["count"], "camps": got["camps"]["names"],
                    "bump": got["severity_bump"], "summary": got["summary"]}
            if have != want:
                failures.append(f"corroboration {ex.get('description', '')!r}: expected {want}, got {have}")
        return failures


_HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")


UNKNOWN_PREFIX = "unknown:"


def unknown_outlet(source: str, url: str) -> Outlet:
    """The stand-in outlet of an unlisted source: named by its ``source``, else its URL's host."""
    name = " ".join(source.split())
    if not name and url:
        name = split_url(url)[0]
        for prefix in _HOST_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
    name = name or "unknown source"
    return Outlet(UNKNOWN_PREFIX + name.casefold(), name, UNKNOWN_CAMP, known=False)


def is_unknown(outlet_id: str) -> bool:
    """Whether an outlet id (e.g. a copy record's ``outlet``) stands for an unlisted source."""
    return outlet_id.startswith(UNKNOWN_PREFIX)


@lru_cache(maxsize=1)
def registry_schema() -> dict[str, Any]:
    """The JSON Schema of source registries."""
    return read_schema("source-registry.v1.json", RegistryError)


def load_registry(path: str | Path | None = None) -> SourceRegistry:
    """Read, validate and index a registry file (default: the bundled one). Raises :class:`RegistryError`."""
    p = Path(path) if path is not None else DEFAULT_REGISTRY
    data, root = load_yaml(p, registry_schema(), "source registry", RegistryError)
    return SourceRegistry(data, root, p)


@lru_cache(maxsize=1)
def default_registry() -> SourceRegistry:
    """The bundled registry, loaded once per process."""
    return load_registry()
