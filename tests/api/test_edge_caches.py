"""What an edge worker keeps for a few seconds: catalog answers (with ETags) and login checks.

A change shows at once on the worker that made it and within the stated bound everywhere;
the shared edge of the suite may run several workers, so its tests wait for the bound.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from conveyor.infra import readmodel
from tests.support.edge import (
    CATALOG_BOUND_SECONDS,
    MARGIN_SECONDS,
    Account,
    Api,
    EdgeProcess,
)
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = pytest.mark.e2e


async def shown(api: Api, path: str, what: str, until: Any) -> dict[str, Any]:
    """The catalog answer at ``path`` once ``until`` holds for it, within the catalog bound."""

    async def answer() -> dict[str, Any]:
        found: dict[str, Any] = (await api.http.get(path)).json()
        return found

    return await eventually_async(
        answer, what, until=until, within=CATALOG_BOUND_SECONDS + MARGIN_SECONDS
    )


async def test_a_price_change_shows_on_every_worker_within_the_catalog_bound(
    api: Api, admin: Account
) -> None:
    name = f"Kettle {uuid.uuid4().hex[:8]}"
    product = await api.new_product(admin, price="10.00", name=name)
    path, search = f"/products/{product['id']}", f"/products?q={name.split()[1]}"
    # Both answers are now kept by whichever workers served them.
    assert (await api.http.get(path)).json()["price"] == "10.00"
    assert [item["price"] for item in (await api.http.get(search)).json()["items"]] == ["10.00"]

    changed = await api.http.patch(path, json={"price": "12.50"}, headers=admin.auth)
    assert changed.json()["price"] == "12.50"

    await shown(api, path, "the product at its new price", lambda p: p["price"] == "12.50")
    await shown(
        api,
        search,
        "the search at the new price",
        lambda page: [item["price"] for item in page["items"]] == ["12.50"],
    )


async def test_a_stock_change_shows_within_the_catalog_bound_once_the_read_model_has_it(
    api: Api, admin: Account, workers: Workers, cache: aioredis.Redis
) -> None:
    product = await api.new_product(admin, stock=5)
    path = f"/products/{product['id']}"
    await shown(api, path, "the initial stock", lambda p: p["stock"]["available"] == 5)

    adjusted = await api.http.post(f"{path}/stock", json={"delta": 4}, headers=admin.auth)
    assert adjusted.status_code == 202

    async def in_the_read_model() -> bytes | str | None:
        return await cache.hget(readmodel.stock_key(product["id"]), "available")

    # The inventory and the projector take their time; the edge's bound starts from here.
    await eventually_async(
        in_the_read_model, "9 available in Redis", until=lambda v: v in (b"9", "9")
    )
    await shown(api, path, "the adjusted stock", lambda p: p["stock"]["available"] == 9)


async def test_anonymous_catalog_reads_carry_an_etag_and_the_same_etag_gets_304(
    api: Api, admin: Account
) -> None:
    product = await api.new_product(admin, price="3.00")
    path = f"/products/{product['id']}"
    first = await api.http.get(path)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]+"', etag)
    assert first.headers["cache-control"] == f"public, max-age={int(CATALOG_BOUND_SECONDS)}"

    # The tag is the answer's content, so any worker gives the same one for the same answer.
    again = await api.http.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag

    signed_in = await api.http.get(path, headers=admin.auth)
    assert signed_in.status_code == 200
    assert signed_in.headers["cache-control"].startswith("private")

    await api.http.patch(path, json={"price": "4.00"}, headers=admin.auth)

    async def changed_answer() -> httpx.Response:
        return await api.http.get(path, headers={"If-None-Match": etag})

    answer = await eventually_async(
        changed_answer,
        "a full answer with a new tag for the changed product",
        until=lambda response: response.status_code == 200,
        within=CATALOG_BOUND_SECONDS + MARGIN_SECONDS,
    )
    assert answer.json()["price"] == "4.00"
    assert answer.headers["etag"] != etag


# Longer than any test here takes: whatever shows at once was not waited for.
LONG_SECONDS = "60"


@pytest.fixture(scope="module")
def one_worker_edge(
    stack: RunningStack, edge: EdgeProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    """An edge of one worker that keeps answers and login checks for a minute, on the
    database of the suite's edge (whose admin it shares)."""
    keeping = EdgeProcess(
        stack.urls,
        tmp_path_factory.mktemp("keeping-edge") / "edge.log",
        admin_password=edge.admin_password,
        settings={
            "CONVEYOR_API_WORKERS": "1",
            "CONVEYOR_CATALOG_CACHE_SECONDS": LONG_SECONDS,
            "CONVEYOR_SESSION_CACHE_SECONDS": LONG_SECONDS,
        },
    )
    with keeping.running():
        yield keeping


async def test_the_worker_that_makes_a_change_shows_it_at_once_however_long_it_keeps_answers(
    one_worker_edge: EdgeProcess,
) -> None:
    api = Api(one_worker_edge)
    try:
        admin, shopper = await api.admin(), await api.new_account()
        product = await api.new_product(admin, price="7.00")
        path = f"/products/{product['id']}"
        assert (await api.http.get(path)).json()["price"] == "7.00"
        assert (await api.http.get("/orders?limit=1", headers=shopper.auth)).status_code == 200

        await api.http.patch(path, json={"price": "8.00"}, headers=admin.auth)
        assert (await api.http.get(path)).json()["price"] == "8.00"

        out = await api.http.post("/auth/logout", json={"refresh_token": shopper.refresh_token})
        assert out.status_code == 204
        assert (await api.http.get("/orders?limit=1", headers=shopper.auth)).status_code == 401
    finally:
        await api.close()


async def test_repeated_catalog_reads_are_answered_from_the_worker_s_memory(
    one_worker_edge: EdgeProcess,
) -> None:
    api = Api(one_worker_edge)
    try:
        product = await api.new_product(await api.admin())

        async def hits() -> float:
            metrics = (await api.http.get(f"{one_worker_edge.base_url}/metrics")).text
            found = re.search(
                r'^conveyor_edge_cache_lookups_total\{cache="catalog",result="hit"\} (\S+)$',
                metrics,
                re.MULTILINE,
            )
            return float(found.group(1)) if found else 0.0

        before = await hits()
        answers = [await api.http.get(f"/products/{product['id']}") for _ in range(3)]
        assert {answer.content for answer in answers} == {answers[0].content}
        assert await hits() - before == 2
    finally:
        await api.close()
