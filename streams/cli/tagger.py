"""The tagger without Kafka: ``classify`` (tag items) and ``eval`` (score it on labelled items)."""

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
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--report", default="eval-report.json", show_default=True, help="Where to write the JSON report.")
def evaluate(file: str, report: str) -> None:
    """Precision, recall and F1 per label and stance accuracy of the tagger on a labelled JSONL FILE."""
    from streams.tagging.evaluate import evaluate as run_eval
    from streams.tagging.evaluate import format_report

    check_labelled(file)
    result = run_eval(file)
    Path(report).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    click.echo(format_report(result))
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


COMMANDS = (classify, evaluate)
