"""Whether a service answers as its clients need: each check returns a bool and never raises."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import asyncpg
import redis

from conveyor.devstack.payment_sandbox import payment_gateway_is_healthy
from conveyor.devstack.smtp_sink import smtp_is_healthy
from conveyor.infra.errors import InfraError
from conveyor.infra.kafka import describe_cluster
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity


def kafka_is_healthy(bootstrap_servers: str, security: KafkaSecurity = PLAINTEXT) -> bool:
    host, _, port = bootstrap_servers.split(",")[0].strip().rpartition(":")
    try:
        # A closed port is answered at once; only an open one is worth a Kafka handshake,
        # whose client logs every refused connection as an error.
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=2).close()
        asyncio.run(describe_cluster(bootstrap_servers, timeout_seconds=3, security=security))
    except (InfraError, OSError, ValueError):
        return False
    return True


def postgres_is_healthy(dsn: str) -> bool:
    async def select_one() -> bool:
        connection = await asyncpg.connect(dsn, timeout=3)
        try:
            return bool(await connection.fetchval("SELECT 1") == 1)
        finally:
            await connection.close()

    try:
        return asyncio.run(select_one())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False


def redis_is_healthy(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def smtp_url_is_healthy(url: str) -> bool:
    parts = urlsplit(url)
    return smtp_is_healthy(parts.hostname or "127.0.0.1", parts.port or 25)


def check(
    service: str,
    url: str,
    kafka_security: KafkaSecurity = PLAINTEXT,
    payment_gateway_ca_certificates: str = "",
) -> bool:
    """Whether ``service`` answers at ``url``, reached as its clients reach it: Kafka with
    ``kafka_security``, the payment gateway's certificate checked against
    ``payment_gateway_ca_certificates`` (PEM) when given."""
    checks: dict[str, Callable[[str], bool]] = {
        "kafka": lambda url: kafka_is_healthy(url, kafka_security),
        "postgres": postgres_is_healthy,
        "redis": redis_is_healthy,
        "smtp": smtp_url_is_healthy,
        "payments": lambda url: payment_gateway_is_healthy(url, payment_gateway_ca_certificates),
    }
    return checks[service](url)
