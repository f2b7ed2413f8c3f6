"""Structured logs: one JSON object per line on stderr, quiet (warning) by default."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage().strip(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


TRANSIENT_COORDINATOR_ERRORS = ("GroupCoordinatorNotAvailable", "NotCoordinator", "CoordinatorLoadInProgress",
                                "Marking the coordinator dead", "not found in cluster metadata")
"""What aiokafka logs (as errors) while the broker's group coordinator is still loading, or a topic the worker
has just created is not in its metadata yet; it retries."""
REBALANCE_NOTICES = ("because it is rebalancing",)
"""What aiokafka logs as a warning when another member joins or leaves the group: the consumer rejoins at
once; every scale-out or restart of a worker causes it, so it is an info line whenever it comes."""
TRANSIENT_LOGGERS = ("aiokafka.consumer.group_coordinator", "aiokafka.cluster")
"""The loggers :class:`TransientCoordinatorErrors` is attached to."""
START_GRACE = 120.0
"""Seconds after start in which that chatter is an info line; later it is a warning (it still retries)."""


class TransientCoordinatorErrors(logging.Filter):
    """Lowers aiokafka's coordinator-not-available chatter (info during start-up, then warning) and its
    rebalance notices (info). Attached to the logger that emits it, so the level is changed before any
    handler sees the record."""

    def __init__(self, grace: float = START_GRACE) -> None:
        super().__init__()
        self.until = time.monotonic() + grace

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        if any(notice in message for notice in REBALANCE_NOTICES):
            level = logging.INFO
        elif any(name in message for name in TRANSIENT_COORDINATOR_ERRORS):
            level = logging.INFO if time.monotonic() < self.until else logging.WARNING
        else:
            return True
        record.levelno, record.levelname = level, logging.getLevelName(level)
        return logging.getLogger(record.name).isEnabledFor(level)


def logging_config(level: str) -> dict:
    """A ``logging.config.dictConfig`` for the worker: JSON lines on stderr at ``level``; the start-up
    progress (``signalwatch.startup``: waiting for partitions, recovering N of M) also at the default
    warning level, and aiokafka's transient coordinator errors lowered (:class:`TransientCoordinatorErrors`)."""
    level = level.upper()
    progress = "INFO" if logging.getLevelName(level) <= logging.WARNING else level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"transient": {"()": TransientCoordinatorErrors}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.__stderr__"}},
        "loggers": {"signalwatch.startup": {"level": progress},
                    **{name: {"filters": ["transient"]} for name in TRANSIENT_LOGGERS}},
        "root": {"level": level, "handlers": ["stderr"]},
    }
