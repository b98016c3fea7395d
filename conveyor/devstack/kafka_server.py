"""Apache Kafka from its own jars on Maven Central: one broker and controller in KRaft mode."""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from rich.console import Console

from conveyor.devstack.certificates import LocalAuthority, ServerCertificate
from conveyor.devstack.errors import PrerequisiteMissing
from conveyor.devstack.settings import DevStackSettings

MINIMUM_JAVA = 17
# The login of the scram-tls listener, for clients and for the broker itself.
SASL_MECHANISM = "SCRAM-SHA-512"


def _resource(name: str) -> str:
    return resources.files("conveyor.devstack").joinpath("resources", name).read_text()


def kafka_version() -> str:
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", _resource("kafka-pom.xml"))
    assert found, "kafka-pom.xml pins <kafka.version>"
    return found.group(1)


def jars_dir(settings: DevStackSettings) -> Path:
    """Where the jars are cached; the pom's hash is part of the path so editing it refetches."""
    digest = hashlib.sha256(_resource("kafka-pom.xml").encode()).hexdigest()[:12]
    return settings.cache_dir / "kafka" / f"{kafka_version()}-{digest}" / "libs"


def check_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise PrerequisiteMissing(
            f"Kafka needs Java {MINIMUM_JAVA} or newer and no `java` is on PATH; "
            "install one (Debian: `apt-get install openjdk-17-jre-headless`)"
        )
    version_output = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False
    ).stderr
    found = re.search(r'version "(\d+)', version_output)
    if found is None or int(found.group(1)) < MINIMUM_JAVA:
        raise PrerequisiteMissing(
            f"Kafka needs Java {MINIMUM_JAVA} or newer; `java -version` says: "
            f"{version_output.strip()[:200]}"
        )
    return java


def fetch_jars(settings: DevStackSettings, console: Console) -> Path:
    """Resolve the broker's runtime jars once per machine with Maven.

    Stacks started at the same time (two test workers on a new machine) fetch them once: the
    others wait for the first, then find them complete.
    """
    libs = jars_dir(settings)
    complete_marker = libs / ".complete"
    if complete_marker.exists():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".fetch.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if not complete_marker.exists():
            _fetch_jars_into(libs, console)
    return libs


def _fetch_jars_into(libs: Path, console: Console) -> None:
    complete_marker = libs / ".complete"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PrerequisiteMissing(
            "fetching Kafka's jars needs Maven (`mvn`) on PATH; "
            "install it (Debian: `apt-get install maven`)"
        )
    console.print(
        f"[bold]kafka[/]: fetching Apache Kafka {kafka_version()} jars from Maven Central "
        f"into {libs} (first run only)"
    )
    workdir = libs.parent
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pom.xml").write_text(_resource("kafka-pom.xml"))
    staging = workdir / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "--batch-mode",
            "--file",
            str(workdir / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    downloaded = sum(1 for line in result.stdout.splitlines() if line.startswith("Downloaded"))
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-30:])
        raise PrerequisiteMissing(
            f"Maven could not fetch Kafka's jars (exit {result.returncode}); is Maven Central "
            f"reachable? Its output ends with:\n{tail}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.replace(libs)
    complete_marker.touch()
    jar_count = len(list(libs.glob("*.jar")))
    console.print(f"[bold]kafka[/]: {downloaded} artifacts downloaded, {jar_count} jars ready")


def certificate(settings: DevStackSettings) -> ServerCertificate:
    """The certificate the scram-tls listener presents, from the stack's own authority."""
    return LocalAuthority(settings.tls_dir).server("kafka", [settings.host, "localhost"])


def _keystore(settings: DevStackSettings) -> Path:
    """The listener's key and certificate chain in one PEM file, as Kafka's PEM keystore
    reads them; rewritten at every start, so a renewed certificate is picked up."""
    served = certificate(settings)
    keystore = settings.tls_dir / "kafka-keystore.pem"
    keystore.touch(0o600)  # never readable by others, not even for a moment
    keystore.chmod(0o600)
    keystore.write_bytes(served.key.read_bytes() + served.chain.read_bytes())
    return keystore


def _listener_properties(settings: DevStackSettings) -> list[str]:
    host = settings.host
    controller = f"CONTROLLER://{host}:{settings.kafka_controller_port}"
    if settings.kafka_security == "plaintext":
        return [
            f"listeners=PLAINTEXT://{host}:{settings.kafka_port},{controller}",
            f"advertised.listeners=PLAINTEXT://{host}:{settings.kafka_port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
        ]
    login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{settings.kafka_sasl_username}" password="{settings.kafka_sasl_password}";'
    )
    return [
        f"listeners=SASL_SSL://{host}:{settings.kafka_port},{controller}",
        f"advertised.listeners=SASL_SSL://{host}:{settings.kafka_port}",
        # The controller's listener stays plaintext: a single node, on loopback only, that
        # clients never dial (they bootstrap from the SASL_SSL listener).
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        # The broker logs in to its own listener like any client, so no listener is open
        # without a login.
        "inter.broker.listener.name=SASL_SSL",
        f"sasl.enabled.mechanisms={SASL_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SASL_MECHANISM}",
        f"listener.name.sasl_ssl.{SASL_MECHANISM.lower()}.sasl.jaas.config={login}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={_keystore(settings)}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certificate(settings).authority}",
    ]


def server_properties(settings: DevStackSettings, log_dir: Path) -> str:
    host = settings.host
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{settings.kafka_controller_port}",
            *_listener_properties(settings),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={log_dir}",
            # One broker: internal topics cannot be replicated more than once.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Consumers join at once instead of waiting for more members that never come.
            "group.initial.rebalance.delay.ms=0",
            # Topics are created explicitly with their partition counts, never by accident.
            "auto.create.topics.enable=false",
            "num.partitions=1",
            "log.retention.hours=168",
            "",
        ]
    )


def prepare(settings: DevStackSettings, console: Console) -> list[str]:
    """Fetch the jars, write the configuration, format storage once; return the command."""
    java = check_java()
    libs = fetch_jars(settings, console)
    data = settings.root / "kafka"
    log_dir = data / "data"
    data.mkdir(parents=True, exist_ok=True)
    properties = data / "server.properties"
    properties.write_text(server_properties(settings, log_dir))
    log_config = data / "log4j2.yaml"
    log_config.write_text(_resource("kafka-log4j2.yaml"))
    classpath = f"{libs}/*"
    formatted_for = data / "formatted-for"
    if (log_dir / "meta.properties").exists():
        _check_formatted_for(settings, formatted_for)
    else:
        cluster_id = _cluster_id()
        result = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                f"-Dlog4j2.configurationFile={log_config}",
                "kafka.tools.StorageTool",
                "format",
                # Joined with `=`: a base64url id may begin with "-" and pass for an option.
                f"--cluster-id={cluster_id}",
                "-c",
                str(properties),
                *_scram_users(settings),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PrerequisiteMissing(
                f"formatting Kafka's storage in {log_dir} failed:\n{result.stdout}{result.stderr}"
            )
        formatted_for.write_text(settings.kafka_security)
    return [
        java,
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(properties),
    ]


def _scram_users(settings: DevStackSettings) -> list[str]:
    # SCRAM logins live in the cluster's metadata; made at format time, they exist before
    # the broker first listens.
    if settings.kafka_security == "plaintext":
        return []
    user = f"name={settings.kafka_sasl_username},password={settings.kafka_sasl_password}"
    return ["--add-scram", f"{SASL_MECHANISM}=[{user}]"]


def _check_formatted_for(settings: DevStackSettings, formatted_for: Path) -> None:
    # Storage formatted before the marker existed was formatted for plaintext.
    was = formatted_for.read_text().strip() if formatted_for.exists() else "plaintext"
    if was != settings.kafka_security:
        raise PrerequisiteMissing(
            f"the local Kafka in {formatted_for.parent} was formatted for {was}, and "
            f"CONVEYOR_DEV_KAFKA_SECURITY={settings.kafka_security} needs its logins made at "
            f"format time: run `conveyor dev down --purge` (this deletes the stack's data), "
            f"or keep CONVEYOR_DEV_KAFKA_SECURITY={was}"
        )


def _cluster_id() -> str:
    # KRaft wants a base64url-encoded 16-byte id, the form `StorageTool random-uuid` prints.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
