"""Item text cannot drive the analyst's terminal: hostile titles print clean in every CLI printer."""

from __future__ import annotations

import re

import click
import orjson
import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.cli.alerts import format_alert, print_alert
from streams.cli.terminal import json_line, printable

HOSTILE = {
    "set the window title": "\x1b]0;ALL CLEAR\x07Strike on Kharkiv",
    "clear the screen and paint green": "\x1b[2J\x1b[H\x1b[32mALL CLEAR: ceasefire signed\x1b[0m Strike on Kharkiv",
    "8-bit CSI": "\x9b2J\x9b32mStrike on Kharkiv",
    "8-bit OSC": "\x9d0;owned\x9cStrike on Kharkiv",
    "string terminated OSC": "\x1b]2;owned\x1b\\Strike on Kharkiv",
    "device control string": "\x1bP$q owned\x1b\\Strike on Kharkiv",
    "bidi override": "Strike on \u202eviharK\u202c Kharkiv",
    "bell and backspace": "\x07\x08\x08Strike on Kharkiv",
    "fake second alert line": "Strike on Kharkiv\n10:00:00 LOW      trend       all quiet",
}
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def alert(summary: str) -> dict:
    return {"alert_id": "esc-1", "type": "escalation", "severity": "high", "summary": summary,
            "evidence": [summary], "created_at": "2026-11-24T10:11:12Z", "source": summary, "url": summary,
            "locations": [summary], "published_at": summary,
            "stances": [{"category": summary, "stance": summary, "evidence": summary}]}


@pytest.mark.parametrize("title", HOSTILE.values(), ids=HOSTILE.keys())
def test_printable_leaves_nothing_a_terminal_acts_on(title):
    clean = printable(title)
    assert "\x1b" not in clean and not UNSAFE.search(clean) and "\n" not in clean
    assert "Kharkiv" in clean and "owned" not in clean


@pytest.mark.parametrize("title", HOSTILE.values(), ids=HOSTILE.keys())
def test_alert_lines_carry_only_our_colours(title):
    styled = format_alert(alert(title))
    ours = re.compile(r"\x1b\[[0-9;]*m")  # click.style's SGR codes
    assert not UNSAFE.search(ours.sub("", styled)), "nothing but our SGR colour codes"
    text = click.unstyle(styled)
    assert len(text.splitlines()) == 4, "one summary, one place, one evidence, one source line: no injected lines"
    assert "ALL CLEAR" not in text or title.startswith("\x1b[2J"), "a window title payload is dropped"


def test_the_colour_codes_of_an_alert_do_not_depend_on_its_text():
    codes = re.compile(r"\x1b\[[0-9;]*m")
    assert codes.findall(format_alert(alert(HOSTILE["clear the screen and paint green"]))) == \
        codes.findall(format_alert(alert("Strike on Kharkiv")))


@pytest.mark.parametrize("title", HOSTILE.values(), ids=HOSTILE.keys())
def test_json_lines_keep_the_data_and_escape_it(title, capsys):
    value = alert(title)
    assert print_alert(orjson.dumps(value), True, None)
    out = capsys.readouterr().out
    assert not UNSAFE.search(out.rstrip("\n")) and out.count("\n") == 1
    assert orjson.loads(out) == value, "machines get the exact text back"
    assert orjson.loads(json_line(value)) == value


def test_human_tail_output_is_clean(capsys):
    assert print_alert(orjson.dumps(alert(HOSTILE["set the window title"])), False, None)
    out = capsys.readouterr().out
    assert "\x1b]" not in out and "\x07" not in out and "Strike on Kharkiv" in out


def test_push_and_classify_print_hostile_text_clean(tmp_path):
    feed = tmp_path / "hostile.jsonl"
    lines = [orjson.dumps({"title": t, "text": "Russian forces launched a missile strike on Kharkiv."})
             for t in HOSTILE.values()]
    lines.append(orjson.dumps({"title": "\x1b]0;owned\x07", "text": 42}))  # rejected: its reason is printed
    feed.write_bytes(b"\n".join(lines) + b"\n")
    runner = CliRunner()
    pushed = runner.invoke(main, ["push", "--dry-run", str(feed)])
    assert pushed.exit_code == 0, pushed.output
    assert f"{len(HOSTILE)} valid items" in pushed.output and "rejected 1" in pushed.output
    assert not UNSAFE.search(pushed.output.replace("\n", ""))
    classified = runner.invoke(main, ["classify", str(feed)])
    assert classified.exit_code == 0, classified.output
    rows = classified.output.splitlines()
    assert len(rows) == len(lines) and not any(UNSAFE.search(r) for r in rows)
    assert [orjson.loads(r).get("title") for r in rows[:-1]] == list(HOSTILE.values())
