"""``exactly_once``, the other processing guarantee a StreamProcessor may choose, carries
orders through the saga too, including through the processors that keep no table; and the
processors come back under at_least_once over the changelogs it wrote."""

from __future__ import annotations

import pytest

from tests.support.shop import Shop, StockFigures
from tests.support.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.long]


async def test_every_processor_under_exactly_once_confirms_an_order(
    shop: Shop, workers: Workers
) -> None:
    # Payments and the projector keep no table: under exactly_once they crashed at their
    # first assignment, and no order got past its payment.
    with workers.restarted_with({"CONVEYOR_PROCESSING_GUARANTEE": "exactly_once"}):
        lamp = await shop.add_product(5)

        order = await shop.place([(lamp, 2)])

        row = await shop.wait_status(order.order_id)
        assert (row["status"], row["reason"]) == ("confirmed", None)
        await shop.wait_stock(lamp, StockFigures(available=3, reserved=0, sold=2))
        await shop.wait_notified(order.order_id, "OrderConfirmed")

    # Restarted under at_least_once (leaving the block), the stateful processors restored
    # changelogs whose last offsets are exactly_once's commit markers: they never turned
    # ready before. They are ready, and the next order goes through.
    later = await shop.place([(lamp, 1)])
    row = await shop.wait_status(later.order_id)
    assert (row["status"], row["reason"]) == ("confirmed", None)
    await shop.wait_stock(lamp, StockFigures(available=2, reserved=0, sold=3))
