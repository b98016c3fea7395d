"""Recommendations ("customers also bought") on the real stack, and their pure arithmetic.

Orders go through the real saga from the real edge; redeliveries and malformed records are
published straight onto the topics the recommendations processor reads.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer

from conveyor.domain import messages as m
from conveyor.domain.codec import EncodedRecord, decode_dead_letter, encode
from conveyor.domain.topics import DEFAULT_PARTITIONS, topic_for
from conveyor.streams.processors.recommendations import (
    FORGOTTEN_BELOW,
    CoPurchases,
    add_copurchases,
)
from conveyor.streams.runtime import WorkerSettings
from tests.support.edge import Account, Api
from tests.support.shop import Shop, key_in_partition_of, read_all
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

PRICE = Decimal("10.00")
WEEK = 7 * 24 * 3600.0


# -- the arithmetic ----------------------------------------------------------------------------


def test_a_co_purchase_counts_half_as_much_one_half_life_later() -> None:
    first = add_copurchases(None, ["b"], 1_000.0, half_life=100.0, top_n=5)
    later = add_copurchases(first, ["c"], 1_100.0, half_life=100.0, top_n=5)
    assert later.as_of == 1_100.0
    assert later.scores == pytest.approx({"b": 0.5, "c": 1.0})
    # A late record (confirmed before the newest counted) adds what it is worth then.
    late = add_copurchases(later, ["c"], 1_000.0, half_life=100.0, top_n=5)
    assert late.as_of == 1_100.0
    assert late.scores == pytest.approx({"b": 0.5, "c": 1.5})


def test_only_the_top_n_are_kept_and_what_faded_away_is_forgotten() -> None:
    counts = CoPurchases(as_of=0.0, scores={"a": 3.0, "b": 2.0, "c": 1.0})
    kept = add_copurchases(counts, ["d", "d2"], 0.0, half_life=100.0, top_n=3)
    assert kept.ranked() == [("a", 3.0), ("b", 2.0), ("c", 1.0)]  # ties go by product id
    # 1000 half-lives on, the old scores are below FORGOTTEN_BELOW: only the new one stays.
    faded = add_copurchases(kept, ["e"], 100_000.0, half_life=100.0, top_n=3)
    assert faded.scores == {"e": 1.0}
    assert FORGOTTEN_BELOW > 3.0 * 2.0**-1000


def test_the_defaults_are_a_week_and_twenty() -> None:
    settings = WorkerSettings()
    assert settings.recommendation_half_life_seconds == WEEK
    assert settings.recommendation_top_n == 20


# -- on the stack -----------------------------------------------------------------------------

e2e = pytest.mark.e2e


async def recommended(api: Api, product: str, limit: int = 8) -> list[dict[str, Any]]:
    response = await api.http.get(f"/products/{product}/recommendations", params={"limit": limit})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def wait_recommended(
    api: Api, product: str, until: Any, what: str, limit: int = 8
) -> list[dict[str, Any]]:
    return await eventually_async(
        lambda: recommended(api, product, limit), what, until=until, within=60
    )


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["product"]["id"] for item in items]


async def confirmed(api: Api, account: Account, lines: list[str], token: str = "tok_visa") -> str:
    placed = await api.place(account, [(product, 1) for product in lines], token=token)
    assert placed.status_code == 202, placed.text
    order_id: str = placed.json()["id"]
    await api.wait_for(account, order_id, "confirmed" if token == "tok_visa" else "rejected")
    return order_id


@e2e
async def test_products_bought_together_more_often_come_first(
    api: Api, admin: Account, account: Account, workers: Workers
) -> None:
    a, b, c, d = [(await api.new_product(admin, stock=50))["id"] for _ in range(4)]
    assert await recommended(api, a) == []  # nothing known yet
    for _ in range(3):
        await confirmed(api, account, [a, b])
    await confirmed(api, account, [a, c])
    # A rejected order buys nothing together.
    await confirmed(api, account, [a, d], token="tok_chargeDeclined")
    items = await wait_recommended(
        api, a, lambda items: ids(items) == [b, c], "B then C recommended with A"
    )
    assert items[0]["score"] > items[1]["score"] > 0
    assert items[0]["product"] == (await api.http.get(f"/products/{b}")).json()
    assert ids(await recommended(api, c)) == [a]
    assert await recommended(api, d) == []
    assert ids(await recommended(api, a, limit=1)) == [b]

    # A product taken out of the catalog is never recommended.
    deleted = await api.http.delete(f"/products/{c}", headers=admin.auth)
    assert deleted.status_code == 204
    await wait_recommended(api, a, lambda items: ids(items) == [b], "C gone from A's list")
    # ... nor are its own recommendations served.
    gone = await api.http.get(f"/products/{c}/recommendations")
    assert gone.status_code == 404


@e2e
async def test_an_unknown_product_and_a_bad_limit_are_refused(api: Api) -> None:
    unknown = await api.http.get(f"/products/{uuid.uuid4()}/recommendations")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    for limit in (0, 51):
        refused = await api.http.get(
            f"/products/{uuid.uuid4()}/recommendations", params={"limit": limit}
        )
        assert refused.status_code == 422, limit


def placed(order_id: UUID, products: list[UUID]) -> m.OrderPlaced:
    items = tuple(
        m.OrderLine(product_id=product, quantity=1, unit_price=PRICE, subtotal=PRICE)
        for product in products
    )
    return m.OrderPlaced(
        order_id=order_id,
        user_id=uuid.uuid4(),
        customer_email=None,
        items=items,
        currency="EUR",
        total=PRICE * len(items),
    )


async def publish(bootstrap: str, *records: tuple[str, EncodedRecord]) -> None:
    """Send ``records`` one after another, each as it is (sent again, it keeps its event id)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, record in records:
            await producer.send_and_wait(
                topic, record.value, key=record.key, headers=list(record.headers)
            )
    finally:
        await producer.stop()


def recorded(*messages: m.Message) -> list[tuple[str, EncodedRecord]]:
    return [
        (topic_for(type(message)).name, encode(topic_for(type(message)), message))
        for message in messages
    ]


async def materialized(shop: Shop, product: UUID) -> list[dict[str, Any]] | None:
    items = await shop.pool.fetchval(
        "SELECT items::text FROM product_recommendations WHERE product_id = $1", product
    )
    return None if items is None else list(json.loads(items))


@e2e
async def test_a_redelivered_confirmation_counts_once(shop: Shop) -> None:
    x, y, z = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = uuid.uuid4()
    placement, confirmation = recorded(
        placed(first, [x, y]),
        m.OrderConfirmed(order_id=first, user_id=uuid.uuid4(), payment_id="pay_1"),
    )
    await publish(shop.bootstrap, placement, confirmation)
    counted = await eventually_async(
        lambda: materialized(shop, x), "X's counts", until=lambda items: len(items) == 1
    )
    # Delivered again: the confirmation, and the record the processor repartitioned it into
    # for X (same order, same product). Then a later order of X in the confirmation's
    # partition: once it shows, the redeliveries were handled before it.
    later = key_in_partition_of(first, DEFAULT_PARTITIONS)
    await publish(
        shop.bootstrap,
        confirmation,
        *recorded(
            m.ProductsBoughtTogether(
                product_id=x, order_id=first, bought_with=(y,), confirmed_at=datetime.now(UTC)
            ),
            placed(later, [x, z]),
            m.OrderConfirmed(order_id=later, user_id=uuid.uuid4(), payment_id="pay_2"),
        ),
    )
    after = await eventually_async(
        lambda: materialized(shop, x), "Z counted with X", until=lambda items: len(items) == 2
    )
    scores = {item["product_id"]: item["score"] for item in after}
    assert scores[str(y)] == pytest.approx(counted[0]["score"], rel=1e-3)  # not twice
    assert scores[str(z)] == pytest.approx(1.0, rel=1e-3)


@e2e
async def test_a_product_keeps_only_its_top_twenty(shop: Shop) -> None:
    big, *others = [uuid.uuid4() for _ in range(26)]
    order_id = uuid.uuid4()
    await publish(
        shop.bootstrap,
        *recorded(
            placed(order_id, [big, *others]),
            m.OrderConfirmed(order_id=order_id, user_id=uuid.uuid4(), payment_id="pay_1"),
        ),
    )
    items = await eventually_async(lambda: materialized(shop, big), "the big order counted")
    assert len(items) == 20
    assert {item["product_id"] for item in items} <= {str(other) for other in others}
    cached = await shop.cache.get(f"conveyor:recommendations:{big}")
    assert cached is not None
    assert json.loads(cached) == items


@e2e
async def test_a_malformed_record_goes_to_the_dead_letter_topic(shop: Shop) -> None:
    product = uuid.uuid4()
    [(topic, record)] = recorded(
        m.ProductsBoughtTogether(
            product_id=product,
            order_id=uuid.uuid4(),
            bought_with=(uuid.uuid4(),),
            confirmed_at=datetime.now(UTC),
        )
    )
    # Bought with itself, which no ProductsBoughtTogether may say.
    envelope = json.loads(record.value)
    envelope["payload"]["bought_with"] = [str(product)]
    malformed = EncodedRecord(record.key, json.dumps(envelope).encode(), record.headers)
    await publish(shop.bootstrap, (topic, malformed))

    async def letters() -> list[str]:
        return [
            letter.error
            for _, raw in await read_all(shop.bootstrap, "recommendations.copurchases.dlq")
            if str(product).encode() in ((letter := decode_dead_letter(raw)).original_value or b"")
        ]

    [error] = await eventually_async(letters, "the malformed record dead-lettered")
    assert "bought together with itself" in error
