"""Invoice numbers on a real PostgreSQL: 1, 2, 3, ... per year with no gap and no duplicate
however many issuers race, and an order numbered once however often it is asked for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from conveyor.infra.database import apply_migrations
from conveyor.infra.errors import NoInvoice
from conveyor.infra.invoices import ensure_invoice
from conveyor.infra.settings import SellerSettings

pytestmark = pytest.mark.stack


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    await apply_migrations(fresh_database_url)
    async with asyncpg.create_pool(fresh_database_url, min_size=8, max_size=8) as pool:
        yield pool


async def new_order(pool: asyncpg.Pool, status: str = "confirmed") -> uuid.UUID:
    order_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO orders (id, user_id, idempotency_key, status, reason, total, currency) "
        "VALUES ($1, $2, $3, $4, $5, 25.00, 'EUR')",
        order_id,
        uuid.uuid4(),
        order_id.hex,
        status,
        "out_of_stock" if status == "rejected" else None,
    )
    await pool.execute(
        "INSERT INTO order_items (order_id, product_id, quantity, price, subtotal) "
        "VALUES ($1, $2, 2, 12.50, 25.00)",
        order_id,
        uuid.uuid4(),
    )
    return order_id


async def test_racing_issuers_number_every_order_once_without_gaps(pool: asyncpg.Pool) -> None:
    orders = [await new_order(pool) for _ in range(30)]

    # Each order asked for three times at once, every order at once: 90 racing calls.
    issued = await asyncio.gather(*(ensure_invoice(pool, order_id) for order_id in orders * 3))

    number_of = {invoice.order_id: invoice.number for invoice in issued[: len(orders)]}
    assert all(number_of[invoice.order_id] == invoice.number for invoice in issued)
    assert sorted(number_of.values()) == list(range(1, len(orders) + 1))
    year = issued[0].year
    assert (
        await pool.fetchval("SELECT last_number FROM invoice_counters WHERE year = $1", year) == 30
    )
    again = await ensure_invoice(pool, orders[0])
    assert again.display_number == f"{year}-{number_of[orders[0]]:06d}"
    assert again.lines[0].subtotal == Decimal("25.00")


async def test_an_order_not_confirmed_gets_no_invoice_and_takes_no_number(
    pool: asyncpg.Pool,
) -> None:
    pending, rejected = await new_order(pool, "pending"), await new_order(pool, "rejected")

    for order_id, status in ((pending, "pending"), (rejected, "rejected")):
        with pytest.raises(NoInvoice) as refused:
            await ensure_invoice(pool, order_id)
        assert refused.value.status == status
    with pytest.raises(NoInvoice):
        await ensure_invoice(pool, uuid.uuid4())

    first = await ensure_invoice(pool, await new_order(pool))
    assert first.number == 1
    # A processor that saw OrderConfirmed may invoice a row the projector has not moved yet.
    assert (await ensure_invoice(pool, pending, known_confirmed=True)).number == 2


async def test_an_invoice_keeps_the_seller_it_was_issued_with(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = await new_order(pool)
    issued = await ensure_invoice(
        pool,
        order_id,
        seller=SellerSettings(name="Old Shop Ltd", address="2 Old Road", tax_id="GB1", email="a@b"),
    )

    # The shop moves and renames itself: its settings now name someone else.
    monkeypatch.setenv("CONVEYOR_SELLER_NAME", "New Shop GmbH")
    monkeypatch.setenv("CONVEYOR_SELLER_ADDRESS", "3 New Street")
    again = await ensure_invoice(pool, order_id, seller=SellerSettings())

    assert again.number == issued.number
    assert again.seller == issued.seller
    assert (again.seller.name, again.seller.address) == ("Old Shop Ltd", "2 Old Road")


async def test_an_issued_invoice_is_read_while_its_order_is_locked(pool: asyncpg.Pool) -> None:
    order_id = await new_order(pool)
    issued = await ensure_invoice(pool, order_id)

    # The projector holds an order's row while its batch's transaction runs: an e-mail
    # asking for the invoice meanwhile does not wait for it.
    async with pool.acquire() as projector, projector.transaction():
        await projector.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", order_id)
        again = await asyncio.wait_for(ensure_invoice(pool, order_id), timeout=5)

    assert again.display_number == issued.display_number
