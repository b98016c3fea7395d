"""Invoices issued by the processors: a confirmed order gets one from whichever of the
projector and the notifications processor comes first, and a redelivered OrderConfirmed
issues no second one and takes no number."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from tests.support.shop import Shop, replay
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.e2e


async def invoice_row(shop: Shop, order_id: UUID) -> asyncpg.Record | None:
    return await shop.pool.fetchrow(
        "SELECT year, number, issued_at FROM invoices WHERE order_id = $1", order_id
    )


async def numbers_taken_and_issued(shop: Shop) -> list[tuple[int, int, int]]:
    """Per year: the counter's last number, and how many invoices and distinct numbers."""
    rows = await shop.pool.fetch(
        """
        SELECT year, last_number,
               (SELECT count(*) FROM invoices WHERE invoices.year = counters.year) AS issued,
               (SELECT max(number) FROM invoices WHERE invoices.year = counters.year) AS highest
        FROM invoice_counters AS counters ORDER BY year
        """
    )
    return [(row["last_number"], row["issued"], row["highest"]) for row in rows]


async def test_a_redelivered_confirmation_issues_no_second_invoice_nor_number(
    shop: Shop,
) -> None:
    product = await shop.add_product(10)
    order = await shop.place([(product, 2)])
    await shop.wait_status(order.order_id, {"confirmed"})
    issued = await eventually_async(
        lambda: invoice_row(shop, order.order_id), f"the invoice of {order.order_id}"
    )
    await shop.wait_notified(order.order_id, "OrderConfirmed")
    await shop.drain()
    before = await numbers_taken_and_issued(shop)

    replayed = await replay(
        shop.bootstrap,
        ["orders.events"],
        lambda key, value: key == str(order.order_id).encode() and b"OrderConfirmed" in value,
    )
    assert len(replayed) == 1
    await shop.drain()

    assert await invoice_row(shop, order.order_id) == issued
    after = await numbers_taken_and_issued(shop)
    assert after == before
    # Every number taken is an invoice's: none skipped, none shared.
    assert all(taken == count == highest for taken, count, highest in after)
    [email] = shop.emails(order.order_id)
    [attached] = list(email.message.iter_attachments())
    assert attached.get_filename() == f"invoice-{issued['year']}-{issued['number']:06d}.pdf"
