"""Password hashes: within a worker's memory budget, and kept valid across changes of cost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from conveyor.devstack.errors import ServiceDidNotStart
from tests.support.edge import CHEAP_PASSWORD_HASHES, NO_FIRST_ADMIN, Api, EdgeProcess
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def client(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """An edge with cheap hashes and a budget that holds exactly one of them."""
    edge = EdgeProcess(
        stack.urls,
        tmp_path_factory.mktemp("one-hash-edge") / "edge.log",
        settings={
            **NO_FIRST_ADMIN,
            **CHEAP_PASSWORD_HASHES,
            "CONVEYOR_PASSWORD_HASHING_BUDGET_MIB": "8",
        },
    )
    with edge.running():
        async with Api(edge) as api:
            yield api


async def stored_hash(stack: RunningStack, email: str) -> str:
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        found: str = await connection.fetchval(
            "SELECT password_hash FROM users WHERE email = $1", email
        )
    finally:
        await connection.close()
    return found


async def test_logins_arriving_together_are_all_answered_while_hashes_take_turns(
    client: Api,
) -> None:
    accounts = [await client.new_account() for _ in range(4)]
    answers = await asyncio.gather(
        *(
            client.http.post(
                "/auth/login", json={"email": account.email, "password": account.password}
            )
            for account in accounts
            for _ in range(5)
        )
    )
    assert [answer.status_code for answer in answers] == [200] * 20
    assert all(answer.json()["access_token"] for answer in answers)


async def test_a_password_hashed_with_other_costs_still_opens_the_account_and_is_hashed_anew(
    client: Api, api: Api, stack: RunningStack
) -> None:
    """An edge whose hashing costs were raised (the session's edge has the defaults) lets in
    an account hashed with the old ones, and stores its password with the new costs."""
    account = await client.new_account()
    assert (await stored_hash(stack, account.email)).startswith("$argon2id$v=19$m=8192,t=1,p=1$")

    assert (await api.login(account.email, account.password))["access_token"]
    assert (await stored_hash(stack, account.email)).startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert (await api.login(account.email, account.password))["access_token"]


async def test_an_edge_whose_hashing_budget_holds_no_hash_refuses_to_start_saying_why(
    stack: RunningStack, tmp_path: Path
) -> None:
    edge = EdgeProcess(
        stack.urls,
        tmp_path / "edge.log",
        settings={
            "CONVEYOR_PASSWORD_HASH_MEMORY_KIB": str(64 * 1024),
            "CONVEYOR_PASSWORD_HASHING_BUDGET_MIB": "32",
        },
    )
    with pytest.raises(ServiceDidNotStart) as refused, edge.running():
        pass
    assert "CONVEYOR_PASSWORD_HASHING_BUDGET_MIB must hold at least one hash" in str(refused.value)
