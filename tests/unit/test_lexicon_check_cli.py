"""`signalwatch lexicon check [PACK]`: the pack's examples from the command line (no broker)."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from streams.cli import main
from streams.tagging import DEFAULT_PACK


def test_bundled_pack_passes():
    result = CliRunner().invoke(main, ["lexicon", "check"])
    assert result.exit_code == 0, result.output
    assert "examples pass in bundled pack" in result.output


def test_a_broken_example_is_named_with_what_was_found(tmp_path: Path):
    pack = yaml.safe_load(DEFAULT_PACK.read_text(encoding="utf-8"))
    pack["categories"]["shelling"]["examples"].append(
        {"text": "Kyiv must strike a deal with its creditors.", "stance": "reported"})
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(pack, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(main, ["lexicon", "check", str(path)])
    assert result.exit_code == 1
    assert "FAIL shelling: 'Kyiv must strike a deal with its creditors.'" in result.output
    assert "expected a reported signal of shelling; found no signal" in result.output
    assert "1 of" in result.output and "examples failed" in result.output


def test_an_invalid_pack_says_where(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: x\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["lexicon", "check", str(path)])
    assert result.exit_code == 1 and "bad.yaml" in result.output and "fix the pack" in result.output
