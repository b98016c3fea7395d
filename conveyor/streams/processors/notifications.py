"""``notifications``: one email to the customer per terminal order event.

It remembers each order's customer from OrderPlaced (a table keyed by order_id, co-partitioned
with ``orders.events``) and handles ``orders.events`` a batch at a time:

1. The records are decided in order. OrderPlaced keeps the order's customer; a terminal event
   (OrderConfirmed, OrderRejected, OrderCancelled) calls for an email to that customer; one
   whose OrderPlaced was never seen has no recipient and goes alone to the DLQ. An order
   placed without an address (the customer's was not verified) calls for none.
2. The batch's emails are claimed in PostgreSQL in one statement: a row per order and event in
   ``notifications``, new ones with ``sent_at`` NULL (claimed, not sent). The claim tells,
   for each email, whether it was already recorded sent.
3. The emails not yet sent go to the mail server, one after another over one SMTP connection
   kept open across batches. No transaction is open meanwhile.
4. The times the server accepted them are recorded in one statement (``sent_at``). Then
   NotificationSent goes out for every terminal event of the batch, with the recorded
   ``sent_at``, and the records are acknowledged.

What that guarantees:

- No email is lost. A record is acknowledged only once its email is recorded sent or its
  event parked: a mail server or database that fails delays the email, parked on
  ``orders.events.retry`` and tried again later (the events behind it go on); one whose tries
  all fail goes to ``orders.events.dlq`` with the error, to be redriven. A failed send closes
  the connection; the next try opens a new one.
- An email is sent again only when its acceptance by the server was not recorded: the
  processor stopped (or its partition moved to another worker) between steps 3 and 4 (the
  row stays claimed but unsent, so the redelivered event sends it once more), or the
  connection broke before the server's answer arrived. Each such interruption sends it at
  most once more, always with the same Message-ID (``notification_id_for``), which mail
  clients show once. Accepted emails are kept in memory until recorded, so a database
  failure in step 4 sends nothing twice.
- A redelivered event whose email is recorded sent sends nothing: it only announces
  NotificationSent again, with the recorded ``sent_at`` and the same event id.

The confirmation carries the order's invoice as a PDF (``invoice-2026-000042.pdf``). Before
sending it, step 3 calls ``ensure_invoice`` (``conveyor.infra.invoices``), which issues the
invoice if the projector has not yet, in a transaction of its own committed before the mail
server is spoken to. An email sent again carries the same invoice: it has one number for good.
An order whose row the projector has not written yet (it was placed without the edge) delays
its confirmation: the record is parked like one the mail server refused.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message

import asyncpg
from pydantic import BaseModel, ConfigDict

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.infra import invoices, mail
from conveyor.infra.errors import NoInvoice
from conveyor.infra.invoice_pdf import render_invoice
from conveyor.streams import metrics
from conveyor.streams.errors import ServiceUnavailable
from conveyor.streams.runtime import Decided, Processor, Refused, Send, Sends
from conveyor.streams.state import StateTable

_NAMESPACE = uuid.UUID("0c3f8a4e-2b71-4f0e-8d7a-5f6b9e1d2c34")
SENDER = "Conveyor <orders@conveyor.local>"

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

TerminalEvent = m.OrderConfirmed | m.OrderRejected | m.OrderCancelled

# New rows are claims (sent_at NULL). On a conflict the existing row is "updated" to itself:
# unlike DO NOTHING, that returns it, so one statement tells which emails were already sent
# (and it waits for another worker's claim of the same email to commit first).
_CLAIM = """
    INSERT INTO notifications (id, user_id, order_id, event, recipient, subject)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[])
    ON CONFLICT (order_id, event) DO UPDATE SET sent_at = notifications.sent_at
    RETURNING id, sent_at
"""
# The first recorded time stays: an email recorded sent is never sent again, so it has one.
_RECORD_SENT = """
    UPDATE notifications SET sent_at = coalesce(notifications.sent_at, accepted.sent_at)
    FROM unnest($1::uuid[], $2::timestamptz[]) AS accepted(id, sent_at)
    WHERE notifications.id = accepted.id
    RETURNING notifications.id, notifications.sent_at
"""


def notification_id_for(order_id: uuid.UUID, event: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{order_id}:{event}")


class Customer(BaseModel):
    """Who to write to about an order, remembered from its OrderPlaced."""

    model_config = ConfigDict(extra="forbid")

    # None: the customer's address was not verified when the order was placed, so none of
    # the order's e-mails is sent (nor recorded).
    email: str | None
    user_id: str


@dataclass(frozen=True)
class Email:
    """The email a terminal order event calls for."""

    notification_id: uuid.UUID
    event: TerminalEvent
    recipient: str
    subject: str
    body: str

    @classmethod
    def about(cls, event: TerminalEvent, recipient: str) -> Email:
        reason = event.reason.value if isinstance(event, m.OrderRejected) else ""
        return cls(
            notification_id=notification_id_for(event.order_id, event.type),
            event=event,
            recipient=recipient,
            subject=_SUBJECTS[event.type].format(short=str(event.order_id)[:8]),
            body=_BODIES[event.type].format(order=event.order_id, reason=reason.replace("_", " ")),
        )

    def message(self, invoice: invoices.Invoice | None = None) -> Message:
        """The email; with the order's ``invoice`` as a PDF attached, when given."""
        if invoice is None:
            return mail.compose(
                self.notification_id, SENDER, self.recipient, self.subject, self.body
            )
        body = f"{self.body}\n\nYour invoice {invoice.display_number} is attached."
        pdf = mail.Attachment(invoice.filename, render_invoice(invoice))
        return mail.compose(self.notification_id, SENDER, self.recipient, self.subject, body, [pdf])

    def sent(self, sent_at: datetime) -> m.NotificationSent:
        return m.NotificationSent(
            notification_id=self.notification_id,
            order_id=self.event.order_id,
            user_id=self.event.user_id,
            recipient=self.recipient,
            order_event=self.event.type,
            subject=self.subject,
            sent_at=sent_at,
        )


class Outbox:
    """Claims, sends and records the emails of a batch (steps 2 to 4 above)."""

    def __init__(self, database_url: str, mailer: mail.Mailer) -> None:
        self.database_url = database_url
        self.mailer = mailer
        self._pool: asyncpg.Pool | None = None
        # Emails the server accepted whose sent_at is not recorded yet (the database failed
        # or the batch was interrupted): a retry records them instead of sending them again.
        self._accepted: dict[uuid.UUID, datetime] = {}
        # The inputs' batches and the parked ones' are delivered one at a time: they share
        # the SMTP connection and the accepted emails not yet recorded.
        self._delivering = asyncio.Lock()

    async def deliver(self, batch: Sequence[Decided[Email | None]]) -> Sends:
        async with self._delivering:
            return await self._deliver(batch)

    async def _deliver(self, batch: Sequence[Decided[Email | None]]) -> Sends:
        emails = {
            record.decision.notification_id: record.decision
            for record in batch
            if record.decision is not None
        }
        if not emails:
            return []
        pool = await self._database()
        recorded = await _claim(pool, list(emails.values()))
        try:
            for notification_id, email in emails.items():
                if recorded[notification_id] is None and notification_id not in self._accepted:
                    # Issued (or found) in its own short transaction, committed before the
                    # mail server is spoken to; the same invoice each time it is sent again.
                    invoice = await _invoice_for(pool, email.event)
                    await self.mailer.send(email.message(invoice))
                    self._accepted[notification_id] = datetime.now(UTC)
                    metrics.EMAILS_SENT.labels(email.event.type).inc()
        finally:
            # Also when a send failed: what the server accepted is recorded before the
            # failure is retried, so a processor stopped while it waits sends none of it again.
            if self._accepted:
                recorded.update(await self._record_accepted(pool))
        sends: list[tuple[Send, Envelope[m.Message]]] = []
        for record in batch:
            if record.decision is None:
                continue
            email = record.decision
            sent_at = recorded[email.notification_id]
            if sent_at is None:  # each was sent and recorded above: a bug, not to be acked
                raise RuntimeError(f"email {email.notification_id} is not recorded sent")
            sends.append(
                (Send(email.sent(sent_at), event_id=email.notification_id), record.envelope)
            )
        return sends

    async def close(self) -> None:
        await self.mailer.close()
        if self._pool is not None:
            await self._pool.close()

    async def _database(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=2)
        return self._pool

    async def _record_accepted(self, pool: asyncpg.Pool) -> dict[uuid.UUID, datetime | None]:
        accepted = dict(self._accepted)
        rows = await pool.fetch(_RECORD_SENT, list(accepted), list(accepted.values()))
        for notification_id in accepted:
            del self._accepted[notification_id]
        return {row["id"]: row["sent_at"] for row in rows}


# How long a confirmation waits for its order's row in PostgreSQL before its email is parked.
INVOICE_ROW_WAIT_SECONDS = 10.0
INVOICE_ROW_POLL_SECONDS = 0.5


class InvoiceNotReady(ServiceUnavailable):
    """The confirmed order's row is not in PostgreSQL yet (placed without the edge, and the
    projector is behind): its email, which carries the invoice, waits for it."""


async def _invoice_for(pool: asyncpg.Pool, event: TerminalEvent) -> invoices.Invoice | None:
    """The invoice a confirmation carries, issued now if the projector has not yet.

    An order placed through the edge has its row from the start. One placed another way gets
    it from the projector, which may be a few seconds behind: waiting for it here a little
    costs less than parking the email, whose retries back off to minutes.
    """
    if not isinstance(event, m.OrderConfirmed):
        return None
    waited = 0.0
    while True:
        try:
            return await invoices.ensure_invoice(pool, event.order_id, known_confirmed=True)
        except NoInvoice as missing:
            if waited >= INVOICE_ROW_WAIT_SECONDS:
                raise InvoiceNotReady(str(missing)) from missing
        await asyncio.sleep(INVOICE_ROW_POLL_SECONDS)
        waited += INVOICE_ROW_POLL_SECONDS


async def _claim(pool: asyncpg.Pool, emails: list[Email]) -> dict[uuid.UUID, datetime | None]:
    """Claim every email not claimed yet; returns each one's recorded ``sent_at`` (or None)."""
    rows = await pool.fetch(
        _CLAIM,
        [email.notification_id for email in emails],
        [email.event.user_id for email in emails],
        [email.event.order_id for email in emails],
        [email.event.type for email in emails],
        [email.recipient for email in emails],
        [email.subject for email in emails],
    )
    return {row["id"]: row["sent_at"] for row in rows}


def register(processor: Processor) -> None:
    """The Faust glue: ``orders.events`` a batch at a time, decided, then delivered."""
    recipients = Recipients(
        processor.state_table("customers", Customer),
        retention_seconds=processor.settings.state_retention_seconds,
    )
    outbox = Outbox(
        processor.urls.database_url,
        mail.Mailer(processor.urls.smtp_url, metrics.SMTP_CONNECTIONS),
    )
    processor.decide_and_act_in_batches(processor.spec.inputs, recipients.decide, outbox.deliver)

    @processor.app.on_before_shutdown.connect
    async def close_outbox(*_: object, **__: object) -> None:
        await outbox.close()


class Recipients:
    """Step 1 above, the per-record decision (``Decider``) over the ``customers`` table."""

    def __init__(self, customers: StateTable[Customer], *, retention_seconds: float) -> None:
        self.customers = customers
        # An order's customer is kept for the retention window after its last event (placed,
        # then each terminal event): enough for its saga to finish and to be cancelled later.
        self.retention_seconds = retention_seconds

    def decide(self, envelope: Envelope[m.Message], key: str) -> Email | None:
        message = envelope.payload
        if isinstance(message, m.OrderPlaced):
            customer = Customer(email=message.customer_email, user_id=str(message.user_id))
            self.customers.put(str(message.order_id), customer, expires_in=self.retention_seconds)
            return None
        if not isinstance(message, (m.OrderConfirmed, m.OrderRejected, m.OrderCancelled)):
            return None
        order = str(message.order_id)
        found = self.customers.get(order)
        if found is None:
            raise Refused(f"no OrderPlaced seen for order {message.order_id}: no recipient")
        self.customers.put(order, found, expires_in=self.retention_seconds)
        return None if found.email is None else Email.about(message, found.email)
