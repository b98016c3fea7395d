"""Redis away: logins go on at the /auth budget, counted by each worker alone, and every other
route is let through unchecked; the metrics say which happened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.devstack import redis_server
from conveyor.devstack.launched import Launched
from conveyor.devstack.settings import free_ports
from tests.support.edge import Api, EdgeProcess
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e

AUTH_PER_MINUTE = 3


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Launched]]:
    """A Redis of this test's own, which it may stop: never the session's."""
    [port] = free_ports(1)
    server = Launched(
        "the test's redis",
        [
            str(redis_server.server_binary()),
            *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)),
            *("--save", "", "--appendonly", "no"),
        ],
        tmp_path / "redis.log",
    )
    server.launch()
    try:
        server.wait_logged("Ready to accept connections")
        yield f"redis://127.0.0.1:{port}/0", server
    finally:
        server.stop()


async def rate_limit_decisions(edge: EdgeProcess) -> dict[tuple[str, str], float]:
    """conveyor_rate_limit_decisions_total by (scope, decision)."""
    async with httpx.AsyncClient(base_url=edge.base_url) as http:
        text = (await http.get("/metrics")).text
    return {
        (sample.labels["scope"], sample.labels["decision"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "conveyor_rate_limit_decisions_total"
    }


async def test_with_redis_stopped_logins_go_on_within_the_auth_budget_and_reads_go_through(
    stack: RunningStack, own_redis: tuple[str, Launched], tmp_path: Path
) -> None:
    redis_url, redis = own_redis
    edge = EdgeProcess(
        stack.urls.model_copy(update={"redis_url": redis_url}),
        tmp_path / "edge.log",
        settings={
            "CONVEYOR_RATE_LIMIT_AUTH_PER_MINUTE": str(AUTH_PER_MINUTE),
            "CONVEYOR_RATE_LIMIT_ADDRESS_PER_MINUTE": str(AUTH_PER_MINUTE),
        },
    )
    with edge.running():
        client = Api(edge)
        try:
            account = await client.new_account()
            redis.stop()
            signed_in = await client.http.post(
                "/auth/login", json={"email": account.email, "password": account.password}
            )
            guesses = [
                (
                    await client.http.post(
                        "/auth/login", json={"email": account.email, "password": f"guess-{n}"}
                    )
                ).status_code
                for n in range(8)
            ]
            reads = [(await client.http.get("/products")).status_code for _ in range(8)]
        finally:
            await client.close()
        decisions = await rate_limit_decisions(edge)
    assert signed_in.status_code == 200
    # Nine attempts span at most two of the budget's one-minute windows.
    let_through = 1 + guesses.count(401)
    assert AUTH_PER_MINUTE <= let_through <= 2 * AUTH_PER_MINUTE
    assert set(guesses) <= {401, 429}
    # Far over the address budget too, and every one served: that budget fails open.
    assert reads == [200] * 8
    assert decisions[("auth", "local")] == let_through
    assert decisions[("auth", "refused")] == 9 - let_through
    assert decisions[("address", "unchecked")] == 9 + 8
