"""Orders through the edge: priced from the catalog, idempotent, followed to their end."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.edge import API, Account, Api, EdgeProcess
from tests.support.shop import Shop
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = pytest.mark.e2e


@pytest.fixture
async def product(api: Api, admin: Account) -> str:
    made = await api.new_product(admin, price="12.50", stock=1000)
    return str(made["id"])


async def order_rows(stack: RunningStack, user_id: uuid.UUID) -> int:
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM orders WHERE user_id = $1", user_id
        )
        return count
    finally:
        await connection.close()


async def test_an_order_is_accepted_priced_from_the_catalog_and_confirmed(
    api: Api, account: Account, product: str, workers: Workers
) -> None:
    placed = await api.place(account, [(product, 3)])
    assert placed.status_code == 202
    order = placed.json()
    assert placed.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert order["status"] == "pending"
    assert order["items"] == [
        {"product_id": product, "quantity": 3, "price": "12.50", "subtotal": "37.50"}
    ]
    assert order["total"] == "37.50"

    started = time.monotonic()
    waited = await api.http.get(f"/orders/{order['id']}", params={"wait": 10}, headers=account.auth)
    assert waited.json()["status"] == "confirmed"
    # It answered when the order changed, not when the wait ran out.
    assert time.monotonic() - started < 10


async def test_a_declined_card_ends_rejected_with_payment_declined(
    api: Api, account: Account, product: str, workers: Workers
) -> None:
    placed = await api.place(account, [(product, 1)], token="tok_chargeDeclined")
    order = await api.wait_for(account, placed.json()["id"], "rejected")
    assert order["reason"] == "payment_declined"


async def test_more_than_the_stock_ends_rejected_out_of_stock(
    api: Api, account: Account, admin: Account, workers: Workers
) -> None:
    scarce = await api.new_product(admin, stock=1)
    placed = await api.place(account, [(scarce["id"], 2)])
    order = await api.wait_for(account, placed.json()["id"], "rejected")
    assert order["reason"] == "out_of_stock"


async def test_cancelling_a_confirmed_order_refunds_it_and_a_second_cancel_is_409(
    api: Api, account: Account, product: str, workers: Workers
) -> None:
    order_id = (await api.place(account, [(product, 1)])).json()["id"]
    await api.wait_for(account, order_id, "confirmed")
    cancel = await api.http.post(f"/orders/{order_id}/cancel", headers=account.auth)
    assert cancel.status_code == 202
    await api.wait_for(account, order_id, "cancelled")
    again = await api.http.post(f"/orders/{order_id}/cancel", headers=account.auth)
    assert again.status_code == 409


async def test_a_confirmed_order_past_the_state_retention_can_no_longer_be_cancelled(
    api: Api, account: Account, product: str, workers: Workers, tmp_path: Path
) -> None:
    order_id = (await api.place(account, [(product, 1)])).json()["id"]
    await api.wait_for(account, order_id, "confirmed")
    # A second edge on the same stack, keeping finished orders' bookkeeping two seconds.
    short = EdgeProcess(
        api.edge.urls,
        tmp_path / "edge.log",
        {"CONVEYOR_STATE_RETENTION_SECONDS": "2"},
        signing_keys=api.edge.signing_keys,
        admin_password=api.edge.admin_password,
    )
    with short.running():
        await asyncio.sleep(2.5)
        async with httpx.AsyncClient(base_url=short.base_url + API, timeout=60) as http:
            late = await http.post(f"/orders/{order_id}/cancel", headers=account.auth)
    assert late.status_code == 409
    assert "within 2 seconds of its confirmation" in late.json()["detail"]
    assert (await api.http.get(f"/orders/{order_id}", headers=account.auth)).json()[
        "status"
    ] == "confirmed"


async def test_the_same_idempotency_key_is_the_same_order(
    api: Api, account: Account, product: str, stack: RunningStack
) -> None:
    first = await api.place(account, [(product, 2)], key="checkout-1")
    second = await api.place(account, [(product, 2)], key="checkout-1")
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert await order_rows(stack, account.id) == 1


async def test_an_accepted_order_is_marked_announced_by_the_edge_itself(
    api: Api, account: Account, product: str, stack: RunningStack
) -> None:
    """No processor runs here: the mark comes from the edge, after its answer, so the sweep
    of unannounced orders never withdraws an order Kafka has."""
    placed = await api.place(account, [(product, 1)], key=uuid.uuid4().hex)
    assert placed.status_code == 202
    connection = await asyncpg.connect(stack.urls.database_url)
    try:

        async def announced() -> bool | None:
            marked: bool | None = await connection.fetchval(
                "SELECT announced FROM orders WHERE id = $1", uuid.UUID(placed.json()["id"])
            )
            return marked

        assert await eventually_async(announced, "the order marked announced", within=10)
    finally:
        await connection.close()


async def test_concurrent_duplicates_make_one_order(
    api: Api, account: Account, product: str, stack: RunningStack
) -> None:
    answers = await asyncio.gather(
        *(api.place(account, [(product, 1)], key="double-click") for _ in range(10))
    )
    assert {answer.status_code for answer in answers} <= {200, 202}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert await order_rows(stack, account.id) == 1


async def test_one_key_for_two_different_orders_is_422(
    api: Api, account: Account, product: str
) -> None:
    await api.place(account, [(product, 1)], key="reused")
    other = await api.place(account, [(product, 5)], key="reused")
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]


async def test_the_same_key_from_another_user_is_another_order(
    api: Api, account: Account, product: str
) -> None:
    other = await api.new_account()
    mine = await api.place(account, [(product, 1)], key="shared-key")
    theirs = await api.place(other, [(product, 1)], key="shared-key")
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]


async def test_an_order_without_an_idempotency_key_is_refused(
    api: Api, account: Account, product: str
) -> None:
    response = await api.http.post(
        "/orders",
        json={
            "items": [{"product_id": product, "quantity": 1}],
            "currency": "EUR",
            "payment_token": "tok_visa",
        },
        headers=account.auth,
    )
    assert response.status_code == 422
    assert "Idempotency-Key".lower() in response.text.lower()


@pytest.mark.parametrize(
    "item",
    [
        {"quantity": 1, "price": "0.01"},
        {"quantity": 1, "subtotal": "0.01"},
        {"quantity": 0},
        {"quantity": -2},
    ],
    ids=["client price", "client subtotal", "zero quantity", "negative quantity"],
)
async def test_client_prices_and_bad_quantities_are_refused(
    api: Api, account: Account, product: str, item: dict[str, object]
) -> None:
    response = await api.http.post(
        "/orders",
        json={
            "items": [{"product_id": product, **item}],
            "currency": "EUR",
            "payment_token": "tok_visa",
        },
        headers={**account.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 422


async def test_a_client_sent_total_or_status_is_refused(
    api: Api, account: Account, product: str
) -> None:
    for extra in ({"total": "0.01"}, {"status": "confirmed"}, {"user_id": str(uuid.uuid4())}):
        response = await api.http.post(
            "/orders",
            json={
                "items": [{"product_id": product, "quantity": 1}],
                "currency": "EUR",
                "payment_token": "tok_visa",
                **extra,
            },
            headers={**account.auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 422, extra


async def test_an_unknown_product_or_a_foreign_currency_is_422(
    api: Api, account: Account, product: str
) -> None:
    unknown = await api.place(account, [(str(uuid.uuid4()), 1)])
    assert unknown.status_code == 422
    assert "no such products" in unknown.json()["detail"]
    foreign = await api.place(account, [(product, 1)], currency="USD")
    assert foreign.status_code == 422


async def test_another_users_order_is_not_found_for_reading_or_cancelling(
    api: Api, account: Account, product: str
) -> None:
    order_id = (await api.place(account, [(product, 1)])).json()["id"]
    intruder = await api.new_account()
    read = await api.http.get(f"/orders/{order_id}", headers=intruder.auth)
    cancel = await api.http.post(f"/orders/{order_id}/cancel", headers=intruder.auth)
    assert read.status_code == cancel.status_code == 404
    assert (await api.http.get(f"/orders/{order_id}", headers=account.auth)).status_code == 200


async def test_users_list_only_their_orders_newest_first_and_by_status(
    api: Api, account: Account, product: str, workers: Workers
) -> None:
    other = await api.new_account()
    await api.place(other, [(product, 1)])
    declined = (await api.place(account, [(product, 1)], token="tok_chargeDeclined")).json()["id"]
    newest = (await api.place(account, [(product, 1)])).json()["id"]
    await api.wait_for(account, declined, "rejected")

    mine = (await api.http.get("/orders", headers=account.auth)).json()["items"]
    assert [order["id"] for order in mine] == [newest, declined]
    rejected = (
        await api.http.get("/orders", params={"status": "rejected"}, headers=account.auth)
    ).json()["items"]
    assert [order["id"] for order in rejected] == [declined]

    snooping = await api.http.get(
        "/orders", params={"user_id": str(other.id)}, headers=account.auth
    )
    assert snooping.status_code == 403


async def test_admins_see_any_users_orders(
    api: Api, account: Account, admin: Account, product: str
) -> None:
    order_id = (await api.place(account, [(product, 1)])).json()["id"]
    listed = await api.http.get("/orders", params={"user_id": str(account.id)}, headers=admin.auth)
    assert [order["id"] for order in listed.json()["items"]] == [order_id]
    assert (await api.http.get(f"/orders/{order_id}", headers=admin.auth)).status_code == 200


async def test_notifications_list_the_emails_sent_for_the_callers_orders(
    api: Api, product: str, workers: Workers
) -> None:
    account = await api.new_account(verified=True)
    order_id = (await api.place(account, [(product, 1)])).json()["id"]
    await api.wait_for(account, order_id, "confirmed")

    async def notifications() -> list[dict[str, Any]]:
        page = (await api.http.get("/users/me/notifications", headers=account.auth)).json()
        items: list[dict[str, Any]] = page["items"]
        return items

    [sent] = await eventually_async(notifications, "the order's email is listed", within=30)
    assert sent["order_id"] == order_id
    assert sent["event"] == "OrderConfirmed"
    intruder = await api.new_account()
    theirs = (await api.http.get("/users/me/notifications", headers=intruder.auth)).json()
    assert theirs["items"] == []


async def test_the_orders_of_an_account_that_never_verified_its_address_send_no_email(
    api: Api, account: Account, product: str, shop: Shop
) -> None:
    order_id = (await api.place(account, [(product, 1)])).json()["id"]
    await api.wait_for(account, order_id, "confirmed")
    # Once every processor has committed everything, the notifications processor has
    # handled the confirmation.
    await shop.drain()
    assert shop.emails(uuid.UUID(order_id)) == []
    listed = (await api.http.get("/users/me/notifications", headers=account.auth)).json()
    assert listed["items"] == []
