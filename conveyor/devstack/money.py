"""The money invariant, checked: the payment gateway's ledger against every order's final status.

Once things settle, the money the gateway keeps for an order (what its authorizations hold:
authorized minus refunded; a voided authorization keeps nothing, a declined one never held
anything) equals the order's total when the order is ``confirmed``, and 0 otherwise. Orders
still ``pending`` are not settled yet and are reported apart.

Orders come from the read model (PostgreSQL's ``orders``), payments from the gateway's
``GET /v1/payments``, matched by the payment's reference, which is the order id. Tests and
benchmarks call ``check_money`` after a run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg

from conveyor.infra.settings import ServiceUrls


@dataclass(frozen=True)
class Discrepancy:
    """An order whose money at the gateway is not what its status says it should be."""

    order_id: str
    # None: the gateway keeps money under a reference that is no order.
    status: str | None
    total: Decimal
    kept: Decimal

    @property
    def expected(self) -> Decimal:
        return self.total if self.status == "confirmed" else Decimal("0.00")

    def __str__(self) -> str:
        return (
            f"order {self.order_id} ({self.status or 'unknown'}, total {self.total}): "
            f"the gateway keeps {self.kept}, expected {self.expected}"
        )


@dataclass(frozen=True)
class MoneyCheck:
    orders_checked: int
    discrepancies: list[Discrepancy]
    pending: list[str]

    @property
    def settled(self) -> bool:
        """No discrepancy and nothing pending."""
        return not self.discrepancies and not self.pending

    def __str__(self) -> str:
        lines = [
            f"{self.orders_checked} orders checked: {len(self.discrepancies)} discrepancies, "
            f"{len(self.pending)} pending",
            *(f"  {discrepancy}" for discrepancy in self.discrepancies),
            *(f"  order {order_id} is still pending" for order_id in self.pending),
        ]
        return "\n".join(lines)


def kept_by(payment: Mapping[str, Any]) -> Decimal:
    """What one payment of the ledger keeps of the customer's money."""
    if payment["status"] != "authorized":
        return Decimal("0.00")
    return Decimal(payment["amount"]) - Decimal(payment["amount_refunded"])


def gateway_session(urls: ServiceUrls) -> aiohttp.ClientSession:
    """A session that reaches the gateway as the payments processor does: with its API key,
    trusting what it trusts."""
    key = urls.payment_gateway_api_key.get_secret_value()
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(ssl=urls.payment_gateway_tls()),
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )


async def gateway_ledger(urls: ServiceUrls, reference: str | None = None) -> list[dict[str, Any]]:
    """Every payment the gateway holds, or those made with ``reference`` (an order id)."""
    params = {} if reference is None else {"reference": reference}
    async with (
        gateway_session(urls) as session,
        session.get(f"{urls.payment_gateway_url.rstrip('/')}/v1/payments", params=params) as answer,
    ):
        answer.raise_for_status()
        items: list[dict[str, Any]] = (await answer.json())["items"]
        return items


async def check_money(urls: ServiceUrls, order_ids: Collection[UUID] | None = None) -> MoneyCheck:
    """The discrepancies between the gateway's ledger and the orders' statuses.

    ``order_ids`` limits the check to those orders (a test's own, on a shared stack); without
    it every order is checked, and money kept under a reference that is no order is a
    discrepancy too.
    """
    kept: dict[str, Decimal] = {}
    for payment in await gateway_ledger(urls):
        reference = str(payment["reference"])
        kept[reference] = kept.get(reference, Decimal("0.00")) + kept_by(payment)
    connection = await asyncpg.connect(urls.database_url)
    try:
        if order_ids is None:
            rows = await connection.fetch("SELECT id, status, total FROM orders")
        else:
            rows = await connection.fetch(
                "SELECT id, status, total FROM orders WHERE id = ANY($1::uuid[])",
                list(order_ids),
            )
    finally:
        await connection.close()
    discrepancies: list[Discrepancy] = []
    pending: list[str] = []
    for row in rows:
        order_id, status, total = str(row["id"]), str(row["status"]), Decimal(row["total"])
        if status == "pending":
            pending.append(order_id)
            continue
        found = kept.get(order_id, Decimal("0.00"))
        expected = total if status == "confirmed" else Decimal("0.00")
        if found != expected:
            discrepancies.append(Discrepancy(order_id, status, total, found))
    known = {str(row["id"]) for row in rows}
    if order_ids is None:
        discrepancies.extend(
            Discrepancy(reference, None, Decimal("0.00"), amount)
            for reference, amount in kept.items()
            if reference not in known and amount != 0
        )
    else:
        # An order the read model has not seen yet is not settled either.
        pending.extend(str(order_id) for order_id in order_ids if str(order_id) not in known)
    return MoneyCheck(len(rows), discrepancies, pending)
