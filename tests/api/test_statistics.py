"""The operations panel's figures (``GET /statistics/orders``): admins only, from the read model."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.edge import Account, Api
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = pytest.mark.e2e


async def statistics(api: Api, admin: Account, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/statistics/orders", params=params, headers=admin.auth)
    assert response.status_code == 200, response.text
    figures: dict[str, Any] = response.json()
    return figures


def declined(figures: dict[str, Any]) -> int:
    counts = {entry["reason"]: entry["count"] for entry in figures["rejections"]}
    return int(counts.get("payment_declined", 0))


async def test_orders_placed_and_their_rejection_reasons_show_in_the_figures(
    api: Api, admin: Account, account: Account, workers: Workers
) -> None:
    product = await api.new_product(admin, stock=100)
    before = await statistics(api, admin, minutes=60)

    confirmed = await api.place(account, [(product["id"], 1)])
    refused = await api.place(account, [(product["id"], 1)], token="tok_chargeDeclined")
    await api.wait_for(account, confirmed.json()["id"], "confirmed")
    await api.wait_for(account, refused.json()["id"], "rejected")

    after = await eventually_async(
        lambda: statistics(api, admin, minutes=60),
        "the declined order counted among the rejections",
        until=lambda figures: declined(figures) > declined(before),
    )
    assert after["minutes"] == 60
    assert after["placed"] >= before["placed"] + 2
    assert sum(minute["placed"] for minute in after["per_minute"]) == after["placed"]
    assert sum(after["by_status"].values()) == after["placed"]
    assert after["by_status"]["confirmed"] >= 1


async def test_only_admins_see_the_figures_and_the_window_is_bounded(
    api: Api, admin: Account, account: Account
) -> None:
    as_user = await api.http.get("/statistics/orders", headers=account.auth)
    assert as_user.status_code == 403
    assert as_user.headers["content-type"].startswith("application/problem+json")
    anonymous = await api.http.get("/statistics/orders")
    assert anonymous.status_code == 401
    for minutes in (0, 24 * 60 + 1):
        refused = await api.http.get(
            "/statistics/orders", params={"minutes": minutes}, headers=admin.auth
        )
        assert refused.status_code == 422, refused.text
        assert "minutes" in refused.json()["detail"]
