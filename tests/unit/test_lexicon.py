"""Rule pack loading: schema validation with line numbers, versioning, term expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.tagging import DEFAULT_PACK, LexiconError, load_pack, load_tagger
from streams.tagging.morph import expand_term, inflect_word

MINI = """\
version: test-2026.11.1
name: test
languages: [en]
categories:
  ceasefire:
    kind: negotiation
    weight: 0.8
    examples:
      - {text: "Ruritania agreed to a truce.", stance: agreed}
      - {text: "The bakery sells cakes.", stance: none}
    terms: [ceasefire, truce]
  shelling:
    kind: escalation
    weight: 0.6
    examples:
      - {text: "Shelling hit Strelsau.", stance: reported}
      - {text: "Ruritania did not deny shelling.", stance: negated}
    terms: [shelling]
cues:
  negation: [=not]
  denied: [deny]
  rejected: [reject]
  conditional: [=if]
  agreed: [agree]
  proposed: [propose]
  open: [=ready]
  threat: [threaten]
  hedge: [=could]
actors:
  Ruritania: {aliases: [Ruritania]}
places:
  Strelsau: {aliases: [Strelsau]}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pack.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_bundled_pack_is_valid():
    pack = load_pack(DEFAULT_PACK)
    assert pack["version"].startswith("ukraine-")
    kinds = {c["kind"] for c in pack["categories"].values()}
    assert kinds == {"escalation", "negotiation"}
    expected = {"nuclear_threat", "strategic_weapons", "missile_strike", "drone_strike", "air_strike", "shelling",
                "ground_offensive", "mobilization", "infrastructure_attack", "cross_border_strike", "military_aid",
                "sabotage_cyber", "martial_law", "threat_rhetoric", "ceasefire", "peace_talks",
                "territorial_concession", "security_guarantees", "nato_membership", "freeze", "mediation",
                "prisoner_exchange", "sanctions_relief", "humanitarian_deal"}
    assert set(pack["categories"]) == expected
    assert pack["categories"]["ceasefire"]["cameo"] == ["0871"]
    assert pack["categories"]["peace_talks"]["cameo"] == ["046"]
    assert pack["categories"]["nuclear_threat"]["cameo"] == ["1385"]
    assert pack["categories"]["mobilization"]["cameo"] == ["154"]


def test_minimal_pack_loads_and_tags(tmp_path):
    tagger = load_tagger(write(tmp_path, MINI))
    r = tagger.tag("", "Ruritania could agree to a truce near Strelsau.")
    assert r["lexicon_version"] == "test-2026.11.1"
    assert r["labels"] == ["negotiation"] and r["actors"] == ["Ruritania"] and r["locations"] == ["Strelsau"]
    assert r["signals"][0]["stance"] == "open"


def test_invalid_value_names_line(tmp_path):
    bad = MINI.replace("    weight: 0.6\n", "    weight: 7\n")
    with pytest.raises(LexiconError) as exc:
        load_pack(write(tmp_path, bad))
    line = bad.splitlines().index("    weight: 7") + 1
    assert f"pack.yaml:{line}:" in str(exc.value)
    assert "categories/shelling/weight" in str(exc.value)


def test_unknown_kind_names_line(tmp_path):
    bad = MINI.replace("kind: escalation", "kind: escalatoin")
    with pytest.raises(LexiconError) as exc:
        load_pack(write(tmp_path, bad))
    line = bad.splitlines().index("    kind: escalatoin") + 1
    assert f":{line}:" in str(exc.value)


def test_bad_term_in_list_names_line(tmp_path):
    bad = MINI.replace("terms: [shelling]", "terms:\n      - shelling\n      - 42")
    with pytest.raises(LexiconError) as exc:
        load_pack(write(tmp_path, bad))
    line = bad.splitlines().index("      - 42") + 1
    assert f":{line}:" in str(exc.value)


def test_missing_key_and_bad_version(tmp_path):
    with pytest.raises(LexiconError, match="version"):
        load_pack(write(tmp_path, MINI.replace("version: test-2026.11.1", "version: one")))
    with pytest.raises(LexiconError, match="cues"):
        load_pack(write(tmp_path, MINI.replace("  hedge: [=could]\n", "")))


def test_unknown_context_group_names_line(tmp_path):
    bad = MINI.replace("terms: [shelling]", "terms:\n      - {term: shelling, requires: [nowhere]}")
    with pytest.raises(LexiconError) as exc:
        load_pack(write(tmp_path, bad))
    assert "nowhere" in str(exc.value)
    assert f":{bad.splitlines().index('      - {term: shelling, requires: [nowhere]}') + 1}:" in str(exc.value)


def test_yaml_syntax_error_names_line(tmp_path):
    with pytest.raises(LexiconError, match=r"pack\.yaml:\d+: not valid YAML"):
        load_pack(write(tmp_path, MINI + "  broken: [unclosed\n"))


def test_invalid_pack_stops_load_tagger(tmp_path):
    with pytest.raises(LexiconError):
        load_tagger(write(tmp_path, MINI.replace("weight: 0.8", "weight: -1")))


def test_inflection_rules():
    assert {"missile", "missiles"} <= inflect_word("missile")
    assert {"negotiate", "negotiates", "negotiated", "negotiating"} <= inflect_word("negotiate")
    assert {"plan", "planned", "planning", "plans"} <= inflect_word("plan")
    assert {"casualty", "casualties"} <= inflect_word("casualty")
    assert inflect_word("of") == {"of"}


def test_expand_term_syntax():
    forms, prefix = expand_term("peace talk")
    assert "peace talks" in forms and not prefix
    forms, prefix = expand_term("=US")
    assert forms == ["US"] and not prefix
    forms, prefix = expand_term("перемир*")
    assert forms == ["перемир"] and prefix
    forms, _ = expand_term("гуманітарн* коридор*")
    assert "гуманітарний коридор" in forms and "гуманітарних коридор" in forms
    forms, _ = expand_term("cease-fire")
    assert "cease fire" in forms


def test_unknown_category_blocking_group_names_line(tmp_path):
    bad = MINI.replace("    weight: 0.8\n", "    weight: 0.8\n    blocked_by: [elsewhere]\n", 1)
    with pytest.raises(LexiconError) as exc:
        load_pack(write(tmp_path, bad))
    assert "elsewhere" in str(exc.value) and "ceasefire blocked_by" in str(exc.value)
