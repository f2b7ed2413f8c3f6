"""Pure stream analytics (no Kafka): near-duplicate sketches, duplicate index, event identity of
near-duplicates, windows and surges, cooldown.

The Faust agents in :mod:`streams.agents` keep the state of these in changelog-backed tables and call
these functions; everything here is deterministic and unit-tested without a broker.
"""
