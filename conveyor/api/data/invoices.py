"""An order's invoice as the edge hands it out: the one issued, or issued now.

The invoice is issued by whichever component gets there first (conveyor.infra.invoices); the
projector normally has, by the time a customer asks. When it is behind (the order is
confirmed in Redis, or in the row, but no invoice is recorded yet) the edge issues it itself
rather than answer "try later": ``ensure_invoice`` is idempotent, and the projector then finds
it issued.
"""

from __future__ import annotations

from conveyor.api.data.base import Pool, database_errors
from conveyor.api.errors import Conflict
from conveyor.domain.messages import OrderStatus
from conveyor.domain.rest import OrderPublic
from conveyor.infra import invoices
from conveyor.infra.errors import NoInvoice

_NONE_FOR = {
    OrderStatus.PENDING: "it gets one once it is confirmed",
    OrderStatus.REJECTED: "it was rejected, so it never will",
}


async def invoice_of(pool: Pool, order: OrderPublic) -> invoices.Invoice:
    """``order``'s invoice (the order as the caller may see it); Conflict when it has none."""
    if order.status in _NONE_FOR:
        raise Conflict(
            f"order {order.id} has no invoice: {_NONE_FOR[order.status]}",
            order_status=order.status.value,
        )
    async with database_errors():
        issued = await invoices.find_invoice(pool, order.id)
        if issued is not None:
            return issued
        try:
            return await invoices.ensure_invoice(
                pool, order.id, known_confirmed=order.status is OrderStatus.CONFIRMED
            )
        except NoInvoice as missing:
            raise Conflict(
                f"order {order.id} has no invoice: it was cancelled before it was confirmed, "
                "or its confirmation is still on its way (retry shortly)",
                order_status=order.status.value,
            ) from missing
