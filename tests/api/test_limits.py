"""Limits and failures a client can provoke: sizes, malformed bodies, rates, Kafka away."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from conveyor.api.app import DATABASE_APPLICATION_NAME
from conveyor.devstack.settings import free_ports
from tests.support.edge import Account, Api, EdgeProcess
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.e2e


async def test_a_body_over_64_kib_is_413_whether_declared_or_streamed(
    api: Api, account: Account
) -> None:
    oversized = b'{"name": "' + b"x" * (65 * 1024) + b'"}'
    declared = await api.http.patch(
        "/users/me",
        content=oversized,
        headers={**account.auth, "Content-Type": "application/json"},
    )

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(oversized), 8192):
            yield oversized[start : start + 8192]

    streamed = await api.http.patch(
        "/users/me",
        content=chunks(),
        headers={**account.auth, "Content-Type": "application/json"},
    )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
    assert (await api.http.get("/users/me", headers=account.auth)).json()["name"] != "x"


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'"a string"', b"\xff\xfe"],
    ids=["broken", "array", "string", "bytes"],
)
async def test_malformed_bodies_are_422_problems(api: Api, content: bytes) -> None:
    response = await api.http.post(
        "/auth/login", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Unprocessable Content"


async def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    missing = await api.http.get("/nowhere")
    wrong_method = await api.http.put("/products")
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["allow"]
    for response in (missing, wrong_method):
        assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture(scope="module")
def strict_edge(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    """An edge of its own with small budgets, so its limits are reached quickly."""
    edge = EdgeProcess(
        stack.urls,
        tmp_path_factory.mktemp("strict-edge") / "edge.log",
        settings={
            "CONVEYOR_RATE_LIMIT_USER_PER_MINUTE": "5",
            "CONVEYOR_RATE_LIMIT_AUTH_PER_MINUTE": "1000",
            "CONVEYOR_RATE_LIMIT_ADDRESS_PER_MINUTE": "1000",
            "CONVEYOR_CORS_ORIGINS": '["https://shop.example"]',
        },
    )
    edge.start()
    try:
        yield edge
    finally:
        edge.stop()


async def test_a_user_over_the_rate_limit_gets_429_with_retry_after(
    strict_edge: EdgeProcess,
) -> None:
    client = Api(strict_edge)
    try:
        first, second = await client.new_account(), await client.new_account()
        answers = [
            (await client.http.get("/users/me", headers=first.auth)).status_code for _ in range(7)
        ]
        assert answers[:5] == [200] * 5
        assert answers[5:] == [429, 429]
        refused = await client.http.get("/users/me", headers=first.auth)
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        assert refused.headers["content-type"] == "application/problem+json"
        # The budget is per user: another user is unaffected.
        assert (await client.http.get("/users/me", headers=second.auth)).status_code == 200
    finally:
        await client.close()


async def test_cors_lets_the_configured_origin_in_and_no_other(strict_edge: EdgeProcess) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Idempotency-Key, Content-Type",
    }
    async with httpx.AsyncClient(base_url=strict_edge.base_url + "/api/v1") as http:
        allowed = await http.options(
            "/orders", headers={**preflight, "Origin": "https://shop.example"}
        )
        foreign = await http.options(
            "/orders", headers={**preflight, "Origin": "https://evil.example"}
        )
        listing = await http.get("/products", headers={"Origin": "https://shop.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "idempotency-key" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers
    assert listing.headers["access-control-allow-origin"] == "https://shop.example"


async def test_without_configured_origins_no_cors_headers_are_sent(api: Api) -> None:
    response = await api.http.get("/products", headers={"Origin": "https://shop.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_an_address_over_the_login_limit_gets_429(
    stack: RunningStack, tmp_path: Path
) -> None:
    edge = EdgeProcess(
        stack.urls,
        tmp_path / "edge.log",
        settings={"CONVEYOR_RATE_LIMIT_AUTH_PER_MINUTE": "3"},
    )
    edge.start()
    try:
        async with httpx.AsyncClient(base_url=edge.base_url + "/api/v1") as http:
            answers = [
                (
                    await http.post(
                        "/auth/login", json={"email": "who@example.org", "password": "guess"}
                    )
                ).status_code
                for _ in range(5)
            ]
    finally:
        edge.stop()
    # Other tests may share this address and minute; the limit must bite within five tries.
    assert 429 in answers
    assert answers[0] in (401, 429)


# Past the edge's send timeout, as the setting requires.
WITHDRAWN_AFTER_SECONDS = 4.0


@contextmanager
def _edge_with_kafka_at(
    stack: RunningStack, log_path: Path, bootstrap: str, settings: dict[str, str]
) -> Iterator[EdgeProcess]:
    edge = EdgeProcess(
        stack.urls.model_copy(update={"kafka_bootstrap_servers": bootstrap}),
        log_path,
        settings={"CONVEYOR_KAFKA_SEND_TIMEOUT_SECONDS": "3", **settings},
    )
    edge.start()
    try:
        yield edge
    finally:
        edge.stop()


@pytest.fixture(scope="module")
def edge_without_kafka(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    [nothing_listens] = free_ports(1)
    with _edge_with_kafka_at(
        stack,
        tmp_path_factory.mktemp("no-kafka-edge") / "edge.log",
        f"127.0.0.1:{nothing_listens}",
        {"CONVEYOR_WITHDRAW_UNANNOUNCED_AFTER_SECONDS": str(WITHDRAWN_AFTER_SECONDS)},
    ) as edge:
        yield edge


async def test_kafka_unreachable_means_503_with_retry_after_and_nothing_recorded(
    edge_without_kafka: EdgeProcess, stack: RunningStack, api: Api, admin: Account
) -> None:
    product = await api.new_product(admin)
    client = Api(edge_without_kafka)
    try:
        account = await client.new_account()
        answer = await client.place(account, [(product["id"], 1)], key=uuid.uuid4().hex)
        ready = await client.http.get(edge_without_kafka.base_url + "/readyz")
    finally:
        await client.close()
    assert answer.status_code == 503
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.headers["content-type"] == "application/problem+json"
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        rows = await connection.fetchval(
            "SELECT count(*) FROM orders WHERE user_id = $1", account.id
        )
    finally:
        await connection.close()
    assert rows == 0
    assert ready.status_code == 503
    assert ready.json()["checks"]["kafka"].startswith("unreachable")
    assert ready.json()["checks"]["postgres"] == "ok"


@pytest.fixture(scope="module")
def edge_with_a_silent_kafka(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    """An edge whose broker accepts connections and never answers, as a hung or partitioned
    one does: its sends wait their whole timeout."""
    # Never accepted: the kernel completes the handshakes, nothing ever replies.
    with (
        socket.create_server(("127.0.0.1", 0), backlog=64) as silent,
        _edge_with_kafka_at(
            stack,
            tmp_path_factory.mktemp("silent-kafka-edge") / "edge.log",
            f"127.0.0.1:{silent.getsockname()[1]}",
            {},
        ) as edge,
    ):
        yield edge


async def test_orders_waiting_on_kafka_hold_no_database_connection_in_a_transaction(
    edge_with_a_silent_kafka: EdgeProcess, stack: RunningStack, api: Api, admin: Account
) -> None:
    """A broker that does not answer must not take the connections everything else reads
    with: while orders wait on it, none of the edge's connections is in a transaction."""
    product = await api.new_product(admin)
    client = Api(edge_with_a_silent_kafka)
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        account = await client.new_account()
        placing = asyncio.gather(
            *(client.place(account, [(product["id"], 1)], key=uuid.uuid4().hex) for _ in range(5))
        )

        async def recorded() -> int:
            count: int = await connection.fetchval(
                "SELECT count(*) FROM orders WHERE user_id = $1 AND NOT announced", account.id
            )
            return count

        # Recorded and not yet announced: all five are waiting on Kafka now.
        await eventually_async(recorded, "five orders waiting on Kafka", until=lambda n: n == 5)
        in_transaction = await connection.fetch(
            "SELECT state, query FROM pg_stat_activity "
            "WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
            DATABASE_APPLICATION_NAME,
        )
        answers = await placing
        left = await connection.fetchval(
            "SELECT count(*) FROM orders WHERE user_id = $1", account.id
        )
    finally:
        await connection.close()
        await client.close()
    assert in_transaction == []
    assert [answer.status_code for answer in answers] == [503] * 5
    assert left == 0


async def test_an_order_an_edge_recorded_but_never_announced_is_withdrawn(
    edge_without_kafka: EdgeProcess, stack: RunningStack
) -> None:
    """What an edge that died mid-send leaves behind is deleted once older than any send;
    announced orders are never touched."""
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        orphan, announced = uuid.uuid4(), uuid.uuid4()
        for order_id, is_announced in ((orphan, False), (announced, True)):
            await connection.execute(
                "INSERT INTO orders (id, user_id, idempotency_key, status, total, currency, "
                "announced, created_at) "
                "VALUES ($1, $2, $3, 'pending', 1, 'EUR', $4, now() - interval '1 hour')",
                order_id,
                uuid.uuid4(),
                order_id.hex,
                is_announced,
            )

        async def remaining() -> list[uuid.UUID]:
            rows = await connection.fetch(
                "SELECT id FROM orders WHERE id = ANY($1::uuid[])", [orphan, announced]
            )
            return [row["id"] for row in rows]

        left = await eventually_async(
            remaining,
            "the unannounced order withdrawn",
            until=lambda ids: orphan not in ids,
            within=WITHDRAWN_AFTER_SECONDS * 3,
        )
    finally:
        await connection.close()
    assert left == [announced]
