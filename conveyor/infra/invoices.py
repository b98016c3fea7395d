"""Invoices: one per confirmed order, numbered per year with no gap and no duplicate.

Three components may be first to want an order's invoice: the projector when it writes the
order confirmed, the notifications processor when it emails the confirmation, and the edge
when the customer downloads it. They all call ``ensure_invoice``, which issues the invoice
once and afterwards returns it as issued. In one transaction it:

1. locks the order's row (``FOR UPDATE``), so two first attempts for one order take turns
   and the second finds the first's invoice;
2. returns the invoice the order already has, if any;
3. checks the order may have one: confirmed, or cancelled after its confirmation (it has a
   payment), or confirmed by the caller's own knowledge (the processors act on
   OrderConfirmed, which may reach them before the projector moved the row);
4. moves the year's counter on by one (``INSERT ... ON CONFLICT DO UPDATE``: it creates the
   year's row or locks and increments it) and inserts the invoice with that number.

The counter's increment and the invoice commit together or not at all, and the counter row
stays locked until then, so numbers run 1, 2, 3, ... per year: a rolled-back issue gives its
number back, two issuers never take the same one. Locks are always taken in the same order,
order rows first and the counter last, so issuers never deadlock with each other or with the
projector (which locks its batch's order rows before it issues their invoices).

What the invoice says (customer, lines, total, seller) is copied into its row when it is
issued, so it reads the same whatever happens later to the catalog or the account. A cancelled
order's invoice keeps its number and gains a refund (``record_refund``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from conveyor.infra.errors import NoInvoice
from conveyor.infra.settings import SellerSettings, get_seller_settings

if TYPE_CHECKING:
    Connection = (
        asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    )
    Database = asyncpg.Pool[asyncpg.Record] | Connection
else:
    Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
    Database = asyncpg.Pool | Connection

# The columns are this module's constants, never input: the f-strings below add no values.
_COLUMNS = (
    "order_id, year, number, issued_at, user_id, customer_name, customer_email, lines, "
    "total, currency, seller, refunded_at, refund_amount"
)


@dataclass(frozen=True)
class InvoiceLine:
    product_name: str
    quantity: int
    unit_price: Decimal
    subtotal: Decimal


@dataclass(frozen=True)
class Invoice:
    order_id: UUID
    year: int
    number: int
    issued_at: datetime
    user_id: UUID
    customer_name: str | None
    customer_email: str | None
    lines: tuple[InvoiceLine, ...]
    total: Decimal
    currency: str
    seller: SellerSettings
    refunded_at: datetime | None
    refund_amount: Decimal | None

    @property
    def display_number(self) -> str:
        """The number as printed and quoted: ``2026-000042``."""
        return f"{self.year}-{self.number:06d}"

    @property
    def filename(self) -> str:
        return f"invoice-{self.display_number}.pdf"

    @classmethod
    def of(cls, row: asyncpg.Record) -> Invoice:
        return cls(
            order_id=row["order_id"],
            year=row["year"],
            number=row["number"],
            issued_at=row["issued_at"],
            user_id=row["user_id"],
            customer_name=row["customer_name"],
            customer_email=row["customer_email"],
            lines=tuple(
                InvoiceLine(
                    product_name=line["product_name"],
                    quantity=line["quantity"],
                    unit_price=Decimal(line["unit_price"]),
                    subtotal=Decimal(line["subtotal"]),
                )
                for line in json.loads(row["lines"])
            ),
            total=row["total"],
            currency=row["currency"].strip(),
            # Stored from validated settings. Not validated again: validating a settings
            # class reads the whole environment first, which cost more than the rest here.
            seller=SellerSettings.model_construct(**json.loads(row["seller"])),
            refunded_at=row["refunded_at"],
            refund_amount=row["refund_amount"],
        )


async def find_invoice(db: Database, order_id: UUID) -> Invoice | None:
    """The order's invoice if it has been issued; issues none."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM invoices WHERE order_id = $1",  # noqa: S608
        order_id,
    )
    return None if row is None else Invoice.of(row)


async def ensure_invoice(
    db: Database,
    order_id: UUID,
    *,
    known_confirmed: bool = False,
    seller: SellerSettings | None = None,
) -> Invoice:
    """The order's invoice, issued now if it has none (see the module's docstring).

    ``known_confirmed``: the caller saw the order's OrderConfirmed, so a row still pending
    (the projector is behind) may be invoiced, and a cancelled one whose payment row is
    missing. Raises NoInvoice when the order may not have
    one; inside a caller's transaction, runs in a savepoint of it.
    """
    if isinstance(db, asyncpg.Pool):
        # Mostly issued already (the projector issues it as it confirms the row): one
        # lookup, instead of a transaction that waits for the order's row lock to find it.
        issued = await find_invoice(db, order_id)
        if issued is not None:
            return issued
    async with _transaction(db) as connection:
        order = await connection.fetchrow(
            """
            SELECT orders.status, orders.user_id, orders.total, orders.currency,
                   payments.status AS payment, payments.updated_at AS payment_updated_at
            FROM orders LEFT JOIN payments ON payments.order_id = orders.id
            WHERE orders.id = $1
            FOR UPDATE OF orders
            """,
            order_id,
        )
        if order is None:
            raise NoInvoice(f"order {order_id} is not in the database (yet)", None)
        issued = await find_invoice(connection, order_id)
        if issued is not None:
            return issued
        _check_invoiceable(order_id, order["status"], order["payment"], known_confirmed)
        lines = await connection.fetch(
            """
            SELECT coalesce(products.name, 'Product ' || items.product_id) AS product_name,
                   items.quantity, items.price, items.subtotal
            FROM order_items AS items LEFT JOIN products ON products.id = items.product_id
            WHERE items.order_id = $1
            ORDER BY items.product_id
            """,
            order_id,
        )
        customer = await connection.fetchrow(
            "SELECT name, email FROM users WHERE id = $1", order["user_id"]
        )
        refunded = order["payment"] == "refunded"
        issued_at = datetime.now(UTC)
        number = await connection.fetchval(
            """
            INSERT INTO invoice_counters (year, last_number) VALUES ($1, 1)
            ON CONFLICT (year) DO UPDATE SET last_number = invoice_counters.last_number + 1
            RETURNING last_number
            """,
            issued_at.year,
        )
        row = await connection.fetchrow(
            f"""
            INSERT INTO invoices ({_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            RETURNING {_COLUMNS}
            """,  # noqa: S608
            order_id,
            issued_at.year,
            number,
            issued_at,
            order["user_id"],
            None if customer is None else customer["name"],
            None if customer is None else customer["email"],
            json.dumps([_line_json(line) for line in lines]),
            order["total"],
            order["currency"],
            (seller or get_seller_settings()).model_dump_json(),
            order["payment_updated_at"] if refunded else None,
            order["total"] if refunded else None,
        )
        assert row is not None  # INSERT ... RETURNING returns the row it inserted
        return Invoice.of(row)


async def record_refund(db: Database, order_id: UUID, refunded_at: datetime) -> bool:
    """Mark the order's invoice refunded in full (once; its number stays); False when the
    order has no invoice or it was marked already."""
    marked = await db.fetchval(
        """
        UPDATE invoices SET refunded_at = $2, refund_amount = total
        WHERE order_id = $1 AND refunded_at IS NULL
        RETURNING true
        """,
        order_id,
        refunded_at,
    )
    return bool(marked)


def _check_invoiceable(
    order_id: UUID, status: str, payment: str | None, known_confirmed: bool
) -> None:
    if status == "confirmed" or (status == "cancelled" and payment is not None):
        return
    if known_confirmed and status != "rejected":
        return
    if status == "pending":
        raise NoInvoice(f"order {order_id} is pending: it gets its invoice once confirmed", status)
    if status == "rejected":
        raise NoInvoice(f"order {order_id} was rejected: it has no invoice", status)
    raise NoInvoice(
        f"order {order_id} was cancelled before it was confirmed: it has no invoice", status
    )


def _line_json(line: asyncpg.Record) -> dict[str, Any]:
    return {
        "product_name": line["product_name"],
        "quantity": line["quantity"],
        "unit_price": f"{line['price']:.2f}",
        "subtotal": f"{line['subtotal']:.2f}",
    }


@asynccontextmanager
async def _transaction(db: Database) -> AsyncIterator[Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as connection, connection.transaction():
            yield connection
    else:
        async with db.transaction():
            yield db
