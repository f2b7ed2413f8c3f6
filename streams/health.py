"""Whether the worker processes items now, and if not why: ``GET /healthz``, ``signalwatch_ready`` and the
start-up log lines.

After a start (and more so after a kill -9) a worker does nothing visible for a while: the consumer group
waits for the old member's session to time out before it assigns partitions, then the tables are rebuilt
from their changelogs. :class:`Readiness` names the phase and how far recovery is, so a user reads
"waiting …" / "recovering … 40%" instead of silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("signalwatch.startup")
"""Shown at the default (warning) log level too: see :func:`streams.logs.logging_config`."""

CHECK_EVERY = 2.0
"""Seconds between two readiness checks (metric and log)."""
PROGRESS_EVERY = 10.0
"""Seconds between two "still recovering" log lines."""


@dataclass
class State:
    """One readiness check: ``ready``, the phase and a sentence for people."""

    ready: bool
    phase: str
    """``starting``, ``assigning``, ``rebalancing``, ``recovering`` or ``ready``."""
    reason: str
    partitions: int = 0
    remaining: int = 0
    """Changelog records still to read (recovering)."""
    progress: float = 1.0
    """Share of this recovery's changelog records read (0-1)."""

    def as_dict(self) -> dict:
        """The ``/healthz`` body."""
        return {"ready": self.ready, "phase": self.phase, "reason": self.reason, "partitions": self.partitions,
                "recovery": {"remaining_records": self.remaining, "progress": round(self.progress, 3)}}


class Readiness:
    """Reads the Faust app's consumer and table recovery; remembers the size of the current recovery; each
    check also sets ``signalwatch_ready`` and ``signalwatch_recovery_remaining_records``."""

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics
        self._recovery_total = 0

    def check(self) -> State:
        """The worker's state now (and in the metrics)."""
        state = self._state()
        self.metrics.ready.set(1 if state.ready else 0)
        self.metrics.recovery_remaining.set(state.remaining)
        return state

    def _state(self) -> State:
        app = self.app
        try:
            partitions = len(app.consumer.assignment())
        except Exception:  # noqa: BLE001 - the consumer is not set up yet
            partitions = 0
        recovery = app.tables.recovery
        if recovery.in_recovery:
            remaining = int(recovery.active_remaining_total())
            self._recovery_total = max(self._recovery_total, remaining)
            total = self._recovery_total
            progress = 1.0 - remaining / total if total else 0.0
            done = f": {total - remaining} of {total} records read ({progress:.0%})" if total else ""
            return State(False, "recovering", f"recovering table state from the changelogs{done}", partitions,
                         remaining, progress)
        self._recovery_total = 0
        if not partitions:
            session = float(getattr(app.conf, "broker_session_timeout", 60.0))
            return State(False, "assigning", "waiting for the consumer group to assign partitions (after an "
                         f"unclean stop the broker first waits up to {session:.0f}s for the old worker's session "
                         "to time out)", partitions, progress=0.0)
        if getattr(app, "rebalancing", False):
            return State(False, "rebalancing", "the consumer group is reassigning partitions", partitions)
        if not recovery.completed.is_set():
            return State(False, "starting", "partitions assigned; table recovery has not finished", partitions,
                         progress=0.0)
        return State(True, "ready", f"processing: {partitions} partitions assigned, table state recovered",
                     partitions)


def install(app: Any, metrics: Any) -> Readiness:
    """A :class:`Readiness` for ``app`` and a task that checks it every :data:`CHECK_EVERY` seconds (so the
    metrics stay current) and logs each phase (recovery progress every :data:`PROGRESS_EVERY` seconds)."""
    readiness = Readiness(app, metrics)

    async def report_readiness() -> None:
        started = time.monotonic()
        phase, last_line = "", 0.0
        while True:
            state = readiness.check()
            now = time.monotonic()
            if state.phase != phase or (state.phase == "recovering" and now - last_line >= PROGRESS_EVERY):
                if state.ready:
                    log.info("ready (%.0fs after start): %s", now - started, state.reason)
                else:
                    log.info("not ready yet: %s", state.reason)
                phase, last_line = state.phase, now
            await asyncio.sleep(CHECK_EVERY)

    # Not an @app.task: Faust starts those only after table recovery, the phase this is to report.
    first_start = app.on_first_start

    async def on_first_start() -> None:
        await first_start()
        app.add_future(report_readiness())

    app.on_first_start = on_first_start
    return readiness
