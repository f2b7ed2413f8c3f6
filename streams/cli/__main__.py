"""``python -m streams.cli`` (how ``up`` and the tests start the worker)."""

from streams.cli import main

main()
