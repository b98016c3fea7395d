"""The catalog: search, filters, pages, admin management and stock through the inventory."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.edge import Account, Api
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = pytest.mark.e2e


async def available(api: Api, product_id: str, expected: int, within: float = 30) -> int:
    """The product's available stock once it reads ``expected``."""

    async def figure() -> int:
        product = (await api.http.get(f"/products/{product_id}")).json()
        available: int = product["stock"]["available"]
        return available

    return await eventually_async(
        figure,
        f"product {product_id} has {expected} available",
        until=lambda available: available == expected,
        within=within,
    )


async def test_a_new_product_is_listed_with_its_stock_from_the_inventory(
    api: Api, admin: Account, workers: Workers
) -> None:
    product = await api.new_product(admin, price="19.99", stock=7)
    assert product["price"] == "19.99"
    fetched = await api.http.get(f"/products/{product['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["sku"] == product["sku"]
    assert await available(api, product["id"], 7) == 7


async def test_stock_adjustments_reach_the_catalog_and_a_repeated_key_counts_once(
    api: Api, admin: Account, workers: Workers
) -> None:
    product = await api.new_product(admin, stock=3)
    headers = {**admin.auth, "Idempotency-Key": uuid.uuid4().hex}
    for _ in range(2):
        response = await api.http.post(
            f"/products/{product['id']}/stock", json={"delta": 5}, headers=headers
        )
        assert response.status_code == 202
    assert await available(api, product["id"], 8) == 8


async def test_full_text_search_matches_names_and_descriptions(api: Api, admin: Account) -> None:
    word = f"zq{uuid.uuid4().hex[:8]}"
    in_name = await api.new_product(admin, name=f"Kettle {word}")
    in_description = await api.new_product(admin, description=f"Pairs with the {word} kettle")
    await api.new_product(admin, name="Unrelated spoon")
    found = (await api.http.get("/products", params={"q": word})).json()["items"]
    assert {item["id"] for item in found} == {in_name["id"], in_description["id"]}


async def test_category_and_price_filters_combine(api: Api, admin: Account) -> None:
    category = f"cat-{uuid.uuid4().hex[:8]}"
    cheap = await api.new_product(admin, price="5.00", category=category)
    middle = await api.new_product(admin, price="15.00", category=category)
    await api.new_product(admin, price="25.00", category=category)
    await api.new_product(admin, price="15.00", category="elsewhere")
    params: dict[str, Any] = {"category": category, "min_price": "4.99", "max_price": "15.00"}
    found = (await api.http.get("/products", params=params)).json()["items"]
    assert [item["id"] for item in found] == [middle["id"], cheap["id"]]


async def test_a_price_range_upside_down_is_422(api: Api) -> None:
    response = await api.http.get("/products", params={"min_price": "10", "max_price": "1"})
    assert response.status_code == 422


async def test_pages_follow_each_other_without_gaps_or_repeats(api: Api, admin: Account) -> None:
    category = f"page-{uuid.uuid4().hex[:8]}"
    made = [(await api.new_product(admin, category=category))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"category": category, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.http.get("/products", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


async def test_a_duplicate_sku_is_409(api: Api, admin: Account) -> None:
    product = await api.new_product(admin)
    again = await api.http.post(
        "/products",
        json={"sku": product["sku"], "name": "Copy", "price": "1.00", "currency": "EUR"},
        headers=admin.auth,
    )
    assert again.status_code == 409


async def test_admins_reprice_and_retire_products(api: Api, admin: Account) -> None:
    product = await api.new_product(admin, price="10.00")
    repriced = await api.http.patch(
        f"/products/{product['id']}", json={"price": "12.50", "name": None}, headers=admin.auth
    )
    assert repriced.status_code == 200
    assert repriced.json()["price"] == "12.50"
    assert repriced.json()["name"] == product["name"]

    deleted = await api.http.delete(f"/products/{product['id']}", headers=admin.auth)
    assert deleted.status_code == 204
    assert (await api.http.get(f"/products/{product['id']}")).status_code == 404
    listing = (await api.http.get("/products", params={"category": "kitchen", "limit": 100})).json()
    assert product["id"] not in {item["id"] for item in listing["items"]}


async def test_unknown_products_are_404(api: Api, admin: Account) -> None:
    missing = uuid.uuid4()
    assert (await api.http.get(f"/products/{missing}")).status_code == 404
    patch = await api.http.patch(f"/products/{missing}", json={"price": "1.00"}, headers=admin.auth)
    stock = await api.http.post(f"/products/{missing}/stock", json={"delta": 1}, headers=admin.auth)
    delete = await api.http.delete(f"/products/{missing}", headers=admin.auth)
    assert patch.status_code == stock.status_code == delete.status_code == 404


async def test_a_zero_stock_adjustment_is_422(api: Api, admin: Account) -> None:
    product = await api.new_product(admin)
    response = await api.http.post(
        f"/products/{product['id']}/stock", json={"delta": 0}, headers=admin.auth
    )
    assert response.status_code == 422
