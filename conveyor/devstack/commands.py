"""What `conveyor dev up / down / status` do.

``conveyor.cli`` declares these commands and their options, and imports this module only inside
them, so `conveyor api`, `conveyor worker` and `conveyor operator` never load the dev stack or
the libraries only it needs (the ``devstack`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from conveyor.devstack.components import DEV_ADMIN_EMAIL, Components
from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack
from conveyor.infra.database import redact_dsn


def _stack(home: Path | None, console: Console, **overrides: Any) -> LocalStack:
    chosen = {"home": home, **overrides}
    settings = DevStackSettings(**{name: value for name, value in chosen.items() if value})
    return LocalStack(settings, console)


def up(
    home: Path | None,
    *,
    services_only: bool,
    console: Console,
    kafka_security: str | None = None,
) -> None:
    """Start what is not running yet and print where everything is; raises ``DevStackError``
    or ``InfraError`` when something does not come up."""
    stack = _stack(home, console, kafka_security=kafka_security)
    stack.up()
    if not services_only:
        Components(stack).up()
    _print_status(stack)
    console.print(
        f"Addresses for other shells: [bold]set -a; . {stack.settings.env_file}; set +a[/]"
    )
    if not services_only:
        components = Components(stack)
        console.print(
            f"The shop: [bold]{components.edge_url()}/[/] (the storefront, and the admin "
            "console for admins; `make web` builds it)"
        )
        console.print(
            f"REST edge: [bold]{components.edge_url()}/api/v1[/] "
            f"(docs at {components.edge_url()}/docs); admin [bold]{DEV_ADMIN_EMAIL}[/], "
            f"password in {stack.settings.root / 'admin-password'}"
        )
        console.print(
            f"Prometheus: [bold]{components.prometheus_url()}[/] (the edge and the processors, "
            f"with the rules of {stack.settings.prometheus_rules_dir})"
        )


def down(home: Path | None, *, purge: bool, console: Console) -> list[str]:
    """Stop every process the stack started (processors first); returns their names."""
    stack = _stack(home, console)
    return Components(stack).down() + stack.down(purge=purge)


def status(home: Path | None, console: Console) -> bool:
    """Print the table of services and processors; returns whether all are healthy."""
    return _print_status(_stack(home, console))


def _print_status(stack: LocalStack) -> bool:
    table = Table(title=f"Conveyor local stack ({stack.settings.root})")
    for column in ("service", "state", "pid", "address", "health"):
        table.add_column(column, overflow="fold")
    report = stack.status()
    processors = Components(stack).status()
    # Processors appear once any was started, so a services-only stack reads as healthy.
    if any(p.state != "not started" for p in processors):
        report += processors
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
