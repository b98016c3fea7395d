"""The saga's and the inventory's decisions on their own: every step, every redelivery, and
random interleavings of many orders over scarce stock."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from uuid import UUID

import pytest

from conveyor.domain import messages as m
from conveyor.streams.saga import OrderSaga, decide
from conveyor.streams.stock import (
    Hold,
    ProductStock,
    StockDecision,
    StockRefused,
    apply,
    hold_key,
)

PRICE = Decimal("5.00")


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


def run(saga: OrderSaga | None, *messages: m.Message) -> tuple[OrderSaga, list[m.Message]]:
    outputs: list[m.Message] = []
    for message in messages:
        decision = decide(saga, message)
        saga = decision.saga
        outputs.extend(decision.outputs)
    assert saga is not None
    return saga, outputs


def types(messages: list[m.Message]) -> list[str]:
    return [message.type for message in messages]


def test_placing_asks_for_every_line_and_announces_the_order() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    saga, outputs = run(None, order)
    assert types(outputs) == ["OrderPlaced", "ReserveStock", "ReserveStock"]
    assert saga.status == m.OrderStatus.PENDING
    assert decide(saga, order).outputs == []


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


@pytest.mark.parametrize(
    "reason", [m.RejectionReason.PAYMENT_DECLINED, m.RejectionReason.PAYMENT_UNAVAILABLE]
)
def test_a_payment_that_fails_rejects_with_its_reason(reason: m.RejectionReason) -> None:
    a = uuid.uuid4()
    order = place(a)
    oid = order.order_id
    saga, outputs = run(
        None,
        order,
        m.StockReserved(order_id=oid, product_id=a, quantity=1),
        m.PaymentDeclined(order_id=oid, reason=reason, detail="no"),
        m.StockReleased(order_id=oid, product_id=a, quantity=1),
    )
    assert saga.status == m.OrderStatus.REJECTED
    assert saga.reason == reason
    assert types(outputs)[-1] == "OrderRejected"


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
    ]
    saga, _ = run(None, order)
    for reply in replies:
        saga, _ = run(saga, reply)
        again = decide(saga, reply)
        assert again.outputs == [], reply.type
        assert again.saga == saga, reply.type
    assert saga.status == m.OrderStatus.CANCELLED
    # A terminal order stays as it is, whatever arrives.
    for late in [order, *replies]:
        assert decide(saga, late).outputs == []


def test_statuses_never_move_back() -> None:
    for status in m.OrderStatus:
        assert not status.can_become(m.OrderStatus.PENDING)
    assert m.OrderStatus.CONFIRMED.can_become(m.OrderStatus.CANCELLED)
    assert not m.OrderStatus.REJECTED.can_become(m.OrderStatus.CANCELLED)


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
