"""The saga's and the inventory's decisions on their own: every step, every redelivery, and
random interleavings of many orders over scarce stock."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from uuid import UUID

import pytest

from conveyor.domain import messages as m
from conveyor.streams.deadlines import OpenOrders
from conveyor.streams.saga import DEADLINE_PASSED, DeadlinePassed, OrderSaga, Timing, decide
from conveyor.streams.stock import (
    Hold,
    ProductStock,
    StockDecision,
    StockRefused,
    apply,
    hold_key,
)

PRICE = Decimal("5.00")
DEADLINE_SECONDS = 120.0
# Every decision below is made at this time, unless a test moves the clock past a deadline.
AT = Timing(now=1_000.0, deadline_seconds=DEADLINE_SECONDS)


def place(*products: UUID, token: str = "tok_visa") -> m.PlaceOrder:
    lines = tuple(
        m.OrderLine(product_id=p, quantity=1, unit_price=PRICE, subtotal=PRICE) for p in products
    )
    return m.PlaceOrder(
        order_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        customer_email="ada@example.com",
        items=lines,
        currency="EUR",
        total=PRICE * len(lines),
        payment_token=token,
    )


def run(
    saga: OrderSaga | None, *messages: m.Message | DeadlinePassed, timing: Timing = AT
) -> tuple[OrderSaga, list[m.Message]]:
    outputs: list[m.Message] = []
    for message in messages:
        decision = decide(saga, message, timing)
        saga = decision.saga
        outputs.extend(decision.outputs)
    assert saga is not None
    return saga, outputs


def authorizing(*products: UUID) -> tuple[m.PlaceOrder, OrderSaga]:
    """An order of one unit of each of ``products``, all reserved: AuthorizePayment is out."""
    order = place(*products)
    reserved = [
        m.StockReserved(order_id=order.order_id, product_id=p, quantity=1) for p in products
    ]
    saga, _ = run(None, order, *reserved)
    assert saga.phase == "authorizing"
    return order, saga


def types(messages: list[m.Message]) -> list[str]:
    return [message.type for message in messages]


def test_placing_asks_for_every_line_and_announces_the_order() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    saga, outputs = run(None, order)
    assert types(outputs) == ["OrderPlaced", "ReserveStock", "ReserveStock"]
    assert saga.status == m.OrderStatus.PENDING
    assert decide(saga, order, AT).outputs == []


def test_the_happy_path_confirms_after_the_last_reservation_and_the_payment() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    oid = order.order_id
    saga, _ = run(None, order, m.StockReserved(order_id=oid, product_id=a, quantity=1))
    assert saga.phase == "reserving"
    saga, outputs = run(saga, m.StockReserved(order_id=oid, product_id=b, quantity=1))
    assert types(outputs) == ["AuthorizePayment"]
    saga, outputs = run(
        saga,
        m.PaymentAuthorized(order_id=oid, payment_id="pay_1", amount=order.total, currency="EUR"),
    )
    assert types(outputs) == ["CommitStock", "CommitStock", "OrderConfirmed"]
    assert saga.status == m.OrderStatus.CONFIRMED


def test_a_decision_leaves_the_stored_saga_as_it_was() -> None:
    # The processor keeps the stored saga until it writes the decision's: a decision that
    # changed it in place would leak into a batch's view of a record that then failed.
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    stored, _ = run(None, order, m.StockReserved(order_id=order.order_id, product_id=a, quantity=1))
    before = stored.model_dump()
    decided, _ = run(stored, m.StockReserved(order_id=order.order_id, product_id=b, quantity=1))
    assert decided.reserved == [a, b]
    assert stored.model_dump() == before


def test_an_order_is_rejected_only_once_every_line_came_back() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    oid = order.order_id
    saga, outputs = run(
        None,
        order,
        m.StockReserved(order_id=oid, product_id=a, quantity=1),
        m.StockRejected(order_id=oid, product_id=b, requested=1, available=0),
    )
    assert types(outputs)[-2:] == ["ReleaseStock", "ReleaseStock"]
    assert saga.status == m.OrderStatus.PENDING
    saga, outputs = run(saga, m.StockReleased(order_id=oid, product_id=a, quantity=1))
    assert outputs == []
    saga, outputs = run(saga, m.StockReleased(order_id=oid, product_id=b, quantity=0))
    assert outputs == [
        m.OrderRejected(order_id=oid, user_id=order.user_id, reason=m.RejectionReason.OUT_OF_STOCK)
    ]


def test_a_declined_card_rejects_once_the_stock_is_back_and_voids_nothing() -> None:
    a = uuid.uuid4()
    order, saga = authorizing(a)
    oid = order.order_id
    saga, outputs = run(
        saga,
        m.PaymentDeclined(order_id=oid, reason=m.RejectionReason.PAYMENT_DECLINED, detail="no"),
    )
    # The gateway answered: it holds nothing, so there is nothing to void.
    assert types(outputs)[-1] == "ReleaseStock"
    saga, outputs = run(saga, m.StockReleased(order_id=oid, product_id=a, quantity=1))
    assert saga.status == m.OrderStatus.REJECTED
    assert outputs == [
        m.OrderRejected(
            order_id=oid, user_id=order.user_id, reason=m.RejectionReason.PAYMENT_DECLINED
        )
    ]


def test_a_payment_unavailable_answer_voids_and_rejects_only_after_the_void() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order, saga = authorizing(a, b)
    oid = order.order_id
    unavailable = m.PaymentDeclined(
        order_id=oid, reason=m.RejectionReason.PAYMENT_UNAVAILABLE, detail="timed out"
    )

    saga, outputs = run(saga, unavailable)

    # The gateway may have authorized without its answer arriving: give back whatever it holds.
    assert outputs == [
        m.ReleaseStock(product_id=a, order_id=oid),
        m.ReleaseStock(product_id=b, order_id=oid),
        m.VoidPayment(order_id=oid),
    ]
    saga, outputs = run(
        saga,
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
        m.StockReleased(order_id=oid, product_id=b, quantity=1),
    )
    assert (outputs, saga.status) == ([], m.OrderStatus.PENDING)
    saga, outputs = run(saga, m.PaymentVoided(order_id=oid, payment_ids=("pay_late",)))
    assert outputs == [
        m.OrderRejected(
            order_id=oid, user_id=order.user_id, reason=m.RejectionReason.PAYMENT_UNAVAILABLE
        )
    ]
    assert (saga.status, saga.deadline) == (m.OrderStatus.REJECTED, None)


def test_the_void_may_answer_before_the_stock_is_back() -> None:
    a = uuid.uuid4()
    order, saga = authorizing(a)
    oid = order.order_id
    saga, _ = run(
        saga,
        m.PaymentDeclined(
            order_id=oid, reason=m.RejectionReason.PAYMENT_UNAVAILABLE, detail="refused"
        ),
    )
    saga, outputs = run(saga, m.PaymentVoided(order_id=oid))
    assert outputs == []
    saga, outputs = run(saga, m.StockReleased(order_id=oid, product_id=a, quantity=1))
    assert types(outputs) == ["OrderRejected"]


def test_cancelling_while_the_gateway_does_not_answer_cancels_after_the_void() -> None:
    a = uuid.uuid4()
    order, saga = authorizing(a)
    oid = order.order_id
    saga, outputs = run(
        saga,
        m.CancelOrder(order_id=oid, requested_by=order.user_id),
        m.PaymentDeclined(
            order_id=oid, reason=m.RejectionReason.PAYMENT_UNAVAILABLE, detail="timed out"
        ),
    )
    assert types(outputs)[-2:] == ["ReleaseStock", "VoidPayment"]
    saga, outputs = run(
        saga,
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
        m.PaymentVoided(order_id=oid),
    )
    assert types(outputs) == ["OrderCancelled"]
    assert saga.status == m.OrderStatus.CANCELLED


def test_cancelling_while_the_payment_is_out_refunds_when_it_arrives() -> None:
    a = uuid.uuid4()
    order = place(a)
    oid = order.order_id
    saga, outputs = run(
        None,
        order,
        m.StockReserved(order_id=oid, product_id=a, quantity=1),
        m.CancelOrder(order_id=oid, requested_by=order.user_id),
    )
    assert types(outputs)[-1] == "AuthorizePayment"
    saga, outputs = run(
        saga,
        m.PaymentAuthorized(order_id=oid, payment_id="pay_1", amount=order.total, currency="EUR"),
    )
    assert types(outputs) == ["ReleaseStock", "RefundPayment"]
    saga, outputs = run(
        saga,
        m.PaymentRefunded(order_id=oid, payment_id="pay_1", amount=order.total, currency="EUR"),
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
    )
    assert types(outputs) == ["OrderCancelled"]
    assert saga.status == m.OrderStatus.CANCELLED


def test_every_reply_delivered_twice_changes_nothing_the_second_time() -> None:
    a = uuid.uuid4()
    order = place(a)
    oid = order.order_id
    replies: list[m.Message] = [
        m.StockReserved(order_id=oid, product_id=a, quantity=1),
        m.PaymentAuthorized(order_id=oid, payment_id="pay_1", amount=order.total, currency="EUR"),
        m.CancelOrder(order_id=oid, requested_by=order.user_id),
        m.PaymentRefunded(order_id=oid, payment_id="pay_1", amount=order.total, currency="EUR"),
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
        m.PaymentVoided(order_id=oid),
    ]
    saga, _ = run(None, order)
    for reply in replies:
        saga, _ = run(saga, reply)
        again = decide(saga, reply, AT)
        assert again.outputs == [], reply.type
        assert again.saga == saga, reply.type
    assert saga.status == m.OrderStatus.CANCELLED
    # A terminal order stays as it is, whatever arrives.
    for late in [order, *replies]:
        assert decide(saga, late, AT).outputs == []


def test_statuses_never_move_back() -> None:
    for status in m.OrderStatus:
        assert not status.can_become(m.OrderStatus.PENDING)
    assert m.OrderStatus.CONFIRMED.can_become(m.OrderStatus.CANCELLED)
    assert not m.OrderStatus.REJECTED.can_become(m.OrderStatus.CANCELLED)


# -- deadlines ------------------------------------------------------------------------------


def past_the_deadline_of(saga: OrderSaga) -> Timing:
    assert saga.deadline is not None
    return Timing(now=saga.deadline, deadline_seconds=DEADLINE_SECONDS)


def test_every_placed_order_has_a_deadline() -> None:
    saga, _ = run(None, place(uuid.uuid4()))
    assert (saga.placed_at, saga.deadline) == (AT.now, AT.now + DEADLINE_SECONDS)


def test_a_deadline_not_reached_changes_nothing() -> None:
    saga, _ = run(None, place(uuid.uuid4()))
    early = Timing(now=AT.now + DEADLINE_SECONDS - 1, deadline_seconds=DEADLINE_SECONDS)
    decision = decide(saga, DEADLINE_PASSED, early)
    assert (decision.saga, decision.outputs) == (saga, [])
    assert decision.ignored


def test_a_reply_missing_while_reserving_rejects_timed_out_once_the_stock_is_back() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    oid = order.order_id
    saga, _ = run(None, order, m.StockReserved(order_id=oid, product_id=a, quantity=1))
    late = past_the_deadline_of(saga)

    saga, outputs = run(saga, DEADLINE_PASSED, timing=late)

    # Both lines: b's release travels behind its reservation and undoes it when it lands.
    assert outputs == [
        m.ReleaseStock(product_id=a, order_id=oid),
        m.ReleaseStock(product_id=b, order_id=oid),
    ]
    assert (saga.phase, saga.status) == ("compensating", m.OrderStatus.PENDING)
    # The missing reply arrives late: the order no longer goes on to payment.
    saga, outputs = run(saga, m.StockReserved(order_id=oid, product_id=b, quantity=1))
    assert outputs == []
    saga, outputs = run(
        saga,
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
        m.StockReleased(order_id=oid, product_id=b, quantity=1),
    )
    assert outputs == [
        m.OrderRejected(order_id=oid, user_id=order.user_id, reason=m.RejectionReason.TIMED_OUT)
    ]


def test_a_payment_answer_missing_rejects_timed_out_and_voids_what_the_gateway_holds() -> None:
    a = uuid.uuid4()
    order, saga = authorizing(a)
    oid = order.order_id
    late = past_the_deadline_of(saga)

    saga, outputs = run(saga, DEADLINE_PASSED, timing=late)

    assert outputs == [m.ReleaseStock(product_id=a, order_id=oid), m.VoidPayment(order_id=oid)]
    # The authorization lands after all: the saga has moved on, and the void gives it back.
    authorized = m.PaymentAuthorized(
        order_id=oid, payment_id="pay_late", amount=order.total, currency="EUR"
    )
    saga, outputs = run(saga, authorized)
    assert outputs == []
    saga, outputs = run(
        saga,
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
        m.PaymentVoided(order_id=oid, payment_ids=("pay_late",)),
    )
    assert outputs == [
        m.OrderRejected(order_id=oid, user_id=order.user_id, reason=m.RejectionReason.TIMED_OUT)
    ]
    assert saga.payment_id is None


def test_a_cancel_waiting_for_the_payment_ends_cancelled_at_the_deadline() -> None:
    a = uuid.uuid4()
    order, saga = authorizing(a)
    oid = order.order_id
    saga, _ = run(saga, m.CancelOrder(order_id=oid, requested_by=order.user_id))
    saga, outputs = run(saga, DEADLINE_PASSED, timing=past_the_deadline_of(saga))
    assert types(outputs) == ["ReleaseStock", "VoidPayment"]
    saga, outputs = run(
        saga,
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
        m.PaymentVoided(order_id=oid),
    )
    assert types(outputs) == ["OrderCancelled"]


def test_a_reply_missing_while_compensating_asks_again_for_what_is_still_owed() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order, saga = authorizing(a, b)
    oid = order.order_id
    saga, _ = run(
        saga,
        m.PaymentDeclined(
            order_id=oid, reason=m.RejectionReason.PAYMENT_UNAVAILABLE, detail="timed out"
        ),
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
    )
    late = past_the_deadline_of(saga)

    saga, outputs = run(saga, DEADLINE_PASSED, timing=late)

    # b's release and the void are still unanswered; a's came back and is not asked again.
    assert outputs == [m.ReleaseStock(product_id=b, order_id=oid), m.VoidPayment(order_id=oid)]
    assert (saga.status, saga.reason) == (
        m.OrderStatus.PENDING,
        m.RejectionReason.PAYMENT_UNAVAILABLE,
    )
    assert saga.deadline == late.now + DEADLINE_SECONDS
    # The same deadline seen twice asks once.
    assert decide(saga, DEADLINE_PASSED, late).outputs == []
    # The terminal event still follows the replies, and keeps the reason it had.
    saga, outputs = run(
        saga,
        m.StockReleased(order_id=oid, product_id=b, quantity=1),
        m.PaymentVoided(order_id=oid),
    )
    assert outputs == [
        m.OrderRejected(
            order_id=oid, user_id=order.user_id, reason=m.RejectionReason.PAYMENT_UNAVAILABLE
        )
    ]


def test_a_refund_missing_while_cancelling_a_confirmed_order_is_asked_again() -> None:
    a = uuid.uuid4()
    order, saga = authorizing(a)
    oid = order.order_id
    saga, _ = run(
        saga,
        m.PaymentAuthorized(order_id=oid, payment_id="pay_1", amount=order.total, currency="EUR"),
    )
    assert saga.deadline is None
    saga, _ = run(
        saga,
        m.CancelOrder(order_id=oid, requested_by=order.user_id),
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
    )
    saga, outputs = run(saga, DEADLINE_PASSED, timing=past_the_deadline_of(saga))
    assert outputs == [
        m.RefundPayment(order_id=oid, payment_id="pay_1", amount=order.total, currency="EUR")
    ]
    assert saga.status == m.OrderStatus.CONFIRMED


def test_a_finished_order_has_no_deadline_and_ignores_one() -> None:
    a = uuid.uuid4()
    order = place(a)
    oid = order.order_id
    saga, _ = run(
        None,
        order,
        m.StockRejected(order_id=oid, product_id=a, requested=1, available=0),
        m.StockReleased(order_id=oid, product_id=a, quantity=0),
    )
    assert (saga.status, saga.deadline) == (m.OrderStatus.REJECTED, None)
    much_later = Timing(now=AT.now + 10 * DEADLINE_SECONDS, deadline_seconds=DEADLINE_SECONDS)
    assert decide(saga, DEADLINE_PASSED, much_later).outputs == []


def test_a_saga_stored_without_a_deadline_times_out_when_the_index_says_so() -> None:
    a = uuid.uuid4()
    order = place(a)
    saga, _ = run(None, order)
    earlier_version = saga.model_copy(update={"deadline": None, "placed_at": None})
    index = OpenOrders()
    index.rebuild([(str(order.order_id), 3, earlier_version)], AT.now, DEADLINE_SECONDS)

    assert index.due(AT.now + DEADLINE_SECONDS - 1) == []
    [(key, partition)] = index.due(AT.now + DEADLINE_SECONDS)

    assert (key, partition) == (str(order.order_id), 3)
    decision = decide(earlier_version, DEADLINE_PASSED, AT)
    assert types(decision.outputs) == ["ReleaseStock"]


def test_the_index_offers_each_due_order_once_and_forgets_finished_ones() -> None:
    index = OpenOrders()
    first, second = place(uuid.uuid4()), place(uuid.uuid4())
    first_saga, _ = run(None, first)
    second_saga, _ = run(None, second)
    index.track(str(first.order_id), 0, first_saga, None, AT.now)
    index.track(str(second.order_id), 1, second_saga, None, AT.now)
    # The second one finished before its deadline.
    finished = second_saga.model_copy(update={"phase": "done", "deadline": None})
    index.track(str(second.order_id), 1, finished, second_saga, AT.now)

    due_at = AT.now + DEADLINE_SECONDS
    assert index.due(due_at) == [(str(first.order_id), 0)]
    assert index.due(due_at) == []
    assert len(index) == 1


def test_pending_orders_are_counted_by_age() -> None:
    index = OpenOrders()
    ages = [5.0, 29.0, 31.0, 119.0, 121.0, 599.0, 601.0, 7200.0]
    for age in ages:
        order = place(uuid.uuid4())
        saga, _ = run(None, order, timing=Timing(AT.now - age, DEADLINE_SECONDS))
        index.track(str(order.order_id), 0, saga, None, AT.now)
    confirmed = place(uuid.uuid4())
    saga, _ = run(
        None,
        confirmed,
        m.StockReserved(
            order_id=confirmed.order_id, product_id=confirmed.items[0].product_id, quantity=1
        ),
        m.PaymentAuthorized(
            order_id=confirmed.order_id, payment_id="p", amount=PRICE, currency="EUR"
        ),
        m.CancelOrder(order_id=confirmed.order_id, requested_by=confirmed.user_id),
    )
    # Being cancelled: open, but no longer pending.
    index.track(str(confirmed.order_id), 0, saga, None, AT.now)

    assert index.pending_by_age(AT.now) == {"lt_30s": 2, "30s_2m": 2, "2m_10m": 2, "gt_10m": 2}


# -- inventory -----------------------------------------------------------------------------


class Ledger:
    """One product as the inventory processor keeps it: its counters and its holds."""

    def __init__(self, units: int) -> None:
        self.product = uuid.uuid4()
        self.holds: dict[str, Hold] = {}
        decision = apply(
            None,
            None,
            m.UpsertProduct(product_id=self.product, sku="S", name="N", initial_stock=units),
        )
        assert decision.stock is not None
        self.stock: ProductStock = decision.stock

    def apply(self, command: m.Message) -> StockDecision:
        key = hold_key(command)
        decision = apply(self.stock, None if key is None else self.holds.get(key), command)
        assert decision.stock is not None
        self.stock = decision.stock
        if key is not None and decision.hold is not None:
            self.holds[key] = decision.hold
        return decision

    def balances(self) -> bool:
        stock = self.stock
        return (
            stock.available >= 0 and stock.received == stock.available + stock.reserved + stock.sold
        )


def test_a_reservation_beyond_the_stock_is_refused_and_takes_nothing() -> None:
    ledger = Ledger(1)
    before = ledger.stock
    decision = ledger.apply(
        m.ReserveStock(product_id=ledger.product, order_id=uuid.uuid4(), quantity=2)
    )
    assert decision.stock == before
    assert decision.hold is None
    assert types(decision.replies) == ["StockRejected"]


def test_a_released_order_cannot_reserve_again() -> None:
    ledger = Ledger(3)
    order = uuid.uuid4()
    ledger.apply(m.ReleaseStock(product_id=ledger.product, order_id=order))
    decision = ledger.apply(m.ReserveStock(product_id=ledger.product, order_id=order, quantity=1))
    assert types(decision.replies) == ["StockRejected"]
    assert ledger.stock.available == 3


def test_returning_a_sold_line_puts_it_back_once() -> None:
    ledger = Ledger(3)
    product, order = ledger.product, uuid.uuid4()
    for command in (
        m.ReserveStock(product_id=product, order_id=order, quantity=2),
        m.CommitStock(product_id=product, order_id=order),
        m.ReleaseStock(product_id=product, order_id=order),
        m.ReleaseStock(product_id=product, order_id=order),
    ):
        decision = ledger.apply(command)
        assert ledger.balances()
    assert (ledger.stock.available, ledger.stock.reserved, ledger.stock.sold) == (3, 0, 0)
    assert decision.replies == [m.StockReleased(order_id=order, product_id=product, quantity=2)]


def test_an_adjustment_counts_once_and_never_makes_stock_negative() -> None:
    ledger = Ledger(2)
    adjustment = m.AdjustStock(product_id=ledger.product, adjustment_id=uuid.uuid4(), delta=5)
    ledger.apply(adjustment)
    assert ledger.apply(adjustment).repeated
    assert (ledger.stock.available, ledger.stock.received) == (7, 7)
    with pytest.raises(StockRefused, match="negative"):
        ledger.apply(m.AdjustStock(product_id=ledger.product, adjustment_id=uuid.uuid4(), delta=-8))


def test_a_products_record_stays_the_same_size_however_often_it_sells() -> None:
    ledger = Ledger(100_000)
    sizes = []
    for sale in range(2_000):
        order = uuid.uuid4()
        ledger.apply(m.ReserveStock(product_id=ledger.product, order_id=order, quantity=1))
        ledger.apply(m.CommitStock(product_id=ledger.product, order_id=order))
        if sale in (0, 1_999):
            sizes.append(len(ledger.stock.model_dump_json()))
    assert ledger.stock.sold == 2_000
    # Only the counters' digits may grow.
    assert sizes[1] - sizes[0] <= 8, sizes


def test_random_interleavings_with_redeliveries_never_oversell() -> None:
    rng = random.Random(20261125)
    for _ in range(200):
        ledger = Ledger(rng.randint(0, 5))
        product = ledger.product
        orders = [uuid.uuid4() for _ in range(rng.randint(1, 8))]
        commands: list[m.Message] = []
        for order in orders:
            commands.append(
                m.ReserveStock(product_id=product, order_id=order, quantity=rng.randint(1, 3))
            )
            commands.append(
                rng.choice(
                    [
                        m.CommitStock(product_id=product, order_id=order),
                        m.ReleaseStock(product_id=product, order_id=order),
                    ]
                )
            )
        rng.shuffle(commands)
        # Every command may arrive a second time, anywhere after the first.
        for command in list(commands):
            if rng.random() < 0.5:
                commands.insert(rng.randint(commands.index(command), len(commands)), command)
        for command in commands:
            ledger.apply(command)
            assert ledger.balances(), (command, ledger.stock)
        # What the counters say is what the open holds add up to.
        holding = list(ledger.holds.values())
        assert ledger.stock.reserved == sum(h.quantity for h in holding if h.state == "reserved")
        assert ledger.stock.sold == sum(h.quantity for h in holding if h.state == "sold")
