"""Careless input gets an error that names the fix (no broker needed)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from streams.broker import free_port
from streams.cli import main
from streams.feeds import FeedError, read_feed, sniff_delimiter
from streams.logs import TransientCoordinatorErrors, logging_config
from tests.conftest import REPO

HEADER = "title,text,url\n"
TEXT = "Russian forces launched a missile strike on Kharkiv"


def records(tmp_path, content: str, name: str = "wire.csv", **kw):
    path = tmp_path / name
    path.write_text(content)
    return list(read_feed(str(path), **kw))


def test_csv_short_and_long_rows_are_rejected_with_their_line(tmp_path):
    got = records(tmp_path, HEADER + f"A,{TEXT},https://x/1\nB,{TEXT}\nC,{TEXT},https://x/3,extra\n"
                                      f'D,"{TEXT}, quoted",https://x/4\n')
    assert [(r.where, r.error.reason if r.error else None) for r in got] == [
        ("wire.csv:2", None), ("wire.csv:3", "bad_csv"), ("wire.csv:4", "bad_csv"), ("wire.csv:5", None)]
    assert "2 fields where the header has 3" in got[1].error.detail and "quoted" in got[1].error.detail
    assert got[3].item["text"].endswith(", quoted"), "a quoted separator is data"


def test_an_unterminated_quote_names_the_line_it_opened_on(tmp_path):
    got = records(tmp_path, HEADER + f"A,{TEXT},https://x/1\nB,\"{TEXT},https://x/2\nC,{TEXT},https://x/3\n")
    assert got[0].item["title"] == "A"
    assert len(got) == 2 and got[1].where == "wire.csv:3" and got[1].error.reason == "bad_csv"
    assert "opened on line 3 is not closed" in got[1].error.detail


def test_multi_line_quoted_fields_keep_the_line_of_their_row(tmp_path):
    got = records(tmp_path, HEADER + f'A,"{TEXT}\nsecond line",https://x/1\nB,{TEXT},https://x/2\n')
    assert [r.where for r in got] == ["wire.csv:2", "wire.csv:4"] and all(r.item for r in got)


@pytest.mark.parametrize(("header", "delimiter"), [
    ("title,text", ","), ("title;text;url", ";"), ("title\ttext", "\t"), ("title|text", "|"),
    ('"a;b",title,text', ","), ("text", ","),
])
def test_sniff_delimiter(header, delimiter):
    assert sniff_delimiter(header) == delimiter


def test_a_semicolon_file_is_read_by_guessing_or_by_delimiter(tmp_path):
    content = f"title;text;url\nA;{TEXT};https://x/1\n"
    assert records(tmp_path, content)[0].item["url"] == "https://x/1"
    assert records(tmp_path, content, delimiter=";")[0].item["text"] == TEXT
    with pytest.raises(FeedError, match="right --delimiter"):
        records(tmp_path, content, delimiter=",")
    with pytest.raises(FeedError, match="pass --delimiter"):
        records(tmp_path, f"headline;body\nA;{TEXT}\n")


def test_push_takes_delimiter_and_rejects_a_bad_one(tmp_path):
    path = tmp_path / "wire.csv"
    path.write_text(f"title;text\nA;{TEXT}\n")
    runner = CliRunner()
    ok = runner.invoke(main, ["push", "--dry-run", "--delimiter", ";", str(path)])
    assert ok.exit_code == 0 and "1 valid items" in ok.output
    bad = runner.invoke(main, ["push", "--dry-run", "--delimiter", ";;", str(path)])
    assert bad.exit_code != 0 and "use one character" in bad.output


def test_eval_names_rows_without_labels_and_bad_lines(tmp_path):
    runner = CliRunner()
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(f'{{"text": "{TEXT}", "labels": []}}\n{{"text": "{TEXT}"}}\n\n{{"text": "b"}}\n')
    result = runner.invoke(main, ["eval", str(unlabelled), "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert '2 of 3 rows have no "labels" list (lines 2, 4)' in result.output and "[] for neither" in result.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text(f'{{"text": "{TEXT}", "labels": []}}\n{{"text": oops}}\n')
    result = runner.invoke(main, ["eval", str(broken)])
    assert result.exit_code == 1 and f"{broken}:2: not valid JSON" in result.output
    assert not isinstance(result.exception, ValueError), "a clear error, not a traceback"
    assert not (tmp_path / "r.json").exists()


def test_a_wrong_scheme_names_what_the_user_set(monkeypatch):
    runner = CliRunner()
    monkeypatch.delenv("SIGNALWATCH_BROKER", raising=False)
    result = runner.invoke(main, ["tail", "--broker", "http://127.0.0.1:9092"])
    assert result.exit_code == 2 and "--broker='http://127.0.0.1:9092': use kafka://host:port" in result.output
    assert "SIGNALWATCH_BROKER" not in result.output
    monkeypatch.setenv("SIGNALWATCH_BROKER", "http://127.0.0.1:9092")
    result = runner.invoke(main, ["tail"])
    assert "SIGNALWATCH_BROKER='http://127.0.0.1:9092'" in result.output


def worker_run(tmp_path, **env) -> subprocess.CompletedProcess:
    full = dict(os.environ, SIGNALWATCH_HOME=str(tmp_path), SIGNALWATCH_WEB_PORT=str(free_port()), **env)
    return subprocess.run([sys.executable, "-m", "streams.cli", "worker"], env=full, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_a_worker_without_a_broker_says_so_in_one_line(tmp_path):
    started = time.monotonic()
    done = worker_run(tmp_path, SIGNALWATCH_BROKER=f"kafka://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and time.monotonic() - started < 40
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no Kafka broker answers"), done.stderr
    assert "signalwatch broker start" in lines[0] and "Traceback" not in done.stderr


def test_a_worker_on_a_public_address_needs_a_token(tmp_path):
    done = worker_run(tmp_path, SIGNALWATCH_WEB_HOST="0.0.0.0")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "set SIGNALWATCH_INGEST_TOKEN" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_coordinator_chatter_is_info_during_start_up_then_warning():
    logger = logging.getLogger("aiokafka.consumer.group_coordinator")
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1,
                               "Group Coordinator Request failed: %s", ("[Error 15] GroupCoordinatorNotAvailableError",),
                               None)
    early, late = TransientCoordinatorErrors(grace=60), TransientCoordinatorErrors(grace=0)
    other = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "Heartbeat failed: %r", ("x",), None)
    logger.setLevel(logging.INFO)
    try:
        assert early.filter(record) and record.levelname == "INFO"
        record.levelno, record.levelname = logging.ERROR, "ERROR"
        assert late.filter(record) and record.levelname == "WARNING"
        assert early.filter(other) and other.levelname == "ERROR", "other errors stay errors"
        rejoin = logger.makeRecord(logger.name, logging.WARNING, __file__, 1,
                                   "Heartbeat failed for group %s because it is rebalancing", ("sw",), None)
        assert late.filter(rejoin) and rejoin.levelname == "INFO", "a rebalance notice is info, also late"
        logger.setLevel(logging.WARNING)
        rejoin = logger.makeRecord(logger.name, logging.WARNING, __file__, 1,
                                   "Heartbeat failed for group %s because it is rebalancing", ("sw",), None)
        assert not late.filter(rejoin), "and not shown at the default warning level"
    finally:
        logger.setLevel(logging.NOTSET)
    config = logging_config("warning")
    assert config["loggers"]["signalwatch.startup"]["level"] == "INFO", "start-up progress shows by default"
    assert logging_config("error")["loggers"]["signalwatch.startup"]["level"] == "ERROR"
