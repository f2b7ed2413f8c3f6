"""Slow tests (crash and restart under load): run by `make test-slow`, not by `make test`."""

import os

collect_ignore_glob = [] if os.environ.get("SIGNALWATCH_SLOW_TESTS") else ["test_*.py"]
