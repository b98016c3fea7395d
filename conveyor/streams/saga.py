"""The order saga's decisions, free of Kafka: given an order's state and a message, what next.

The saga as a state diagram, and what it guarantees: ``docs/architecture.md#the-order-saga``.

The ``orders`` processor keeps one ``OrderSaga`` per order in its table and applies
``decide`` to every command and reply. ``decide`` is deterministic and idempotent: applying
a message the saga has already seen changes nothing and sends nothing the saga's partners
would act on twice, which is what makes at-least-once delivery safe.

An order moves through phases:

- ``reserving``: one ReserveStock per line is out; waiting for a reply for each.
- ``authorizing``: every line is reserved; AuthorizePayment is out.
- ``compensating``: something failed, the customer cancelled or the deadline passed;
  ReleaseStock is out for every line, with RefundPayment when money was taken and
  VoidPayment when the gateway may hold money the saga never heard of (a
  ``payment_unavailable`` answer, or the deadline passing while authorizing). The terminal
  event is published only once every line's stock came back and the refund or void is done,
  so a terminal status always means the stock and money figures are final.
- ``done``: the order is confirmed (it may still be cancelled), rejected or cancelled.

Every open saga has a deadline (``OrderSaga.deadline``). The processor's timer applies
``DeadlinePassed`` through ``decide`` once it is past: an order still reserving or
authorizing is compensated and rejected ``timed_out``; an order compensating sends the
compensation commands whose replies are still missing again (each is idempotent) and gets a
new deadline, so a lost reply never leaves an order pending forever.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from conveyor.domain import messages as m

Phase = Literal["reserving", "authorizing", "compensating", "done"]


@dataclass(frozen=True)
class Timing:
    """When a decision is made (Unix time), and how long an order may wait for its next step."""

    now: float
    deadline_seconds: float

    @property
    def next_deadline(self) -> float:
        return self.now + self.deadline_seconds


@dataclass(frozen=True)
class DeadlinePassed:
    """Not a message: the processor's timer, telling the saga its deadline has come."""

    type: Literal["DeadlinePassed"] = "DeadlinePassed"


DEADLINE_PASSED = DeadlinePassed()

# Terminal events get an id derived from the order, so a saga that runs a step again after a
# crash publishes the very same event, and consumers that deduplicate by event id see one.
_EVENT_NAMESPACE = uuid.UUID("6f1c1f52-5a3b-4d8e-9b8a-3c2d7e0f4a11")


def event_id_for(order_id: UUID, event_type: str) -> UUID:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{order_id}:{event_type}")


class OrderSaga(BaseModel):
    """One order's progress, as kept in the ``orders`` table."""

    model_config = ConfigDict(extra="forbid")

    order: m.PlaceOrder
    status: m.OrderStatus = m.OrderStatus.PENDING
    phase: Phase = "reserving"
    reason: m.RejectionReason | None = None
    # What the saga ends in once compensation is done: rejected (with reason) or cancelled.
    outcome: Literal["rejected", "cancelled"] | None = None
    reserved: list[UUID] = []
    released: list[UUID] = []
    cancel_requested: bool = False
    payment_id: str | None = None
    refund_pending: bool = False
    # VoidPayment is out: the gateway may hold money for the order under its reference.
    void_pending: bool = False
    # Unix times: when the saga was placed, and when it acts if nothing moved it on (None
    # once done). A saga stored by an earlier version has neither: the processor gives it a
    # deadline from when it first finds it.
    placed_at: float | None = None
    deadline: float | None = None

    @property
    def products(self) -> list[UUID]:
        return [line.product_id for line in self.order.items]


@dataclass
class Decision:
    """The saga's new state and the messages to send, in order."""

    saga: OrderSaga | None
    outputs: list[m.Message] = field(default_factory=list)
    # Why a message changed nothing (for logs and metrics), empty when it did something.
    ignored: str = ""


def decide(saga: OrderSaga | None, message: m.Message | DeadlinePassed, timing: Timing) -> Decision:
    if isinstance(message, m.PlaceOrder):
        return _place(saga, message, timing)
    if saga is None:
        return Decision(None, ignored=f"{message.type} for an order this saga never placed")
    # Work on a copy: the caller's state stays as it was until it stores the decision. The
    # order itself is never changed, so only the lists the steps append to are copied.
    saga = saga.model_copy(update={"reserved": [*saga.reserved], "released": [*saga.released]})
    match message:
        case DeadlinePassed():
            return _deadline_passed(saga, timing)
        case m.CancelOrder():
            return _cancel(saga, timing)
        case m.StockReserved(product_id=product):
            return _reserved(saga, product)
        case m.StockRejected():
            return _reservation_failed(saga, timing)
        case m.StockReleased(product_id=product):
            return _released(saga, product)
        case m.PaymentAuthorized(payment_id=payment_id):
            return _authorized(saga, payment_id, timing)
        case m.PaymentDeclined(reason=reason):
            return _declined(saga, m.RejectionReason(reason), timing)
        case m.PaymentRefunded():
            return _refunded(saga)
        case m.PaymentVoided():
            return _voided(saga)
    return Decision(saga, ignored=f"{message.type} is not a saga message")


def _place(saga: OrderSaga | None, order: m.PlaceOrder, timing: Timing) -> Decision:
    if saga is not None:
        return Decision(saga, ignored="duplicate PlaceOrder")
    placed = m.OrderPlaced(**order.model_dump(exclude={"type", "payment_token"}))
    reservations: list[m.Message] = [
        m.ReserveStock(product_id=line.product_id, order_id=order.order_id, quantity=line.quantity)
        for line in order.items
    ]
    saga = OrderSaga(order=order, placed_at=timing.now, deadline=timing.next_deadline)
    return Decision(saga, [placed, *reservations])


def _cancel(saga: OrderSaga, timing: Timing) -> Decision:
    if saga.cancel_requested or saga.status in (m.OrderStatus.REJECTED, m.OrderStatus.CANCELLED):
        return Decision(saga, ignored=f"cancel of a {saga.status} order")
    saga.cancel_requested = True
    if saga.phase == "reserving":
        return _compensate(saga, timing, "cancelled", None)
    if saga.phase == "authorizing":
        # The payment's answer is on its way; compensation starts when it arrives.
        return Decision(saga)
    if saga.phase == "compensating":
        # Already unwinding (a rejection); that outcome stands.
        return Decision(saga, ignored="cancel while the order is already being rejected")
    # Confirmed: refund the payment and return the sold stock.
    return _compensate(saga, timing, "cancelled", None, refund=True)


def _reserved(saga: OrderSaga, product: UUID) -> Decision:
    if product in saga.reserved or product not in saga.products:
        return Decision(saga, ignored="StockReserved already counted")
    saga.reserved.append(product)
    if saga.phase != "reserving" or len(saga.reserved) < len(saga.products):
        # Either more lines to go, or compensation already releases this line too.
        return Decision(saga)
    saga.phase = "authorizing"
    order = saga.order
    authorize = m.AuthorizePayment(
        order_id=order.order_id,
        amount=order.total,
        currency=order.currency,
        payment_token=order.payment_token,
    )
    return Decision(saga, [authorize])


def _reservation_failed(saga: OrderSaga, timing: Timing) -> Decision:
    if saga.phase != "reserving":
        return Decision(saga, ignored="StockRejected after the saga moved on")
    return _compensate(saga, timing, "rejected", m.RejectionReason.OUT_OF_STOCK)


def _authorized(saga: OrderSaga, payment_id: str, timing: Timing) -> Decision:
    if saga.phase != "authorizing":
        # After a deadline or a payment_unavailable answer the saga sent VoidPayment, which
        # travels behind the AuthorizePayment on the order's payments partition: it finds
        # this authorization by the order's reference and gives the money back.
        return Decision(saga, ignored="PaymentAuthorized after the saga moved on")
    saga.payment_id = payment_id
    if saga.cancel_requested:
        return _compensate(saga, timing, "cancelled", None, refund=True)
    saga.phase = "done"
    saga.deadline = None
    saga.status = m.OrderStatus.CONFIRMED
    order = saga.order
    commits: list[m.Message] = [
        m.CommitStock(product_id=product, order_id=order.order_id) for product in saga.products
    ]
    confirmed = m.OrderConfirmed(
        order_id=order.order_id, user_id=order.user_id, payment_id=payment_id
    )
    return Decision(saga, [*commits, confirmed])


def _declined(saga: OrderSaga, reason: m.RejectionReason, timing: Timing) -> Decision:
    if saga.phase != "authorizing":
        return Decision(saga, ignored="PaymentDeclined after the saga moved on")
    # A decline is the gateway's answer; "unavailable" means no answer, so the gateway may
    # hold an authorization the saga never heard of.
    void = reason == m.RejectionReason.PAYMENT_UNAVAILABLE
    if saga.cancel_requested:
        return _compensate(saga, timing, "cancelled", None, void=void)
    return _compensate(saga, timing, "rejected", reason, void=void)


def _released(saga: OrderSaga, product: UUID) -> Decision:
    if saga.phase != "compensating" or product in saga.released:
        return Decision(saga, ignored="StockReleased already counted")
    if product not in saga.products:
        return Decision(saga, ignored="StockReleased for a product not on the order")
    saga.released.append(product)
    return _finish_if_compensated(saga)


def _refunded(saga: OrderSaga) -> Decision:
    if not saga.refund_pending:
        return Decision(saga, ignored="PaymentRefunded already counted")
    saga.refund_pending = False
    return _finish_if_compensated(saga)


def _voided(saga: OrderSaga) -> Decision:
    if not saga.void_pending:
        return Decision(saga, ignored="PaymentVoided already counted")
    saga.void_pending = False
    return _finish_if_compensated(saga)


def _deadline_passed(saga: OrderSaga, timing: Timing) -> Decision:
    # A saga stored before deadlines existed has none: the processor's index gave it one.
    if saga.deadline is not None and saga.deadline > timing.now:
        return Decision(saga, ignored="deadline not reached")
    if saga.phase == "reserving":
        return _compensate(saga, timing, "rejected", m.RejectionReason.TIMED_OUT)
    if saga.phase == "authorizing":
        # The payment's answer may still come (or may have been lost): whatever the gateway
        # did under the order's reference is given back by VoidPayment.
        if saga.cancel_requested:
            return _compensate(saga, timing, "cancelled", None, void=True)
        return _compensate(saga, timing, "rejected", m.RejectionReason.TIMED_OUT, void=True)
    if saga.phase == "compensating":
        # A reply is missing: ask again for what is still owed (every command is
        # idempotent); the terminal event still waits for the replies.
        saga.deadline = timing.next_deadline
        return Decision(saga, _still_owed(saga))
    return Decision(saga, ignored="deadline of a finished order")


def _compensate(
    saga: OrderSaga,
    timing: Timing,
    outcome: Literal["rejected", "cancelled"],
    reason: m.RejectionReason | None,
    *,
    refund: bool = False,
    void: bool = False,
) -> Decision:
    """Give back everything the order holds; the terminal event follows the last reply."""
    saga.phase = "compensating"
    saga.outcome = outcome
    saga.reason = reason
    saga.deadline = timing.next_deadline
    if refund:
        assert saga.payment_id is not None
        saga.refund_pending = True
    saga.void_pending = void
    return Decision(saga, _still_owed(saga))


def _still_owed(saga: OrderSaga) -> list[m.Message]:
    """The compensation commands whose replies have not come yet."""
    order = saga.order
    # Every line, reserved or not: a release travels behind its line's reservation on the
    # product's partition, so whatever that reservation did is undone.
    outputs: list[m.Message] = [
        m.ReleaseStock(product_id=product, order_id=order.order_id)
        for product in saga.products
        if product not in saga.released
    ]
    if saga.refund_pending:
        assert saga.payment_id is not None
        outputs.append(
            m.RefundPayment(
                order_id=order.order_id,
                payment_id=saga.payment_id,
                amount=order.total,
                currency=order.currency,
            )
        )
    if saga.void_pending:
        outputs.append(m.VoidPayment(order_id=order.order_id))
    return outputs


def _finish_if_compensated(saga: OrderSaga) -> Decision:
    if saga.refund_pending or saga.void_pending or len(saga.released) < len(saga.products):
        return Decision(saga)
    order = saga.order
    saga.phase = "done"
    saga.deadline = None
    terminal: m.Message
    if saga.outcome == "rejected":
        assert saga.reason is not None
        saga.status = m.OrderStatus.REJECTED
        terminal = m.OrderRejected(
            order_id=order.order_id, user_id=order.user_id, reason=saga.reason
        )
    else:
        saga.status = m.OrderStatus.CANCELLED
        terminal = m.OrderCancelled(order_id=order.order_id, user_id=order.user_id)
    return Decision(saga, [terminal])
