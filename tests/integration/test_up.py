"""``signalwatch up`` as ``make run`` runs it (it starts its own local broker, here on a free port): the
sample feed's alerts are printed, and Ctrl-C (SIGINT to the whole process group, as a terminal sends it:
``up``, its worker and its broker) stops everything without an error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

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
