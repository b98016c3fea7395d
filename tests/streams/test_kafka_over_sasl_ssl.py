"""The saga and the edge against a Kafka that takes only SASL_SSL with SCRAM-SHA-512 logins.

One broker of the module's own, started by the local stack with ``kafka_security=scram-tls``
(its certificate from the stack's authority, its login made at format time); PostgreSQL,
Redis, the SMTP sink and the payment sandbox are the session's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from rich.console import Console

from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.smtp_sink import read_mailbox
from conveyor.devstack.stack import LocalStack
from conveyor.infra.errors import KafkaUnavailable
from conveyor.infra.kafka import describe_cluster
from conveyor.infra.settings import ServiceUrls
from tests.support.edge import Account, Api, EdgeProcess
from tests.support.stack import RunningStack
from tests.support.waiting import eventually
from tests.support.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.long]


async def _on_server(stack: RunningStack, statement: str) -> None:
    connection = await asyncpg.connect(stack.postgres_server_dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def secure(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceUrls]:
    """The session's services, with a scram-tls Kafka of this module's own and a database of
    its own (so this module's edge makes its first admin there)."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_on_server(stack, f'CREATE DATABASE "{database}"'))
    base, _, _ = stack.urls.database_url.rpartition("/")
    others = stack.urls.environment()
    local = LocalStack(
        DevStackSettings.isolated(tmp_path_factory.mktemp("secure"), kafka_security="scram-tls"),
        Console(stderr=True),
        {
            "DATABASE_URL": f"{base}/{database}",
            "REDIS_URL": others["REDIS_URL"],
            "SMTP_URL": others["SMTP_URL"],
            "PAYMENT_GATEWAY_URL": others["PAYMENT_GATEWAY_URL"],
            "PAYMENT_GATEWAY_API_KEY": others["PAYMENT_GATEWAY_API_KEY"],
            "PAYMENT_GATEWAY_CA_CERTIFICATES": others["PAYMENT_GATEWAY_CA_CERTIFICATES"],
        },
    )
    try:
        yield local.up()
    finally:
        local.down(purge=True)
        asyncio.run(_on_server(stack, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture(scope="module")
async def secure_api(
    secure: ServiceUrls, stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    folder = tmp_path_factory.mktemp("secure-components")
    workers = Workers(secure, folder)
    try:
        workers.start()
        with EdgeProcess(secure, folder / "edge.log").running() as edge:
            async with Api(edge, stack.maildir) as api:
                yield api
    finally:
        workers.stop_all()


async def test_an_order_through_an_edge_on_sasl_ssl_kafka_is_confirmed_and_mailed(
    secure_api: Api, stack: RunningStack
) -> None:
    admin = await secure_api.admin()
    product = await secure_api.new_product(admin, price="4.00", stock=5)
    account: Account = await secure_api.new_account(verified=True)

    placed = await secure_api.place(account, [(str(product["id"]), 2)])
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    confirmed = await secure_api.wait_for(account, order_id, "confirmed", within=60)
    assert confirmed["total"] == "8.00"

    subjects = eventually(
        lambda: [mail.subject for mail in read_mailbox(stack.maildir, account.email)],
        "the confirmation e-mail arrives",
        until=lambda found: any(f"{order_id[:8]} is confirmed" in subject for subject in found),
    )
    assert any("confirmed" in subject for subject in subjects)


async def test_a_client_with_a_wrong_password_is_refused(secure: ServiceUrls) -> None:
    wrong = dataclasses.replace(secure.kafka_security(), password="not-the-password")
    with pytest.raises(KafkaUnavailable):
        await describe_cluster(secure.kafka_bootstrap_servers, security=wrong)
    # The right password, all else alike, is let in.
    assert await describe_cluster(secure.kafka_bootstrap_servers, security=secure.kafka_security())


async def test_a_client_that_does_not_trust_the_stacks_authority_is_refused(
    secure: ServiceUrls,
) -> None:
    # Without KAFKA_SSL_CA_CERTIFICATES a client trusts the system's authorities only.
    untrusting = dataclasses.replace(secure.kafka_security(), ca_certificates="")
    with pytest.raises(KafkaUnavailable):
        await describe_cluster(secure.kafka_bootstrap_servers, security=untrusting)


def test_a_worker_asked_for_sasl_ssl_without_a_login_refuses_to_start_and_names_the_settings(
    secure: ServiceUrls,
) -> None:
    environment = {
        **os.environ,
        **secure.environment(),
        "KAFKA_SASL_USERNAME": "",
        "KAFKA_SASL_PASSWORD": "",
    }
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", "worker", "orders"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    output = " ".join((result.stdout + result.stderr).split())
    assert "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in output
