"""The `conveyor` command line: one entry point for every component."""

from __future__ import annotations

import asyncio
import enum
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated
from uuid import UUID, uuid4

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from conveyor.domain.messages import (
    AdjustStock,
    CancelOrder,
    Message,
    OrderLine,
    PlaceOrder,
    UpsertProduct,
)
from conveyor.domain.processors import PROCESSOR_NAMES
from conveyor.infra import dead_letters
from conveyor.infra.database import apply_migrations, redact_dsn
from conveyor.infra.errors import InfraError, ServiceSettingsRefused
from conveyor.infra.publisher import Publisher
from conveyor.infra.settings import get_service_urls, settings_refused

app = typer.Typer(
    name="conveyor",
    help="Conveyor: an event-driven commerce backbone on Kafka and Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
dev_app = typer.Typer(
    help="Run the local stack: real Kafka, PostgreSQL, Redis, an SMTP sink, a payment sandbox.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Manage the PostgreSQL schema at DATABASE_URL.", no_args_is_help=True)
orders_app = typer.Typer(
    help="Send order commands straight to Kafka (drives the processors without the edge).",
    no_args_is_help=True,
)
inventory_app = typer.Typer(
    help="Send inventory commands straight to Kafka (drives the processors without the edge).",
    no_args_is_help=True,
)
app.add_typer(dev_app, name="dev")
app.add_typer(db_app, name="db")
app.add_typer(orders_app, name="orders")
dlq_app = typer.Typer(
    help="Read dead letters and send them back to their source topic once the cause is fixed.",
    no_args_is_help=True,
)
app.add_typer(inventory_app, name="inventory")
app.add_typer(dlq_app, name="dlq")

console = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Directory of the stack's data, logs and state \\[env: CONVEYOR_DEV_HOME; "
        "default: .conveyor/dev].",
        show_default=False,
    ),
]


class KafkaSecurityChoice(enum.StrEnum):
    plaintext = "plaintext"
    scram_tls = "scram-tls"


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/] {error}")
    return typer.Exit(code=1)


# The dev commands import conveyor.devstack inside their bodies, never at the top of this
# module: production runs `conveyor api|worker|operator` without the devstack extra's libraries,
# and an import-linter contract (pyproject.toml) keeps every other import of it out.
@contextmanager
def _devstack_extra() -> Iterator[None]:
    """Turn a missing dev-only library into a message that says how to install it."""
    try:
        yield
    except ModuleNotFoundError as error:
        raise _fail(
            ValueError(
                f"`conveyor dev` needs the devstack extra ({error.name} is not installed): "
                "run `make install` (or `uv sync --locked --all-extras`)"
            )
        ) from error


@dev_app.command("up")
def dev_up(
    home: HomeOption = None,
    services_only: Annotated[
        bool,
        typer.Option(
            "--services-only", help="Start only Kafka, PostgreSQL, Redis, SMTP and payments."
        ),
    ] = False,
    kafka_security: Annotated[
        KafkaSecurityChoice | None,
        typer.Option(
            "--kafka-security",
            help="plaintext, or scram-tls: Kafka over SASL_SSL with SCRAM-SHA-512 logins "
            "(CONVEYOR_DEV_KAFKA_SECURITY). Takes effect when Kafka's storage is first made.",
        ),
    ] = None,
) -> None:
    """Start every service, the processors, the edge and Prometheus that are not running
    yet, and wait until all are healthy.

    Safe to run again: running processes are left alone and stopped ones are restarted with
    their data. A service whose URL variable is set (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL,
    REDIS_URL, SMTP_URL, PAYMENT_GATEWAY_URL) is used as it is instead of started.
    """
    with _devstack_extra():
        from conveyor.devstack import commands
        from conveyor.devstack.errors import DevStackError

    try:
        commands.up(
            home,
            services_only=services_only,
            console=console,
            kafka_security=kafka_security.value if kafka_security else None,
        )
    except (DevStackError, InfraError) as error:
        raise _fail(error) from error


@dev_app.command("down")
def dev_down(
    home: HomeOption = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete every service's data.")
    ] = False,
) -> None:
    """Stop every process the stack started (processors first), and nothing else."""
    with _devstack_extra():
        from conveyor.devstack import commands

    stopped = commands.down(home, purge=purge, console=console)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@dev_app.command("status")
def dev_status(home: HomeOption = None) -> None:
    """Show each service, its address and its health; exit 1 when any is unhealthy."""
    with _devstack_extra():
        from conveyor.devstack import commands

    if not commands.status(home, console):
        raise typer.Exit(code=1)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the schema migrations that DATABASE_URL does not have yet (safe to repeat)."""
    urls = get_service_urls()
    try:
        applied = asyncio.run(apply_migrations(urls.database_url))
    except InfraError as error:
        raise _fail(error) from error
    console.print(f"{redact_dsn(urls.database_url)}: {len(applied)} migrations applied")
    for name in applied:
        console.print(f"  {name}")


# -- processors ----------------------------------------------------------------------------


def _known_processor(name: str) -> str:
    if name not in PROCESSOR_NAMES:
        raise typer.BadParameter(f"{name!r} is not one of {', '.join(PROCESSOR_NAMES)}.")
    return name


@app.command("worker")
def worker(
    processor: Annotated[
        str,
        typer.Argument(
            callback=_known_processor,
            metavar="PROCESSOR",
            autocompletion=lambda: list(PROCESSOR_NAMES),
            help=f"Which processor: {', '.join(PROCESSOR_NAMES)}.",
        ),
    ],
) -> None:
    """Run one stream processor (its own consumer group, conveyor-<processor>) until stopped.

    Reads KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, REDIS_URL, SMTP_URL, PAYMENT_GATEWAY_URL and
    CONVEYOR_* settings (CONVEYOR_PROCESSING_GUARANTEE, CONVEYOR_STORE, CONVEYOR_DATA_DIR,
    CONVEYOR_METRICS_PORT, ...).
    """
    from conveyor.streams.processors import build
    from conveyor.streams.runtime import WorkerSettings

    try:
        settings = WorkerSettings()
    except ValidationError as error:
        raise _fail(settings_refused(error, "CONVEYOR_")) from None
    try:
        build(processor, get_service_urls(), settings).run()
    except InfraError as error:  # e.g. its topics never appeared (CONVEYOR_TOPICS=verify)
        raise _fail(error) from error


@app.command("crds")
def crds(
    output: Annotated[
        list[Path] | None,
        typer.Option(
            "--output",
            "-o",
            help="Directory to write the CRD files into; repeat for several (default: crds).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate the CustomResourceDefinitions from their models (what `make crds` runs)."""
    from conveyor.operator.crds import write

    # The one copy: manifests/ references crds/ as a kustomization of its own.
    for directory in output or [Path("crds")]:
        for path in write(directory):
            console.print(f"wrote {path}")


@app.command("operator")
def operator() -> None:
    """Run the Kubernetes operator for StreamProcessor and Topic resources.

    It uses the pod's service account, or KUBECONFIG outside a cluster; Topics go to
    KAFKA_BOOTSTRAP_SERVERS; CONVEYOR_OPERATOR_NAMESPACES limits what it watches.
    """
    from conveyor.operator.main import run

    run()


@app.command("api")
def api(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on \\[env: CONVEYOR_API_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on \\[env: CONVEYOR_API_PORT].")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="uvicorn worker processes \\[env: CONVEYOR_API_WORKERS; default: one per CPU "
            "this process may use].",
            min=1,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the REST edge (/api/v1, /docs, /.well-known/jwks.json, /healthz, /readyz,
    /metrics) and the web shop's bundle under / (CONVEYOR_WEB_DIR) with uvicorn.

    Reads KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, REDIS_URL and CONVEYOR_* settings
    (CONVEYOR_JWT_SIGNING_KEYS, CONVEYOR_ADMIN_EMAIL, CONVEYOR_ADMIN_PASSWORD,
    CONVEYOR_TRUSTED_PROXIES, CONVEYOR_CORS_ORIGINS, rate limits, ...), and refuses to start
    when one is invalid or unsafe. Applies the schema migrations at start-up. The workers'
    metrics are added up in PROMETHEUS_MULTIPROC_DIR when it is set (emptied first), else in a
    temporary directory.
    """
    import uvicorn

    from conveyor.api.settings import SettingsRefused, get_settings
    from conveyor.api.workers import MetricsDirectoryUnusable, shared_metrics_directory

    try:
        settings = get_settings()
        # Checked here too, so a bad Kafka login setting stops the edge before it serves.
        get_service_urls()
    except (SettingsRefused, ServiceSettingsRefused) as error:
        raise _fail(error) from error
    if settings.uses_ephemeral_key:
        console.print(
            "[yellow]warning:[/] CONVEYOR_JWT_SIGNING_KEYS is not set (CONVEYOR_DEV_STACK): "
            "tokens are signed with a key made now, which dies with this process"
        )
        # The workers are processes of their own: each would make a key and refuse the
        # tokens of its siblings.
        os.environ["CONVEYOR_JWT_SIGNING_KEYS"] = settings.jwt_signing_keys.get_secret_value()
    try:
        with shared_metrics_directory():
            uvicorn.run(
                "conveyor.api.app:create_app",
                factory=True,
                host=host or settings.api_host,
                port=port if port is not None else settings.api_port,
                workers=workers if workers is not None else settings.api_workers,
                # The access log names routes and statuses; bodies (passwords, tokens) never.
                access_log=True,
                # X-Forwarded-For names the client only when a trusted proxy sent it.
                proxy_headers=bool(settings.trusted_proxies),
                forwarded_allow_ips=settings.trusted_proxies,
                log_level="info",
            )
    except MetricsDirectoryUnusable as error:
        raise _fail(error) from error


@app.command("new-signing-key")
def new_signing_key() -> None:
    """Print a new Ed25519 private key in PEM for CONVEYOR_JWT_SIGNING_KEYS, as
    `openssl genpkey -algorithm ed25519` does (some openssl builds cannot)."""
    from conveyor.api.signing_keys import new_signing_key_pem

    typer.echo(new_signing_key_pem(), nl=False)


def _publish(*messages: Message) -> list[UUID]:
    async def send() -> list[UUID]:
        urls = get_service_urls()
        async with Publisher(
            urls.kafka_bootstrap_servers, security=urls.kafka_security()
        ) as publisher:
            return [await publisher.publish(message) for message in messages]

    try:
        return asyncio.run(send())
    except InfraError as error:
        raise _fail(error) from error


def _parse_line(raw: str) -> OrderLine:
    try:
        product, quantity, price = raw.split(":")
        unit_price = Decimal(price)
        return OrderLine(
            product_id=UUID(product),
            quantity=int(quantity),
            unit_price=unit_price,
            subtotal=unit_price * int(quantity),
        )
    except (ValueError, ArithmeticError, ValidationError) as error:
        raise typer.BadParameter(
            f"{raw!r} is not PRODUCT_ID:QUANTITY:UNIT_PRICE (e.g. {uuid4()}:2:19.99): {error}"
        ) from error


@orders_app.command("place")
def orders_place(
    item: Annotated[
        list[str],
        typer.Option("--item", help="PRODUCT_ID:QUANTITY:UNIT_PRICE; repeat for more lines."),
    ],
    email: Annotated[str, typer.Option(help="The customer's email address.")],
    token: Annotated[
        str, typer.Option(help="Payment token: tok_visa, tok_chargeDeclined or tok_timeout.")
    ] = "tok_visa",  # noqa: S107 (a sandbox card token, not a secret)
    currency: Annotated[str, typer.Option(help="ISO 4217 currency of the prices.")] = "EUR",
    user: Annotated[str | None, typer.Option(help="The customer's user id [default: new].")] = None,
    order: Annotated[str | None, typer.Option(help="The order id [default: new].")] = None,
) -> None:
    """Place an order (PlaceOrder on orders.commands) and print its id."""
    lines = tuple(_parse_line(raw) for raw in item)
    try:
        command = PlaceOrder(
            order_id=UUID(order) if order else uuid4(),
            user_id=UUID(user) if user else uuid4(),
            customer_email=email,
            items=lines,
            currency=currency,
            total=sum((line.subtotal for line in lines), start=Decimal(0)),
            payment_token=token,
        )
    except (ValueError, ValidationError) as error:
        raise _fail(error) from error
    _publish(command)
    typer.echo(command.order_id)


@orders_app.command("cancel")
def orders_cancel(
    order: Annotated[str, typer.Argument(help="The order id.")],
    user: Annotated[str | None, typer.Option(help="Who asks [default: a new id].")] = None,
) -> None:
    """Ask to cancel an order (CancelOrder on orders.commands)."""
    _publish(CancelOrder(order_id=UUID(order), requested_by=UUID(user) if user else uuid4()))


@inventory_app.command("upsert")
def inventory_upsert(
    sku: Annotated[str, typer.Option(help="Stock keeping unit, e.g. KB-1.")],
    name: Annotated[str, typer.Option(help="Product name.")],
    stock: Annotated[int, typer.Option(help="Initial stock (counts only when new).")] = 0,
    product: Annotated[str | None, typer.Option(help="Product id [default: new].")] = None,
) -> None:
    """Create a product with its initial stock, or rename one (UpsertProduct); prints its id."""
    product_id = UUID(product) if product else uuid4()
    _publish(UpsertProduct(product_id=product_id, sku=sku, name=name, initial_stock=stock))
    typer.echo(product_id)


@inventory_app.command("adjust")
def inventory_adjust(
    product: Annotated[str, typer.Argument(help="The product id.")],
    delta: Annotated[int, typer.Argument(help="Units to add (negative: remove).")],
) -> None:
    """Add or remove stock (AdjustStock); refused to the DLQ if it would go below zero."""
    _publish(AdjustStock(product_id=UUID(product), adjustment_id=uuid4(), delta=delta))


# -- dead letters --------------------------------------------------------------------------

TopicArgument = Annotated[
    str,
    typer.Argument(
        help="The source topic (e.g. inventory.commands) or its dead-letter topic "
        "(inventory.commands.dlq)."
    ),
]


def _dead_letters(topic: str) -> list[dead_letters.DeadLetterRecord]:
    try:
        urls = get_service_urls()
        return asyncio.run(
            dead_letters.read_dead_letters(
                urls.kafka_bootstrap_servers, topic, security=urls.kafka_security()
            )
        )
    except InfraError as error:
        raise _fail(error) from error


@dlq_app.command("list")
def dlq_list(topic: TopicArgument) -> None:
    """List the dead letters of TOPIC: where each is, when and why it failed, where it came
    from, and whether it was replayed."""
    letters = _dead_letters(topic)
    table = Table(title=f"{dead_letters.dead_letter_topic_of(topic)}: {len(letters)} dead letters")
    for column in ("dead letter", "failed at", "source", "error", "replayed"):
        table.add_column(column, overflow="fold")
    for dead in letters:
        letter, replay = dead.letter, dead.replay
        # Text, not markup: an error may hold brackets.
        table.add_row(
            *map(
                Text,
                (
                    dead.position,
                    (letter.failed_at if letter else dead.timestamp).isoformat(timespec="seconds"),
                    f"{letter.source_topic} {letter.partition}:{letter.offset}" if letter else "?",
                    letter.error if letter else "not a dead letter Conveyor wrote",
                    f"{replay.replayed_at.isoformat(timespec='seconds')} to "
                    f"{replay.source_partition}:{replay.replayed_offset}"
                    if replay
                    else "no",
                ),
            )
        )
    Console().print(table)


@dlq_app.command("show")
def dlq_show(
    topic: TopicArgument,
    offset: Annotated[
        str,
        typer.Argument(
            help="PARTITION:OFFSET as `conveyor dlq list` shows it (an OFFSET alone will do "
            "when only one partition has it)."
        ),
    ],
) -> None:
    """Print one dead letter whole, as JSON: its headers, the original key, headers and value
    (decoded when it is JSON), the error, and its replay if any."""
    try:
        [dead] = dead_letters.select(topic, _dead_letters(topic), [offset])
    except InfraError as error:
        raise _fail(error) from error
    typer.echo(json.dumps(dead_letters.describe(dead), indent=2))


@dlq_app.command("replay")
def dlq_replay(
    topic: TopicArgument,
    offset: Annotated[
        list[str] | None,
        typer.Option(
            "--offset",
            help="A dead letter to replay, PARTITION:OFFSET as `conveyor dlq list` shows it; "
            "repeat for more.",
            show_default=False,
        ),
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter not replayed yet.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; send nothing.")
    ] = False,
) -> None:
    """Send dead letters back to the topic and partition they came from, each once.

    The original key, value and headers go back unchanged, with the headers
    conveyor-replayed-from (the dead letter's topic:partition:offset) and
    conveyor-replayed-at. Each replay is recorded in the compacted topic conveyor.dlq-replays,
    so a dead letter already replayed, by anyone, is never sent again.
    """
    if bool(offset) == replay_all:
        raise _fail(
            ValueError(
                "name the dead letters with --offset PARTITION:OFFSET (as `conveyor dlq list` "
                "shows them), or replay every one not replayed yet with --all"
            )
        )
    letters = _dead_letters(topic)
    try:
        chosen = letters if replay_all else dead_letters.select(topic, letters, offset or [])
    except InfraError as error:
        raise _fail(error) from error

    def report(done: int, total: int, outcome: dead_letters.ReplayOutcome) -> None:
        dead, replay = outcome.dead_letter, outcome.replay
        if outcome.result == "replayed" and replay:
            detail = f" to {replay.source_topic} {replay.source_partition}:{replay.replayed_offset}"
        elif outcome.result == "already replayed" and replay:
            detail = f" on {replay.replayed_at.isoformat(timespec='seconds')}; not sent again"
        elif outcome.reason:
            detail = f": {outcome.reason}"
        else:
            detail = ""
        console.print(
            f"[{done}/{total}] {dead.dead_letter_topic} {dead.position}: {outcome.result}{detail}",
            markup=False,
        )

    try:
        urls = get_service_urls()
        outcomes = asyncio.run(
            dead_letters.replay_dead_letters(
                urls.kafka_bootstrap_servers,
                chosen,
                dry_run=dry_run,
                progress=report,
                security=urls.kafka_security(),
            )
        )
    except InfraError as error:
        raise _fail(error) from error
    sent = "would replay" if dry_run else "replayed"
    typer.echo(
        ", ".join(
            f"{sum(outcome.result == result for outcome in outcomes)} {result}"
            for result in (sent, "already replayed", "not replayable")
        )
    )
