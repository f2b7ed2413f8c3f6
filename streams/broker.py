"""A local single-node Apache Kafka broker (KRaft, combined mode) on 127.0.0.1.

Apache's own jars come from Maven Central through the Maven descriptor in ``docker/kafka/pom.xml``
(resolved once into a cache outside the repository); the broker runs as a detached ``java`` process
whose pid, port and log live in its data directory, so ``start`` / ``stop`` / ``status`` work
across shells.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "4.4.0"
"""Pinned Kafka version: the newest whose whole dependency tree Maven Central serves here and which
aiokafka 0.14 (Faust) and kafka-python 3 both talk to (see tests/integration)."""

POM = Path(__file__).resolve().parent.parent / "docker" / "kafka" / "pom.xml"


class BrokerError(RuntimeError):
    """A local broker could not be set up or started; the message says what to do."""


def cache_dir() -> Path:
    """Where the Kafka jars are kept (``SIGNALWATCH_CACHE`` or ``~/.cache/signalwatch``)."""
    base = os.environ.get("SIGNALWATCH_CACHE") or Path.home() / ".cache" / "signalwatch"
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def default_data_dir() -> Path:
    """The default data directory of the local broker."""
    base = os.environ.get("SIGNALWATCH_HOME") or Path.home() / ".local" / "share" / "signalwatch"
    return Path(base) / "broker"


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise BrokerError(f"{tool} not found: {hint}")
    return path


def ensure_jars(quiet: bool = True) -> Path:
    """Resolve the broker's jars from Maven Central into the cache (once) and return that folder."""
    jars = cache_dir()
    if (jars / ".complete").exists():
        return jars
    _require("java", "install Java 17 or newer (Debian: apt-get install -y openjdk-17-jre-headless)")
    mvn = _require("mvn", "install Maven (Debian: apt-get install -y maven)")
    if not POM.exists():
        raise BrokerError(f"Maven descriptor {POM} is missing: run from a checkout of signalwatch")
    jars.mkdir(parents=True, exist_ok=True)
    cmd = [mvn, "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={jars}",
           "-DincludeScope=runtime", f"-Dkafka.version={KAFKA_VERSION}"]
    if quiet:
        cmd.insert(1, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BrokerError(
            f"could not fetch Kafka {KAFKA_VERSION} jars with Maven (exit {proc.returncode}); "
            f"check access to Maven Central and run `{' '.join(cmd)}`:\n{proc.stdout[-2000:]}"
        )
    (jars / ".complete").write_text(KAFKA_VERSION)
    return jars


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
"""The embedded broker is for one machine that also runs the workers and the clients: compiled by C1 only,
with the serial collector. With Kafka's defaults (C2 and G1) a broker minutes old still spent most of its
CPU compiling and collecting: at 500 items/s offered, 2.5 ms of CPU per item, of which the C2 compiler 1.1
and G1's concurrent threads 0.4, against 0.9 with these options (measured on 2 cores, 2026-12-01). On the
bench's backlog the broker took 0.19 ms per pipeline item instead of 0.56, and a no-op agent's 0.29
instead of 0.70."""


@dataclass
class LocalBroker:
    """A single-node KRaft broker whose state lives in ``data_dir``."""

    data_dir: Path
    port: int = 9092
    scram_user: str | None = None
    """With a SCRAM user, clients must authenticate: one SASL_PLAINTEXT listener with SCRAM-SHA-256
    (the broker talks to itself as this user too); without, PLAINTEXT as before."""
    scram_password: str | None = field(default=None, repr=False)
    tls: bool = False
    """With TLS, the client listener is SSL (SASL_SSL with a SCRAM user) with a certificate for
    127.0.0.1 signed by a CA made for this data directory (``ca_file``, for the clients' SSL_CAFILE)."""

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The broker URL in Faust's form."""
        return f"kafka://{self.bootstrap}"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        """The broker's own log (stdout and stderr of the java process)."""
        return self.data_dir / "broker.log"

    def pid(self) -> int | None:
        """The pid of the running broker, or None."""
        try:
            pid = int(self._pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def running_port(self) -> int | None:
        """The port the running broker of this data directory listens on, or None."""
        try:
            return int(self._pid_file.read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        """Whether this data directory's broker is up and answers on its port."""
        port = self.running_port()
        return self.pid() is not None and port is not None and port_open(port)

    @property
    def security_protocol(self) -> str:
        """The client listener's security protocol."""
        return ("SASL_" if self.scram_user else "") + ("SSL" if self.tls else "PLAINTEXT")

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that signed the broker's certificate (TLS only)."""
        return self.data_dir / "tls" / "ca.pem"

    def client_env(self) -> dict[str, str]:
        """``SIGNALWATCH_*`` variables that point a worker or the CLI at this broker."""
        env = {"SIGNALWATCH_BROKER": self.url, "SIGNALWATCH_SECURITY_PROTOCOL": self.security_protocol}
        if self.scram_user:
            env.update(SIGNALWATCH_SASL_MECHANISM=SCRAM_MECHANISM, SIGNALWATCH_SASL_USERNAME=self.scram_user,
                       SIGNALWATCH_SASL_PASSWORD=self.scram_password or "")
        if self.tls:
            env["SIGNALWATCH_SSL_CAFILE"] = str(self.ca_file)
        return env

    def _client_options(self) -> dict:
        from streams.settings import Settings

        opts = Settings.from_env(self.client_env()).kafka_client_options()
        del opts["bootstrap_servers"]
        return opts

    def _make_certificates(self) -> tuple[Path, Path]:
        """A CA and a broker key + certificate for 127.0.0.1/localhost (openssl); (keystore, truststore) PEM."""
        tls = self.ca_file.parent
        keystore, truststore = tls / "broker-keystore.pem", self.ca_file
        if keystore.exists() and truststore.exists():
            return keystore, truststore
        openssl = _require("openssl", "install openssl (Debian: apt-get install -y openssl)")
        tls.mkdir(parents=True, exist_ok=True)

        def run(*args: str) -> None:
            done = subprocess.run([openssl, *args], cwd=tls, capture_output=True, text=True)
            if done.returncode != 0:
                raise BrokerError(f"openssl {args[0]} failed making the test certificates: {done.stderr.strip()}")

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=signalwatch local CA",
            "-keyout", "ca.key", "-out", "ca.pem")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "broker.key",
            "-out", "broker.csr")
        (tls / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "30", "-extfile", "san.cnf", "-out", "broker.pem")
        run("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.p8")
        keystore.write_text((tls / "broker.p8").read_text() + (tls / "broker.pem").read_text()
                            + truststore.read_text())
        return keystore, truststore

    def _write_config(self, controller_port: int) -> Path:
        logs = self.data_dir / "kraft-logs"
        listener = self.security_protocol
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
            "listeners": f"{listener}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"{listener}://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            "listener.security.protocol.map": f"{listener}:{listener},CONTROLLER:PLAINTEXT",
            "log.dirs": str(logs),
            "num.partitions": "8",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "message.max.bytes": str(4 * 1024 * 1024),
        }
        if self.scram_user:
            mech = SCRAM_MECHANISM.lower()
            props.update({
                "sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
                f"listener.name.{listener.lower()}.{mech}.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f'username="{_jaas_quote(self.scram_user)}" password="{_jaas_quote(self.scram_password or "")}";',
            })
        if self.tls:
            keystore, truststore = self._make_certificates()
            props.update({
                "ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore),
                "ssl.truststore.type": "PEM", "ssl.truststore.location": str(truststore),
                "ssl.endpoint.identification.algorithm": "",  # the broker calls itself on 127.0.0.1
            })
        config = self.data_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return config

    def _java(self, jars: Path, main: str, *args: str, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
        java = _require("java", "install Java 17 or newer (Debian: apt-get install -y openjdk-17-jre-headless)")
        log4j = self.data_dir / "log4j2.properties"
        if not log4j.exists():
            log4j.write_text(
                "rootLogger.level = WARN\nrootLogger.appenderRef.out.ref = out\n"
                "appender.out.type = Console\nappender.out.name = out\n"
                "appender.out.layout.type = PatternLayout\n"
                "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
                "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            )
        cmd = [java, *JVM_OPTIONS, "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{jars}/*", main, *args]
        if kw.pop("background", False):
            return subprocess.Popen(cmd, start_new_session=True, **kw)
        return subprocess.run(cmd, capture_output=True, text=True, **kw)

    def start(self, timeout: float = 60.0) -> str:
        """Start the broker unless it already runs; wait until it answers; return the bootstrap."""
        if self.is_running():
            self.port = self.running_port() or self.port
            return self.bootstrap
        if self.pid() is not None:
            self.stop()
        if port_open(self.port):
            raise BrokerError(
                f"port {self.port} on 127.0.0.1 is taken by another program: choose one with --port"
            )
        jars = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        controller_file = self.data_dir / "controller.port"
        if controller_file.exists() and not port_open(int(controller_file.read_text())):
            controller_port = int(controller_file.read_text())  # KRaft records the voter's endpoint
        else:
            controller_port = free_port()
            controller_file.write_text(str(controller_port))
        config = self._write_config(controller_port)
        meta = self.data_dir / "kraft-logs" / "meta.properties"
        if not meta.exists():
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            scram = ["--add-scram", f"{SCRAM_MECHANISM}=[name={self.scram_user},password={self.scram_password}]"] \
                if self.scram_user else []
            done = self._java(jars, "kafka.tools.StorageTool", "format", "--standalone",
                              f"--cluster-id={cid}", "-c", str(config), *scram)  # an id may start with "-"
            if done.returncode != 0:
                raise BrokerError(f"formatting the broker's storage failed: {done.stdout}{done.stderr}")
        with open(self.log_file, "ab") as log:
            proc = self._java(jars, "kafka.Kafka", str(config), background=True,
                              stdout=log, stderr=subprocess.STDOUT)
        self._pid_file.write_text(f"{proc.pid} {self.port}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {proc.returncode}; see {self.log_file}:\n"
                    + self.log_file.read_text(errors="replace")[-3000:]
                )
            if port_open(self.port) and self._answers():
                return self.bootstrap
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the broker did not answer within {timeout:.0f}s; see {self.log_file}")

    def _answers(self) -> bool:
        from kafka import KafkaAdminClient

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000,
                                     bootstrap_timeout_ms=2000,
                                     client_id="signalwatch-probe", **self._client_options())
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after ``timeout``); True if one was running."""
        pid = self.pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
            _reap(pid)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
        self._pid_file.unlink(missing_ok=True)
        return True


SCRAM_MECHANISM = "SCRAM-SHA-256"


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
