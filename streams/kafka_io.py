"""Plain Kafka clients (kafka-python) for the CLI: topic creation, producing feeds, reading alerts."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Iterator

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from streams.settings import Settings

NoBrokersAvailable = (KafkaTimeoutError, KafkaConnectionError)
BOOTSTRAP_TIMEOUT_MS = 10_000


class KafkaUnavailable(RuntimeError):
    """No broker answered; the message says how to start one or point to one."""


class _AuthFailures(logging.Handler):
    """Remembers the authentication errors kafka-python logs while it retries its bootstrap."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "in the clear" in message:  # kafka-python's warning about SASL_PLAINTEXT, not an error
            return
        if "Authentication" in message or "SaslHandshake" in message or "UnsupportedSaslMechanism" in message:
            self.seen.append(message)


_auth_failures = _AuthFailures()
logging.getLogger("kafka").addHandler(_auth_failures)


def _unavailable(settings: Settings) -> KafkaUnavailable:
    failures, _auth_failures.seen[:] = list(_auth_failures.seen), []
    if any("invalid credentials" in f for f in failures):
        return KafkaUnavailable(
            f"the broker at {settings.broker} rejected the {settings.sasl_mechanism} credentials of user "
            f"{settings.sasl_username!r}: check SIGNALWATCH_SASL_USERNAME, SIGNALWATCH_SASL_PASSWORD and "
            "SIGNALWATCH_SASL_MECHANISM")
    if failures:
        return KafkaUnavailable(
            f"the broker at {settings.broker} did not accept SASL authentication "
            f"({settings.security_protocol}, {settings.sasl_mechanism or 'no mechanism'}): check "
            "SIGNALWATCH_SECURITY_PROTOCOL and SIGNALWATCH_SASL_MECHANISM against the broker's listener")
    answers = bool(settings.bootstrap_servers) and _port_answers(settings.bootstrap_servers[0])
    if answers and settings.security_protocol.startswith("SASL"):
        # kafka-python does not always log the broker's reason before its bootstrap gives up
        return KafkaUnavailable(
            f"the broker at {settings.broker} answers but no SASL session could be set up as user "
            f"{settings.sasl_username!r} with {settings.sasl_mechanism}: wrong credentials are the usual cause; "
            "check SIGNALWATCH_SASL_PASSWORD and SIGNALWATCH_SASL_USERNAME, then SIGNALWATCH_SASL_MECHANISM and "
            "SIGNALWATCH_SECURITY_PROTOCOL against the broker's listener")
    if answers and settings.security_protocol == "SSL":
        return KafkaUnavailable(
            f"{settings.broker} accepts connections but no TLS session could be set up: check that "
            f"SIGNALWATCH_SSL_CAFILE ({settings.ssl_cafile or 'unset: the system CAs'}) holds the CA that signed "
            "the broker's certificate and that the certificate names this host, and that the listener is TLS "
            "(SIGNALWATCH_SECURITY_PROTOCOL=SSL; SASL_SSL with SASL settings if it also needs a login)")
    if answers:
        return KafkaUnavailable(
            f"{settings.broker} accepts connections but no Kafka session could be set up with "
            f"SIGNALWATCH_SECURITY_PROTOCOL={settings.security_protocol}: if the broker needs SASL or TLS, set "
            "SIGNALWATCH_SECURITY_PROTOCOL, SIGNALWATCH_SASL_MECHANISM, SIGNALWATCH_SASL_USERNAME and "
            "SIGNALWATCH_SASL_PASSWORD (or SIGNALWATCH_SSL_CAFILE)")
    return KafkaUnavailable(
        f"no Kafka broker answers at {settings.broker}: start one with `signalwatch broker start` "
        "or point SIGNALWATCH_BROKER / --broker at yours")


def _port_answers(server: str) -> bool:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def admin(settings: Settings) -> KafkaAdminClient:
    """An admin client, or :class:`KafkaUnavailable`."""
    _auth_failures.seen.clear()
    try:
        return KafkaAdminClient(client_id="signalwatch-admin", request_timeout_ms=10000,
                                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS, **settings.kafka_client_options())
    except NoBrokersAvailable:
        raise _unavailable(settings) from None


def create_topics(settings: Settings, compacted: Iterable[str] = (), extra: Iterable[str] = ()) -> list[str]:
    """Create every signalwatch topic that does not exist yet, the ``extra`` ones (a topic the user named
    with ``--create``) and the ``compacted`` ones (a worker's table changelogs, ``{app_id}-{table}-changelog``:
    same partition count, ``cleanup.policy=compact``, as Faust would create them; ``negotiations.threads`` is
    always one); return the names created."""
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        compacted = [*settings.topics.compacted(), *compacted]
        new = [NewTopic(name, settings.partitions, settings.replication)
               for name in dict.fromkeys([*settings.topics.all(), *extra]) if name not in existing and name not in compacted]
        new += [NewTopic(name, settings.partitions, settings.replication, topic_configs={"cleanup.policy": "compact"})
                for name in dict.fromkeys(compacted) if name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another client was faster
                client.create_topics(new)
        return [t.name for t in new]
    finally:
        client.close()


def missing_topics(settings: Settings, names: Iterable[str]) -> list[str]:
    """The topics of ``names`` that do not exist on the broker (asked without creating them)."""
    client = admin(settings)
    try:
        existing = set(client.list_topics())
    finally:
        client.close()
    return [name for name in dict.fromkeys(names) if name not in existing]


def producer(settings: Settings) -> KafkaProducer:
    """A producer that waits for every replica (acks=all) and batches briefly."""
    _auth_failures.seen.clear()
    try:
        return KafkaProducer(client_id="signalwatch-push", acks="all", linger_ms=20,
                             max_request_size=4 * 1024 * 1024, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS, **settings.kafka_client_options())
    except NoBrokersAvailable:
        raise _unavailable(settings) from None


class TopicReader:
    """Reads topics from their end (or beginning) as of construction, so nothing sent afterwards is missed."""

    def __init__(self, settings: Settings, topics: Iterable[str], *, from_beginning: bool = False,
                 backlog: int = 0) -> None:
        """Read from the end of each partition (``backlog`` records before it), or from the beginning."""
        _auth_failures.seen.clear()
        try:
            self.consumer = KafkaConsumer(client_id="signalwatch-tail", enable_auto_commit=False,
                                          group_id=None, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS, **settings.kafka_client_options())
        except NoBrokersAvailable:
            raise _unavailable(settings) from None
        partitions = []
        for topic in topics:
            ids = self.consumer.partitions_for_topic(topic)
            if not ids:
                self.consumer.close()
                raise KafkaUnavailable(
                    f"topic {topic} does not exist at {settings.broker}: run `signalwatch topics create`")
            partitions += [TopicPartition(topic, p) for p in sorted(ids)]
        self.consumer.assign(partitions)
        if from_beginning:
            self.consumer.seek_to_beginning()
        else:
            self.consumer.seek_to_end()
        for tp in partitions:  # resolve the positions now, not at the first poll
            end = self.consumer.position(tp)
            if backlog and not from_beginning:
                first = self.consumer.beginning_offsets([tp])[tp]
                self.consumer.seek(tp, max(first, end - backlog))

    def poll(self, timeout: float = 0.5) -> list:
        """The records that arrived within ``timeout`` seconds."""
        batches = self.consumer.poll(timeout_ms=int(timeout * 1000))
        return [record for records in batches.values() for record in records]

    def __iter__(self) -> Iterator:
        while True:
            yield from self.poll()

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()


def read_table(settings: Settings, topic: str, timeout: float = 30.0) -> dict[bytes, bytes]:
    """The latest value of every key of a compacted topic, read to the end offsets it had when called
    (tombstones remove their key)."""
    reader = TopicReader(settings, [topic], from_beginning=True)
    try:
        consumer = reader.consumer
        ends = consumer.end_offsets(list(consumer.assignment()))
        table: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"{topic} at {settings.broker} was not read to its end within {timeout:g}s")
            for record in reader.poll(0.5):
                if record.value is None:
                    table.pop(record.key, None)
                else:
                    table[record.key] = record.value
        return table
    finally:
        reader.close()
