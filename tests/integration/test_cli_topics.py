"""`push`, `feed poll` and `tail` refuse a topic that does not exist (a typo) unless --create, on the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from streams.kafka_io import missing_topics
from streams.settings import Settings
from tests.conftest import REPO


def cli(kafka, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, SIGNALWATCH_BROKER=kafka.url)
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_a_typo_topic_is_refused_and_not_created(kafka, tmp_path):
    settings = Settings(broker=kafka.url)
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"text": "Russian forces launched a missile strike on Kharkiv."}\n')
    typo = f"news.rwa-{uuid.uuid4().hex[:6]}"
    for args in (["push", "--topic", typo, str(feed)], ["tail", "--topic", typo],
                 ["feed", "poll", "--once", "--topic", typo, f"file://{feed}"]):
        done = cli(kafka, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert f"topic {typo} does not exist" in done.stderr and "--create" in done.stderr, done.stderr
        assert "news.raw" in done.stderr, "the message lists the real topics"
    assert missing_topics(settings, [typo]) == [typo], "refusing did not create it"
    done = cli(kafka, "push", "--create", "--topic", typo, str(feed))
    assert done.returncode == 0 and "sent 1 items" in done.stderr, done.stderr
    assert missing_topics(settings, [typo]) == []
