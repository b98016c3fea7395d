"""The `conveyor` command line: one entry point for every component."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from conveyor.devstack.errors import DevStackError
from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack
from conveyor.infra.database import apply_migrations, redact_dsn
from conveyor.infra.errors import InfraError
from conveyor.infra.settings import get_service_urls

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
app.add_typer(dev_app, name="dev")
app.add_typer(db_app, name="db")

console = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Directory of the stack's data, logs and state [env: CONVEYOR_DEV_HOME; "
        "default: .conveyor/dev].",
        show_default=False,
    ),
]


def _stack(home: Path | None) -> LocalStack:
    settings = DevStackSettings() if home is None else DevStackSettings(home=home)
    return LocalStack(settings, console)


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/] {error}")
    return typer.Exit(code=1)


@dev_app.command("up")
def dev_up(home: HomeOption = None) -> None:
    """Start every service that is not running yet and wait until all are healthy.

    Safe to run again: running services are left alone and stopped ones are restarted with
    their data. A service whose URL variable is set (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL,
    REDIS_URL, SMTP_URL, PAYMENT_GATEWAY_URL) is used as it is instead of started.
    """
    stack = _stack(home)
    try:
        stack.up()
    except (DevStackError, InfraError) as error:
        raise _fail(error) from error
    _print_status(stack)
    console.print(
        f"Addresses for other shells: [bold]set -a; . {stack.settings.env_file}; set +a[/]"
    )


@dev_app.command("down")
def dev_down(
    home: HomeOption = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete every service's data.")
    ] = False,
) -> None:
    """Stop every process the stack started, and nothing else."""
    stopped = _stack(home).down(purge=purge)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@dev_app.command("status")
def dev_status(home: HomeOption = None) -> None:
    """Show each service, its address and its health; exit 1 when any is unhealthy."""
    if not _print_status(_stack(home)):
        raise typer.Exit(code=1)


def _print_status(stack: LocalStack) -> bool:
    table = Table(title=f"Conveyor local stack ({stack.settings.root})")
    for column in ("service", "state", "pid", "address", "health"):
        table.add_column(column, overflow="fold")
    report = stack.status()
    for service in report:
        table.add_row(
            service.name,
            service.state,
            str(service.pid or ""),
            redact_dsn(service.url),
            "[green]healthy[/]" if service.healthy else "[red]unhealthy[/]",
        )
    Console().print(table)
    return all(service.healthy for service in report)


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
