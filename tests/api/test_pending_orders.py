"""The cap on a user's pending orders (CONVEYOR_MAX_PENDING_ORDERS_PER_USER) through the edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.edge import Account, Api, EdgeProcess
from tests.support.shop import read_records
from tests.support.stack import RunningStack
from tests.support.workers import Workers

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def capped_edge(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    """An edge of its own that lets a user have two orders pending."""
    edge = EdgeProcess(
        stack.urls,
        tmp_path_factory.mktemp("capped-edge") / "edge.log",
        settings={"CONVEYOR_MAX_PENDING_ORDERS_PER_USER": "2"},
    )
    with edge.running():
        yield edge


@pytest.fixture
async def capped(capped_edge: EdgeProcess) -> AsyncIterator[Api]:
    client = Api(capped_edge)
    try:
        yield client
    finally:
        await client.close()


async def test_a_user_at_the_pending_cap_is_refused_until_an_order_ends(
    api: Api, admin: Account, capped: Api, workers: Workers, stack: RunningStack
) -> None:
    product = str((await api.new_product(admin, stock=100))["id"])
    ada, grace = await capped.new_account(), await capped.new_account()
    # Without the payments processor the orders wait for their payment: they stay pending.
    workers.stop("payments")
    try:
        first = await capped.place(ada, [(product, 1)], key="first")
        second = await capped.place(ada, [(product, 1)], key="second")
        assert [first.status_code, second.status_code] == [202, 202], first.text

        refused = await capped.place(ada, [(product, 1)], key="third")

        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        problem = refused.json()
        assert problem["pending_orders"] == 2
        assert problem["max_pending_orders"] == 2
        assert "wait until one of them is confirmed, rejected or cancelled" in problem["detail"]
        # The same request again is still the order it was, never refused.
        assert (await capped.place(ada, [(product, 1)], key="second")).status_code == 200
        # The cap is per user.
        assert (await capped.place(grace, [(product, 1)], key="first")).status_code == 202
    finally:
        workers.start("payments")

    # Nothing of the refused order went to Kafka: Ada's commands are her two orders.
    sent = await read_records(stack.urls.kafka_bootstrap_servers, "orders.commands")
    assert len([record for record in sent if str(ada.id).encode() in (record.value or b"")]) == 2
    listed = await capped.http.get("/orders", headers=ada.auth)
    assert len(listed.json()["items"]) == 2

    for placed in (first, second):
        await capped.wait_for(ada, placed.json()["id"], "confirmed", within=90)
    again = await capped.place(ada, [(product, 1)], key="third")
    assert again.status_code == 202, again.text


async def test_orders_placed_at_once_never_take_more_than_the_cap(
    api: Api, admin: Account, capped: Api, workers: Workers
) -> None:
    """The lock per user makes requests at once count each other's orders: exactly the cap
    gets through, whatever the interleaving."""
    product = str((await api.new_product(admin, stock=100))["id"])
    account = await capped.new_account()
    workers.stop("payments")  # the orders stay pending
    try:
        answers = await asyncio.gather(
            *(capped.place(account, [(product, 1)], key=f"at-once-{n}") for n in range(8))
        )
    finally:
        workers.start("payments")
    assert sorted(answer.status_code for answer in answers) == [202, 202] + [429] * 6
