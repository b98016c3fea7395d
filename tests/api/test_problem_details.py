"""Problem details speak of the request, in words, and never of the edge's code: no exception
class, no model class, no database error name."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support.edge import Account, Api

pytestmark = pytest.mark.e2e

# What pydantic and asyncpg would say of themselves: an exception's kind or class, a model.
_CODE_TALK = re.compile(
    r"Value error|Assertion failed|[A-Za-z]+(Error|Exception)\b|ProfileUpdate|SelfUpdate|"
    r"ProductCreate|StockAdjustment|OrderCreate"
)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert not _CODE_TALK.search(response.text), response.text
    body: dict[str, Any] = response.json()
    return body


def messages(body: dict[str, Any]) -> list[str]:
    return [issue["msg"] for issue in body["errors"]]


async def test_a_price_with_three_decimals_is_refused_in_the_validators_own_words(
    api: Api, admin: Account
) -> None:
    response = await api.http.post(
        "/products",
        json={"sku": "MUG-3DP", "name": "Mug", "price": "19.999", "currency": "EUR"},
        headers=admin.auth,
    )
    assert messages(problem(response, 422)) == [
        'a price is a decimal string with at most two places, like "19.99"'
    ]


async def test_a_stock_change_of_zero_is_refused_in_the_validators_own_words(
    api: Api, admin: Account
) -> None:
    product = await api.new_product(admin)
    response = await api.http.post(
        f"/products/{product['id']}/stock", json={"delta": 0}, headers=admin.auth
    )
    assert messages(problem(response, 422)) == ["delta must not be zero"]


async def test_a_profile_that_is_not_an_object_is_refused_without_naming_a_model(
    api: Api, account: Account
) -> None:
    response = await api.http.patch("/users/me", json={"profile": "a poet"}, headers=account.auth)
    [issue] = problem(response, 422)["errors"]
    assert issue["loc"] == ["body", "profile"]


async def test_an_order_too_large_to_store_is_refused_without_naming_the_database_error(
    api: Api, admin: Account
) -> None:
    product = await api.new_product(admin, price="9999999999.99", stock=10_000)
    response = await api.place(admin, [(product["id"], 10_000)])
    body = problem(response, 422)
    assert "out of the range the shop can store" in body["detail"]
