"""The tagger without Kafka: ``classify`` (tag items), ``eval`` (score it on labelled items) and ``lexicon check``
(run a rule pack's example sentences)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from streams.cli.options import fail
from streams.cli.terminal import json_line


@click.command()
@click.argument("file", default="-")
def classify(file: str) -> None:
    """Tag JSONL news items (or plain text lines) from FILE or stdin; JSONL tagged items out, no Kafka.

    One output line per input line, in order; a line that is not valid input yields {"error": ...}.
    """
    from streams.feeds import read_feed
    from streams.records import now_iso, tagged_item
    from streams.tagging import load_tagger

    if file != "-" and not Path(file).is_file():
        fail(f"{file}: no such file")
    tagger = load_tagger()
    out = sys.stdout
    for record in read_feed(file):
        if record.error is not None:
            line = {"error": {"reason": record.error.reason, "detail": record.error.detail},
                    "where": record.where}
        else:
            item = record.item
            line = tagged_item(item, tagger.tag(item["title"], item["text"]), now_iso())
        out.write(json_line(line) + "\n")
    out.flush()


@click.command("eval")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--report", default="eval-report.json", show_default=True,
              help="Where to write the JSON report (with the false positives, misses and stance errors).")
def evaluate(files: tuple[str, ...], report: str) -> None:
    """Precision, recall and F1 per label (overall, news only, per source), stance accuracy and its confusion
    matrix of the tagger on labelled JSONL FILES."""
    from streams.tagging.evaluate import evaluate_files, format_report

    for file in files:
        check_labelled(file)
    result = evaluate_files(list(files))
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(report).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    for file_report in result["files"].values():
        click.echo(format_report(file_report) + "\n")
    click.echo(f"report written to {report}", err=True)


SHOWN_LINES = 10
"""How many line numbers an ``eval`` error lists before it says how many more."""


def check_labelled(path: str) -> None:
    """Fail, naming the lines, unless every non-blank line of ``path`` is a JSON object with a ``labels`` list
    (``[]`` for an item with neither label): an unlabelled row would count as a plain negative."""
    unlabelled, rows = [], 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            rows += 1
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                fail(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}): eval reads one JSON object a line")
            if not isinstance(row, dict):
                fail(f"{path}:{number}: a JSON {type(row).__name__}, not an object: eval reads one JSON object "
                     "a line with title, text and labels")
            if not isinstance(row.get("labels"), list):
                unlabelled.append(number)
    if not rows:
        fail(f"{path}: no rows: eval needs labelled JSONL, one object a line")
    if unlabelled:
        shown = ", ".join(map(str, unlabelled[:SHOWN_LINES]))
        more = f" and {len(unlabelled) - SHOWN_LINES} more" if len(unlabelled) > SHOWN_LINES else ""
        fail(f"{path}: {len(unlabelled)} of {rows} rows have no \"labels\" list (lines {shown}{more}): give each "
             'row its gold labels, e.g. "labels": ["escalation"], or "labels": [] for neither')


@click.group()
def lexicon() -> None:
    """Rule packs (lexicons): check one against its own example sentences."""


@lexicon.command("check")
@click.argument("pack", required=False, type=click.Path(dir_okay=False))
def lexicon_check(pack: str | None) -> None:
    """Validate PACK (default: the bundled pack) and run every category's example sentences; print each
    failing example with what the tagger found. Exit status 1 when any fails."""
    from streams.tagging import LexiconError, load_tagger
    from streams.tagging.examples import check_examples, format_failure

    if pack is not None and not Path(pack).is_file():
        fail(f"{pack}: no such file; give the path of a rule pack YAML (or nothing for the bundled pack)")
    try:
        tagger = load_tagger(pack)
    except LexiconError as exc:
        fail(f"{exc}; fix the pack and run the check again")
    checked, failures = check_examples(tagger)
    for failure in failures:
        click.echo(format_failure(failure))
    where = pack or "bundled pack"
    if failures:
        fail(f"{len(failures)} of {checked} examples failed in {where} ({tagger.version}); edit the terms, cues or "
             "context groups of those categories (or the example, if it was wrong) and run the check again")
    click.echo(f"{checked} examples pass in {where} ({tagger.version})")


COMMANDS = (classify, evaluate, lexicon)
