"""``signalwatch up`` as ``make run`` runs it (it starts its own local broker, here on a free port): the
sample feed's alerts are printed, and Ctrl-C (SIGINT to the whole process group, as a terminal sends it:
``up``, its worker and its broker) stops everything without an error."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from streams.broker import free_port
from tests.conftest import REPO


def test_up_prints_the_sample_alerts_and_ctrl_c_stops_it_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SIGNALWATCH_BROKER"}
    env.update(SIGNALWATCH_HOME=str(tmp_path), SIGNALWATCH_APP_ID=f"sw-up-{uuid.uuid4().hex[:6]}",
               SIGNALWATCH_WEB_PORT=str(free_port()))
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--port", str(free_port())], env=env, cwd=REPO, stdout=stdout,
                                stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "CRITICAL escalation" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, err.read_text()[-2000:]
            time.sleep(1)
        assert "CRITICAL escalation" in out.read_text(), err.read_text()[-2000:]
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: `up` and its worker both get it
        assert proc.wait(timeout=60) == 0, err.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = err.read_text()
    assert not any(line.startswith("Error:") for line in log.splitlines()), log[-2000:]
    assert "the worker exited" not in log and "stopped at" in log, log[-2000:]
    assert "Ukraine strikes airfield in Russia with ATACMS missiles" in out.read_text()


def java_processes(marker: str) -> list[int]:
    """Pids of java processes whose command line mentions ``marker`` (the test's own directory)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "java" in cmdline and marker in cmdline:
            pids.append(int(proc.name))
    return pids


def test_up_through_a_pipe_stops_the_broker_on_ctrl_c(tmp_path):
    """`make run 2>&1 | tee log` and Ctrl-C: tee dies with the rest of the group, `up` finds its output closed
    and still stops the worker and the broker."""
    env = {k: v for k, v in os.environ.items() if k != "SIGNALWATCH_BROKER"}
    env.update(SIGNALWATCH_HOME=str(tmp_path), SIGNALWATCH_APP_ID=f"sw-up-{uuid.uuid4().hex[:6]}",
               SIGNALWATCH_WEB_PORT=str(free_port()))
    log = tmp_path / "log.txt"
    command = f"{shlex.quote(sys.executable)} -m streams.cli up --port {free_port()} 2>&1 | tee {shlex.quote(str(log))}"
    proc = subprocess.Popen(["bash", "-c", command], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "CRITICAL escalation" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(1)
        assert "CRITICAL escalation" in log.read_text(), log.read_text()[-2000:]
        assert java_processes(str(tmp_path)), "the broker runs (a java process of this test's directory)"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole group: tee too
        proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        while java_processes(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not java_processes(str(tmp_path)), "the broker was left running"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in java_processes(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)
