"""The edge's POST /orders: accepted orders per second and latency, against two baselines.

Measured in the same run, with the same concurrency and the same PlaceOrder bytes:
- a raw aiokafka producer with the same durability (acks=all, idempotent), awaiting each
  send: what accepting an order costs at the very least;
- the same endpoint with Kafka taken out (its sender accepts at once): what the edge costs
  without the broker — authentication, pricing from PostgreSQL, the idempotency row.

The edge runs as its own uvicorn process (one worker); the load comes from this process.
No processor runs: the orders accepted here stay in orders.commands, so this benchmark runs
after the saga's, whose figures they would otherwise skew.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from benchmarks.orderload import MAX_IN_FLIGHT, PRICE, STOCK
from benchmarks.producer import new_topic, sample_record
from conveyor.api.signing_keys import new_signing_key_pem
from conveyor.devstack.launched import Launched
from conveyor.devstack.settings import free_ports
from conveyor.infra.settings import ServiceUrls
from conveyor.infra.topic_admin import declared_topics, ensure_topics

REQUESTS = 1500
# Then one at a time: the latency a client sees when the edge is not queueing.
ALONE = 300
WARM_UP = 150
CONCURRENCY = 32
ADMIN_EMAIL = "bench-admin@conveyor.example"


@dataclass
class Figures:
    per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int


def _figures(latencies: list[float], elapsed: float) -> Figures:
    cuts = statistics.quantiles(latencies, n=100)
    return Figures(
        len(latencies) / elapsed,
        cuts[49] * 1000,
        cuts[94] * 1000,
        cuts[98] * 1000,
        len(latencies),
    )


async def concurrently(
    attempt: Any, count: int | None, lanes: int = CONCURRENCY, seconds: float = math.inf
) -> Figures:
    """Run ``attempt()`` ``count`` times (without end when None), ``lanes`` at a time, for
    ``seconds`` at most; each must succeed. A closed loop: a lane sends when answered."""
    latencies: list[float] = []
    remaining = itertools.count() if count is None else iter(range(count))
    began = time.perf_counter()
    ends = began + seconds

    async def lane() -> None:
        for _ in remaining:
            sent = time.perf_counter()
            if sent >= ends:
                return
            await attempt()
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(lane() for _ in range(lanes)))
    return _figures(latencies, time.perf_counter() - began)


async def _raw_producer(urls: ServiceUrls) -> Figures:
    key, value = sample_record()
    # A topic of its own like orders.commands: the same record sent over and over must not
    # reach the processors as thousands of redeliveries.
    topic = await new_topic(urls.kafka_bootstrap_servers, "bench-edge-baseline")
    producer = AIOKafkaProducer(
        bootstrap_servers=urls.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:

        async def send() -> None:
            await producer.send_and_wait(topic, value, key=key)

        await concurrently(send, WARM_UP)
        return await concurrently(send, REQUESTS)
    finally:
        await producer.stop()


class EdgeServer:
    """The edge as its own uvicorn process (one worker); ``settings`` add to or override its
    environment (``CONVEYOR_*``)."""

    def __init__(
        self,
        urls: ServiceUrls,
        admin_password: str,
        without_kafka: bool,
        log_path: Path,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        [self.port] = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            **urls.environment(),
            "CONVEYOR_JWT_SIGNING_KEYS": new_signing_key_pem(),
            "CONVEYOR_ADMIN_EMAIL": ADMIN_EMAIL,
            "CONVEYOR_ADMIN_PASSWORD": admin_password,
            "CONVEYOR_RATE_LIMIT_USER_PER_MINUTE": "100000000",
            "CONVEYOR_RATE_LIMIT_ADDRESS_PER_MINUTE": "100000000",
            # Every order is the admin's, and the climbs keep thousands pending at once.
            "CONVEYOR_MAX_PENDING_ORDERS_PER_USER": "100000000",
            **(settings or {}),
        }
        command = [sys.executable, "-m", "benchmarks.edge_server", str(self.port)]
        if without_kafka:
            command.append("--without-kafka")
        self.launched = Launched("the benchmark's edge", command, log_path, env)

    def start(self) -> None:
        self.launched.start(f"{self.url}/healthz")

    def stop(self) -> None:
        self.launched.stop(grace_seconds=30)


async def answer_json(response: aiohttp.ClientResponse, expected: int) -> Any:
    """The answer's JSON; any other status than ``expected`` fails, saying what came."""
    if response.status != expected:
        raise RuntimeError(
            f"{response.method} {response.url}: {response.status} {await response.text()}"
        )
    return await response.json()


def new_order(
    products: Sequence[UUID], authorization: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers of a POST /orders of one of each of ``products``, paid by a card
    that authorizes, under a fresh Idempotency-Key."""
    body = {
        "items": [{"product_id": str(product), "quantity": 1} for product in products],
        "currency": "EUR",
        "payment_token": "tok_visa",
    }
    return body, {**authorization, "Idempotency-Key": uuid.uuid4().hex}


class EdgeClient:
    """An edge logged in as its admin: the benchmark's own (``benchmarks.edge.EdgeServer``)
    unless another admin is given."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, password: str, email: str = ADMIN_EMAIL
    ) -> None:
        self.session = session
        self.api = f"{url}/api/v1"
        self.email = email
        self.password = password
        self.authorization: dict[str, str] = {}

    async def log_in(self) -> None:
        async with self.session.post(
            f"{self.api}/auth/login", json={"email": self.email, "password": self.password}
        ) as response:
            token = (await answer_json(response, 200))["access_token"]
        self.authorization = {"Authorization": f"Bearer {token}"}

    async def keep_logged_in(self) -> None:
        while True:
            await asyncio.sleep(LOGIN_EVERY_SECONDS)
            await self.log_in()

    async def my_id(self) -> UUID:
        async with self.session.get(f"{self.api}/users/me", headers=self.authorization) as reply:
            return UUID((await answer_json(reply, 200))["id"])

    async def create_product(
        self,
        name: str = "Load mug",
        description: str = "",
        category: str = "",
        price: Decimal = PRICE,
    ) -> UUID:
        """A product in EUR with ``STOCK`` units, which no run sells out."""
        body = {
            "sku": f"LOAD-{uuid.uuid4().hex[:10]}",
            "name": name,
            "description": description,
            "category": category,
            "price": str(price),
            "currency": "EUR",
            "initial_stock": STOCK,
        }
        async with self.session.post(
            f"{self.api}/products", json=body, headers=self.authorization
        ) as response:
            return UUID((await answer_json(response, 201))["id"])

    async def place_order(self, products: Sequence[UUID]) -> UUID:
        """POST /orders of one of each of ``products``; the new order's id."""
        body, headers = new_order(products, self.authorization)
        async with self.session.post(f"{self.api}/orders", json=body, headers=headers) as answer:
            return UUID((await answer_json(answer, 202))["id"])


# The edge's access tokens live 15 minutes; a run through it may outlast one.
LOGIN_EVERY_SECONDS = 300.0


@asynccontextmanager
async def logged_in_edge(
    urls: ServiceUrls, log_path: Path
) -> AsyncIterator[tuple[EdgeServer, EdgeClient]]:
    """An edge process of the benchmark's own on ``urls``, and a client logged in as its
    admin (and kept so), for open-loop runs."""
    password = secrets.token_urlsafe(16)
    server = EdgeServer(urls, password, without_kafka=False, log_path=log_path)
    await asyncio.to_thread(server.start)
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            edge = EdgeClient(session, server.url, password)
            await edge.log_in()
            logins = asyncio.create_task(edge.keep_logged_in())
            try:
                yield server, edge
            finally:
                logins.cancel()
    finally:
        await asyncio.to_thread(server.stop)


async def _edge(
    urls: ServiceUrls, admin_password: str, without_kafka: bool
) -> tuple[Figures, Figures]:
    """The endpoint under load, and then one request at a time."""
    # Its log is shown if it fails to start; otherwise it is left in the temporary directory.
    log_path = Path(tempfile.mkdtemp(prefix="conveyor-bench-edge-")) / "edge.log"
    server = EdgeServer(urls, admin_password, without_kafka, log_path)
    server.start()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            api = f"{server.url}/api/v1"
            async with session.post(
                f"{api}/auth/login", json={"email": ADMIN_EMAIL, "password": admin_password}
            ) as response:
                admin = {
                    "Authorization": f"Bearer {(await answer_json(response, 200))['access_token']}"
                }
            async with session.post(
                f"{api}/products",
                json={
                    "sku": f"BENCH-{uuid.uuid4().hex[:10]}",
                    "name": "Benchmark mug",
                    "price": "9.99",
                    "currency": "EUR",
                    "initial_stock": 1_000_000,
                },
                headers=admin,
            ) as response:
                product = (await answer_json(response, 201))["id"]
            body = {
                "items": [{"product_id": product, "quantity": 1}],
                "currency": "EUR",
                "payment_token": "tok_visa",
            }

            async def place() -> None:
                headers = {**admin, "Idempotency-Key": uuid.uuid4().hex}
                async with session.post(f"{api}/orders", json=body, headers=headers) as answer:
                    await answer_json(answer, 202)

            await concurrently(place, WARM_UP)
            loaded = await concurrently(place, REQUESTS)
            alone = await concurrently(place, ALONE, lanes=1)
            return loaded, alone
    finally:
        server.stop()


async def _measure(urls: ServiceUrls) -> dict[str, Figures]:
    await ensure_topics(urls.kafka_bootstrap_servers, declared_topics())
    admin_password = secrets.token_urlsafe(16)
    raw = await _raw_producer(urls)
    edge, edge_alone = await _edge(urls, admin_password, without_kafka=False)
    bare, bare_alone = await _edge(urls, admin_password, without_kafka=True)
    return {
        "raw producer": raw,
        "edge": edge,
        "edge, no Kafka": bare,
        "edge, 1 at a time": edge_alone,
        "edge, no Kafka, 1 at a time": bare_alone,
    }


def run(console: Console, urls: ServiceUrls) -> None:
    console.print(
        f"edge: {REQUESTS} orders, {CONCURRENCY} at a time, through POST /orders and baselines ..."
    )
    results = asyncio.run(_measure(urls))
    edge = results["edge"]
    table = Table(
        title=f"Accepting orders: {REQUESTS} requests {CONCURRENCY} at a time, "
        f"then {ALONE} one at a time"
    )
    table.add_column("what", no_wrap=True)
    for column in ("per s", "edge ÷ this", "p50", "p95", "p99"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, figures in results.items():
        table.add_row(
            name,
            f"{figures.per_second:.0f}",
            f"{edge.per_second / figures.per_second:.2f}",
            f"{figures.p50_ms:.1f}ms",
            f"{figures.p95_ms:.1f}ms",
            f"{figures.p99_ms:.1f}ms",
        )
    console.print(table)
    console.print(
        "raw producer: aiokafka with acks=all and idempotence, the same record; edge: POST "
        "/orders on one uvicorn worker; no Kafka: its sender accepts at once"
    )
