"""``notifications``: one email to the customer per terminal order event.

It remembers each order's customer from OrderPlaced (a table keyed by order_id, co-partitioned
with ``orders.events``). Each email is claimed in PostgreSQL (``notifications``, unique per
order and event) in the same transaction that sends it: a redelivered event finds the claim
and sends nothing; a crash before the commit leaves no claim, so the email is sent again
rather than lost.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from pydantic import BaseModel, ConfigDict

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.domain.topics import PROCESSOR_INPUTS
from conveyor.streams import mail, metrics
from conveyor.streams.runtime import Processor, Refused

_NAMESPACE = uuid.UUID("0c3f8a4e-2b71-4f0e-8d7a-5f6b9e1d2c34")

_SUBJECTS = {
    "OrderConfirmed": "Your order {short} is confirmed",
    "OrderRejected": "Your order {short} could not be completed",
    "OrderCancelled": "Your order {short} is cancelled",
}
_BODIES = {
    "OrderConfirmed": "Thank you! We have your payment and your order {order} is confirmed.",
    "OrderRejected": "We are sorry: your order {order} could not be completed ({reason}).",
    "OrderCancelled": "Your order {order} is cancelled; anything you paid is refunded.",
}


def notification_id_for(order_id: uuid.UUID, event: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{order_id}:{event}")


class Customer(BaseModel):
    """Who to write to about an order, remembered from its OrderPlaced."""

    model_config = ConfigDict(extra="forbid")

    email: str
    user_id: str


def register(processor: Processor) -> None:
    customers = processor.state_table("customers", Customer)
    # An order's customer is kept for the retention window after its last event (placed,
    # then each terminal event): enough for its saga to finish and to be cancelled later.
    retention = processor.settings.state_retention_seconds
    pool: asyncpg.Pool | None = None

    async def database() -> asyncpg.Pool:
        nonlocal pool
        if pool is None:
            pool = await asyncpg.create_pool(processor.urls.database_url, min_size=1, max_size=4)
        return pool

    async def on_message(envelope: Envelope[m.Message], key: str) -> None:
        message = envelope.payload
        if isinstance(message, m.OrderPlaced):
            customer = Customer(email=message.customer_email, user_id=str(message.user_id))
            customers.put(str(message.order_id), customer, expires_in=retention)
            return
        if not isinstance(message, (m.OrderConfirmed, m.OrderRejected, m.OrderCancelled)):
            return
        order = str(message.order_id)
        found = customers.get(order)
        if found is None:
            raise Refused(f"no OrderPlaced seen for order {message.order_id}: no recipient")
        customers.put(order, found, expires_in=retention)
        sent = await _notify(await database(), processor, message, found.email)
        await processor.emit(sent, cause=envelope, event_id=sent.notification_id)

    processor.handle(PROCESSOR_INPUTS["notifications"], on_message)

    @processor.app.on_before_shutdown.connect
    async def close_pool(*_: object, **__: object) -> None:
        if pool is not None:
            await pool.close()


async def _notify(
    pool: asyncpg.Pool,
    processor: Processor,
    event: m.OrderConfirmed | m.OrderRejected | m.OrderCancelled,
    recipient: str,
) -> m.NotificationSent:
    notification_id = notification_id_for(event.order_id, event.type)
    subject = _SUBJECTS[event.type].format(short=str(event.order_id)[:8])
    reason = event.reason.value if isinstance(event, m.OrderRejected) else ""
    body = _BODIES[event.type].format(order=event.order_id, reason=reason.replace("_", " "))
    async with pool.acquire() as connection, connection.transaction():
        claimed = await connection.fetchrow(
            """
            INSERT INTO notifications (id, user_id, order_id, event, recipient, subject, sent_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (order_id, event) DO NOTHING
            RETURNING sent_at
            """,
            notification_id,
            event.user_id,
            event.order_id,
            event.type,
            recipient,
            subject,
            datetime.now(UTC),
        )
        if claimed is not None:
            email = mail.compose(notification_id, recipient, subject, body)
            await mail.send(processor.urls.smtp_url, email)
            metrics.EMAILS_SENT.labels(event.type).inc()
            sent_at = claimed["sent_at"]
        else:
            sent_at = await connection.fetchval(
                "SELECT sent_at FROM notifications WHERE order_id = $1 AND event = $2",
                event.order_id,
                event.type,
            )
    return m.NotificationSent(
        notification_id=notification_id,
        order_id=event.order_id,
        user_id=event.user_id,
        recipient=recipient,
        order_event=event.type,
        subject=subject,
        sent_at=sent_at,
    )
