"""Limits and failures a client can provoke: sizes, malformed bodies, rates, Kafka away."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from conveyor.api.app import DATABASE_APPLICATION_NAME
from conveyor.devstack.settings import free_ports
from tests.support.edge import Account, Api, EdgeProcess
from tests.support.long_polls import answered_after_a_change, pending_order
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
    with edge.running():
        yield edge


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


async def test_requests_arriving_together_are_each_counted_against_the_budget(
    strict_edge: EdgeProcess,
) -> None:
    """Requests that arrive at once share a round trip to Redis, and still each one counts:
    exactly the budget gets through."""
    client = Api(strict_edge)
    try:
        account = await client.new_account()
        answers = await asyncio.gather(
            *(client.http.get("/users/me", headers=account.auth) for _ in range(12))
        )
    finally:
        await client.close()
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [429] * 7


async def test_catalog_answers_from_memory_still_spend_the_rate_limit(
    strict_edge: EdgeProcess,
) -> None:
    client = Api(strict_edge)
    try:
        account = await client.new_account()
        answers = [
            await client.http.get("/products?limit=3", headers=account.auth) for _ in range(7)
        ]
    finally:
        await client.close()
    assert [answer.status_code for answer in answers] == [200] * 5 + [429] * 2
    assert answers[4].content == answers[0].content
    assert answers[6].headers["content-type"] == "application/problem+json"


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
    with edge.running():
        async with httpx.AsyncClient(base_url=edge.base_url + "/api/v1") as http:
            answers = [
                (
                    await http.post(
                        "/auth/login", json={"email": "who@example.org", "password": "guess"}
                    )
                ).status_code
                for _ in range(5)
            ]
    # Other tests may share this address and minute; the limit must bite within five tries.
    assert 429 in answers
    assert answers[0] in (401, 429)


# Past the edge's send timeout, as the setting requires.
WITHDRAWN_AFTER_SECONDS = 4.0


def _edge_with_kafka_at(
    stack: RunningStack, log_path: Path, bootstrap: str, settings: dict[str, str]
) -> EdgeProcess:
    return EdgeProcess(
        stack.urls.model_copy(update={"kafka_bootstrap_servers": bootstrap}),
        log_path,
        settings={"CONVEYOR_KAFKA_SEND_TIMEOUT_SECONDS": "3", **settings},
    )


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
    ).running() as edge:
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
        ).running() as edge,
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


@pytest.fixture
def edge_of_two(stack: RunningStack, tmp_path: Path) -> Iterator[EdgeProcess]:
    """An edge whose worker answers two requests at once and sheds any more."""
    edge = EdgeProcess(
        stack.urls,
        tmp_path / "edge.log",
        settings={"CONVEYOR_MAX_REQUESTS_IN_FLIGHT": "2", "CONVEYOR_RETRY_AFTER_SECONDS": "3"},
    )
    with edge.running():
        yield edge


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(metrics_text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


async def edge_samples(edge: EdgeProcess) -> Samples:
    async with httpx.AsyncClient(base_url=edge.base_url) as http:
        return samples_of((await http.get("/metrics")).text)


async def requests_being_answered(edge: EdgeProcess) -> float:
    """The in-flight gauge, less the scrape that reads it (which counts itself)."""
    return (await edge_samples(edge))[("conveyor_http_requests_in_flight", ())] - 1


async def login_held_until(release: asyncio.Event, http: httpx.AsyncClient, who: Account) -> int:
    """Log in with a body whose last bytes are sent only once ``release`` is set; the edge
    has the request in flight meanwhile, reading its body."""
    body = json.dumps({"email": who.email, "password": who.password}).encode()

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:1]
        await release.wait()
        yield body[1:]

    answer = await http.post(
        "/auth/login", content=slowly(), headers={"Content-Type": "application/json"}
    )
    return answer.status_code


async def test_above_the_in_flight_cap_a_request_gets_503_with_retry_after_and_probes_answer(
    edge_of_two: EdgeProcess,
) -> None:
    client = Api(edge_of_two)
    release = asyncio.Event()
    try:
        account = await client.new_account()
        held = [
            asyncio.create_task(login_held_until(release, client.http, account)) for _ in range(2)
        ]
        await eventually_async(
            lambda: requests_being_answered(edge_of_two),
            "both held logins are in flight",
            until=lambda count: count == 2,
        )
        shed = await client.http.get("/products")
        async with httpx.AsyncClient(base_url=edge_of_two.base_url) as operations:
            health = await operations.get("/healthz")
            ready = await operations.get("/readyz")
            scrape = await operations.get("/metrics")
        release.set()
        logins = await asyncio.gather(*held)
        served = await client.http.get("/products")
    finally:
        release.set()
        await client.close()

    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "3"
    assert shed.headers["content-type"] == "application/problem+json"
    assert "at capacity" in shed.json()["detail"]
    assert "again in 3 seconds" in shed.json()["detail"]
    assert [health.status_code, ready.status_code, scrape.status_code] == [200, 200, 200]
    counted = samples_of(scrape.text)
    assert counted[("conveyor_http_requests_shed_total", ())] == 1
    # Shed before routing, so under the label of requests that reached no route.
    shed_labels = (("method", "GET"), ("route", "unmatched"), ("status", "503"))
    assert counted[("conveyor_http_requests_total", shed_labels)] == 1
    # Once the held requests are answered, the edge serves again.
    assert logins == [200, 200]
    assert served.status_code == 200


async def test_long_polls_waiting_on_an_order_take_no_place_under_the_cap(
    edge_of_two: EdgeProcess, stack: RunningStack, cache: aioredis.Redis
) -> None:
    client = Api(edge_of_two)
    try:
        account = await client.new_account()
        order_id = await pending_order(stack, account)
        polls = [
            asyncio.create_task(
                client.http.get(f"/orders/{order_id}", params={"wait": 30}, headers=account.auth)
            )
            for _ in range(2)
        ]
        await eventually_async(
            lambda: requests_being_answered(edge_of_two),
            "both long polls are in flight",
            until=lambda count: count == 2,
        )
        # Were the waiting polls counted, every request here would be shed until they end.
        served = await eventually_async(
            lambda: client.http.get("/products"),
            "the edge serves while two long polls wait",
            until=lambda answer: answer.status_code == 200,
            within=20,
        )
        still_waiting = not any(poll.done() for poll in polls)
        answers = await answered_after_a_change(cache, order_id, polls)
    finally:
        await client.close()
    assert served.status_code == 200
    assert still_waiting
    assert [answer.status_code for answer in answers] == [200, 200]
    assert {answer.json()["status"] for answer in answers} == {"pending"}
