"""One settings object for every part of signalwatch, read from ``SIGNALWATCH_*`` environment variables.

Command-line options override the environment (see :func:`Settings.from_env`). Each field's docstring
names its variable; checks run in ``__post_init__`` so a bad value stops start-up with a clear message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

SEVERITIES = ("low", "medium", "high", "critical")
ALERT_TYPES = ("escalation", "negotiation", "trend")
"""Alert types, each with its topic (``alerts.<type>``), in display order."""

REPO_ROOT = Path(__file__).resolve().parent.parent

SCHEMA_DIR = Path(os.environ.get("SIGNALWATCH_SCHEMAS_DIR") or REPO_ROOT / "schemas")
"""The JSON Schemas: ``schemas/`` of the checkout, or ``SIGNALWATCH_SCHEMAS_DIR`` (the Docker image sets it)."""


ENV_VARS = {
    name: f"SIGNALWATCH_{suffix}" for name, suffix in {
        "broker": "BROKER", "app_id": "APP_ID", "web_host": "WEB_HOST", "web_port": "WEB_PORT",
        "partitions": "PARTITIONS", "replication": "REPLICATION", "max_item_bytes": "MAX_ITEM_BYTES",
        "alert_min_severity": "ALERT_MIN_SEVERITY", "data_dir": "HOME",
        "log_level": "LOG_LEVEL", "security_protocol": "SECURITY_PROTOCOL",
        "sasl_mechanism": "SASL_MECHANISM", "sasl_username": "SASL_USERNAME",
        "sasl_password": "SASL_PASSWORD", "ssl_cafile": "SSL_CAFILE",
        "max_body_bytes": "MAX_BODY_BYTES", "alert_buffer": "ALERT_BUFFER",
        "dedup_horizon": "DEDUP_HORIZON", "dedup_stories": "DEDUP_STORIES", "max_stories": "MAX_STORIES",
        "near_dup_threshold": "NEAR_DUP_THRESHOLD", "trend_windows": "TREND_WINDOWS",
        "trend_lookback": "TREND_LOOKBACK", "trend_min_count": "TREND_MIN_COUNT", "trend_z": "TREND_Z",
        "alert_cooldown": "ALERT_COOLDOWN",
        "ingest_token": "INGEST_TOKEN", "max_request_items": "MAX_REQUEST_ITEMS", "ingest_rate": "INGEST_RATE",
        "http_timeout": "HTTP_TIMEOUT", "process_helpers": "PROCESS_HELPERS",
    }.items()
}
"""Settings field -> the environment variable that sets it (docker-compose is checked against this)."""


class SettingsError(ValueError):
    """A setting has a value signalwatch cannot use; the message names the variable and the fix."""


@dataclass
class Topics:
    """Kafka topic names (the public ones are a contract: README.md, docs/architecture.md)."""

    raw: str = "news.raw"
    tagged: str = "news.tagged"
    escalation: str = "alerts.escalation"
    negotiation: str = "alerts.negotiation"
    trend: str = "alerts.trend"
    deadletter: str = "news.deadletter"
    processed: str = "news.processed"
    """Internal: one record per batch of processed items (``schemas/processed-batch.v3.json``), all under
    the story shard's key, so every copy of a story meets the first (docs/architecture.md)."""
    threads: str = "negotiations.threads"
    """Compacted: each negotiation thread's current record (``schemas/negotiation-thread.v1.json``) keyed by
    thread id; the changelog of the story shard's ``negotiation_threads`` table (docs/architecture.md)."""

    def alerts(self) -> list[str]:
        """The alert topics, in display order."""
        return [self.escalation, self.negotiation, self.trend]

    def all(self) -> list[str]:
        """Every topic signalwatch creates."""
        return [self.raw, self.tagged, self.escalation, self.negotiation, self.trend, self.deadletter,
                self.processed, self.threads]

    def compacted(self) -> list[str]:
        """The topics created with ``cleanup.policy=compact``."""
        return [self.threads]

    def alert_topic(self, alert_type: str) -> str:
        """The topic of an alert type (one of ALERT_TYPES)."""
        return {"escalation": self.escalation, "negotiation": self.negotiation, "trend": self.trend}[alert_type]


@dataclass
class Settings:
    """Runtime configuration."""

    broker: str = "kafka://127.0.0.1:9092"
    """SIGNALWATCH_BROKER: Kafka bootstrap URL(s), ``kafka://host:port[;host:port]``."""
    app_id: str = "signalwatch"
    """SIGNALWATCH_APP_ID: Faust app id = consumer group; workers with one id share the partitions."""
    web_host: str = "127.0.0.1"
    """SIGNALWATCH_WEB_HOST: address of the worker's web server (/metrics, /news); loopback by default."""
    web_port: int = 6066
    """SIGNALWATCH_WEB_PORT: port of the worker's web server."""
    partitions: int = 8
    """SIGNALWATCH_PARTITIONS: partitions per topic (the ceiling on parallel workers)."""
    replication: int = 1
    """SIGNALWATCH_REPLICATION: replication factor of created topics."""
    max_item_bytes: int = 1024 * 1024
    """SIGNALWATCH_MAX_ITEM_BYTES: larger messages are dead-lettered as ``too_large``."""
    max_body_bytes: int = 16 * 1024 * 1024
    """SIGNALWATCH_MAX_BODY_BYTES: ``POST /news`` answers 413 to a larger request body (whole JSONL batch)."""
    max_request_items: int = 10_000
    """SIGNALWATCH_MAX_REQUEST_ITEMS: ``POST /news`` answers 413 to a request of more items (lines or array
    elements); bounds the memory and time one request takes."""
    ingest_rate: float = 1000.0
    """SIGNALWATCH_INGEST_RATE: items a second one client (address) may post to ``/news`` on average; a
    request may use up to SIGNALWATCH_MAX_REQUEST_ITEMS at once, past that the answer is 429 + Retry-After."""
    ingest_token: str = field(default="", repr=False)
    """SIGNALWATCH_INGEST_TOKEN: when set, ``POST /news`` needs ``Authorization: Bearer <token>``; required
    when SIGNALWATCH_WEB_HOST is not a loopback address (never logged)."""
    http_timeout: float = 10.0
    """SIGNALWATCH_HTTP_TIMEOUT: seconds a client of the web port has to send a request's headers (and an
    idle connection is kept), and again its body; slower connections are closed."""
    alert_buffer: int = 200
    """SIGNALWATCH_ALERT_BUFFER: recent alerts the worker keeps for the live page (``GET /alerts/recent``)."""
    alert_min_severity: str = "medium"
    """SIGNALWATCH_ALERT_MIN_SEVERITY: per-item alerts below this severity are not sent."""
    data_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("SIGNALWATCH_HOME") or Path.home() / ".local" / "share" / "signalwatch"))
    """SIGNALWATCH_HOME: where the worker keeps local state and the local broker its data."""
    log_level: str = "warning"
    """SIGNALWATCH_LOG_LEVEL: worker log level (quiet by default)."""
    security_protocol: str = "PLAINTEXT"
    """SIGNALWATCH_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    sasl_mechanism: str = ""
    """SIGNALWATCH_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."""
    sasl_username: str = ""
    """SIGNALWATCH_SASL_USERNAME."""
    sasl_password: str = field(default="", repr=False)
    """SIGNALWATCH_SASL_PASSWORD (never logged)."""
    ssl_cafile: str = ""
    """SIGNALWATCH_SSL_CAFILE: CA bundle for TLS brokers."""
    dedup_horizon: float = 48 * 3600.0
    """SIGNALWATCH_DEDUP_HORIZON: seconds a story is remembered for duplicate detection (bounds the state)."""
    max_stories: int = 200_000
    """SIGNALWATCH_MAX_STORIES: most stories (and tagged ids) the worker remembers; past it the oldest are
    forgotten before the horizon (``signalwatch_state_evictions_total``). Bounds memory under a flood:
    about 2 KB per story in the story shard and its tables (2.4 KB of RSS), ~480 MB at the default
    (docs/architecture.md)."""
    dedup_stories: bool = True
    """SIGNALWATCH_DEDUP_STORIES: also drop copies of a story under another id: same normalised url, same or
    near-duplicate text (0 = repeated ids only)."""
    near_dup_threshold: float = 0.45
    """SIGNALWATCH_NEAR_DUP_THRESHOLD: estimated Jaccard similarity (words and word pairs) of a near-duplicate.
    Copies of a 50-word story with three words edited and a byline score ~0.75 against the original and
    0.68 +- 0.06 against each other (min 0.48 in 14,700 pairs); unrelated ~1 KB items ~0.07 (max 0.16)."""
    trend_windows: str = "900,3600"
    """SIGNALWATCH_TREND_WINDOWS: tumbling event-time window sizes in seconds, comma-separated; each a
    multiple of the smallest (only the smallest is stored, a larger window is the sum of its parts)."""
    trend_lookback: int = 8
    """SIGNALWATCH_TREND_LOOKBACK: previous windows that make the rolling (EWMA) baseline of a surge."""
    trend_min_count: int = 5
    """SIGNALWATCH_TREND_MIN_COUNT: a window needs at least this many items to be a surge."""
    trend_z: float = 3.0
    """SIGNALWATCH_TREND_Z: a surge is a window count this many standard deviations over the baseline."""
    alert_cooldown: float = 1800.0
    """SIGNALWATCH_ALERT_COOLDOWN: seconds (event time) without a repeat alert per (type, category, main
    actor) unless the severity rises; 0 turns cooldown off."""
    process_helpers: int = 1
    """SIGNALWATCH_PROCESS_HELPERS: processes beside the worker that do the process stage's per-item work
    (parse, tag, sketch), each on a core of its own; 0 does it in the worker's own process. One roughly
    doubles a worker's throughput when a core is free; more help where cores outnumber workers
    (docs/architecture.md)."""
    topics: Topics = field(default_factory=Topics)

    def __post_init__(self) -> None:
        self.web_port = int(self.web_port)
        self.partitions = int(self.partitions)
        self.replication = int(self.replication)
        self.max_item_bytes = int(self.max_item_bytes)
        self.max_body_bytes = int(self.max_body_bytes)
        self.alert_buffer = int(self.alert_buffer)
        self.max_request_items = int(self.max_request_items)
        self.ingest_rate = float(self.ingest_rate)
        self.http_timeout = float(self.http_timeout)
        self.data_dir = Path(self.data_dir)
        self.dedup_horizon = float(self.dedup_horizon)
        self.max_stories = int(self.max_stories)
        if isinstance(self.dedup_stories, str):
            self.dedup_stories = self.dedup_stories.strip().lower() not in ("0", "false", "no", "off", "")
        self.near_dup_threshold = float(self.near_dup_threshold)
        self.trend_lookback = int(self.trend_lookback)
        self.trend_min_count = int(self.trend_min_count)
        self.trend_z = float(self.trend_z)
        self.alert_cooldown = float(self.alert_cooldown)
        self.process_helpers = int(self.process_helpers)
        if not 0 <= self.process_helpers <= 64:
            raise SettingsError("SIGNALWATCH_PROCESS_HELPERS must be 0 (no helper) to 64; one per free core")
        if not 0 < self.near_dup_threshold <= 1:
            raise SettingsError("SIGNALWATCH_NEAR_DUP_THRESHOLD must be in (0, 1]")
        if self.max_stories < 1:
            raise SettingsError("SIGNALWATCH_MAX_STORIES must be >= 1 (stories remembered for duplicate detection)")
        if self.dedup_horizon <= 0 or self.alert_cooldown < 0:
            raise SettingsError("SIGNALWATCH_DEDUP_HORIZON must be > 0 and SIGNALWATCH_ALERT_COOLDOWN >= 0")
        try:
            sizes = self.window_sizes
        except ValueError:
            sizes = []
        if not sizes or sizes[0] <= 0 or any(size % sizes[0] for size in sizes):
            raise SettingsError(
                f"SIGNALWATCH_TREND_WINDOWS={self.trend_windows!r}: use window sizes in seconds, each a multiple "
                "of the smallest (larger windows are sums of the smallest), e.g. 900,3600")
        if self.trend_lookback < 1 or self.trend_min_count < 1:
            raise SettingsError("SIGNALWATCH_TREND_LOOKBACK and SIGNALWATCH_TREND_MIN_COUNT must be at least 1")
        if "://" not in self.broker:
            self.broker = f"kafka://{self.broker}"
        if not self.broker.startswith("kafka://"):
            raise SettingsError(
                f"SIGNALWATCH_BROKER={self.broker!r}: use kafka://host:port (e.g. kafka://127.0.0.1:9092)")
        if not 0 < self.web_port < 65536:
            raise SettingsError(f"SIGNALWATCH_WEB_PORT={self.web_port}: use a port between 1 and 65535")
        if self.partitions < 1:
            raise SettingsError("SIGNALWATCH_PARTITIONS must be at least 1")
        if self.max_item_bytes < 1024:
            raise SettingsError("SIGNALWATCH_MAX_ITEM_BYTES must be at least 1024")
        if self.max_body_bytes < self.max_item_bytes:
            raise SettingsError("SIGNALWATCH_MAX_BODY_BYTES must be at least SIGNALWATCH_MAX_ITEM_BYTES")
        if self.max_request_items < 1 or self.ingest_rate <= 0:
            raise SettingsError("SIGNALWATCH_MAX_REQUEST_ITEMS must be at least 1 and SIGNALWATCH_INGEST_RATE > 0")
        if self.http_timeout <= 0:
            raise SettingsError("SIGNALWATCH_HTTP_TIMEOUT must be a positive number of seconds")
        if self.alert_buffer < 1:
            raise SettingsError("SIGNALWATCH_ALERT_BUFFER must be at least 1")
        if self.alert_min_severity not in SEVERITIES:
            raise SettingsError(
                f"SIGNALWATCH_ALERT_MIN_SEVERITY={self.alert_min_severity!r}: use one of {', '.join(SEVERITIES)}")
        protocols = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
        if self.security_protocol not in protocols:
            raise SettingsError(
                f"SIGNALWATCH_SECURITY_PROTOCOL={self.security_protocol!r}: use one of {', '.join(protocols)}")
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username):
            raise SettingsError("SASL needs SIGNALWATCH_SASL_MECHANISM, SIGNALWATCH_SASL_USERNAME and _PASSWORD")

    @property
    def window_sizes(self) -> list[int]:
        """The trend window sizes in seconds, ascending."""
        return sorted({int(float(x)) for x in str(self.trend_windows).split(",") if x.strip()})

    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` list for kafka-python clients."""
        return [s for s in self.broker.removeprefix("kafka://").replace(",", ";").split(";") if s]

    def _ssl_context(self):
        import ssl

        return ssl.create_default_context(cafile=self.ssl_cafile or None) \
            if self.security_protocol.endswith("SSL") else None

    def faust_credentials(self):
        """The security settings for the Faust worker: None, SSL or SASL credentials."""
        import faust

        context = self._ssl_context()
        if self.security_protocol.startswith("SASL"):
            return faust.SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                                         mechanism=self.sasl_mechanism, ssl_context=context)
        return faust.SSLCredentials(context) if context is not None else None

    def aiokafka_client_options(self) -> dict:
        """The security settings for plain aiokafka clients (the live page's alert reader)."""
        opts: dict = {"bootstrap_servers": self.bootstrap_servers, "security_protocol": self.security_protocol}
        if (context := self._ssl_context()) is not None:
            opts["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            opts.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password)
        return opts

    def kafka_client_options(self) -> dict:
        """Connection options for kafka-python clients (bootstrap, TLS, SASL): the one place that turns the
        security settings into client options (:meth:`faust_credentials` for the worker)."""
        opts: dict = {"bootstrap_servers": self.bootstrap_servers, "security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            opts.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password)
        if self.ssl_cafile:
            opts["ssl_cafile"] = self.ssl_cafile
        return opts

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Settings from ``SIGNALWATCH_*`` variables, then non-None ``overrides`` (CLI options)."""
        env = os.environ if env is None else env
        known = {f.name for f in fields(cls)}
        values = {k: env[var] for k, var in ENV_VARS.items() if var in env}
        values.update({k: v for k, v in overrides.items() if v is not None and k in known})
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, SettingsError):
                raise
            raise SettingsError(f"bad setting: {exc}") from exc

