"""One valid instance of every message type, for tests that must cover them all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from conveyor.domain import messages as m

ORDER = uuid.UUID("0b0e7a8e-2f7c-4a53-9c55-7f1f1d3a1111")
PRODUCT = uuid.UUID("5a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b2222")
USER = uuid.UUID("9f8e7d6c-5b4a-4392-8170-6f5e4d3c3333")


def line(quantity: int = 2, price: str = "19.99", product: uuid.UUID = PRODUCT) -> m.OrderLine:
    unit = Decimal(price)
    return m.OrderLine(
        product_id=product, quantity=quantity, unit_price=unit, subtotal=unit * quantity
    )


def place_order(**changes: object) -> m.PlaceOrder:
    fields: dict[str, object] = {
        "order_id": ORDER,
        "user_id": USER,
        "customer_email": "ada@example.com",
        "items": (line(),),
        "currency": "EUR",
        "total": Decimal("39.98"),
        "payment_token": "tok_visa",
    }
    fields.update(changes)
    return m.PlaceOrder.model_validate(fields)


def every_message() -> list[m.Message]:
    amount = Decimal("39.98")
    samples: list[m.Message] = [
        place_order(),
        m.CancelOrder(order_id=ORDER, requested_by=USER),
        m.StockReserved(order_id=ORDER, product_id=PRODUCT, quantity=2),
        m.StockRejected(order_id=ORDER, product_id=PRODUCT, requested=2, available=1),
        m.StockReleased(order_id=ORDER, product_id=PRODUCT, quantity=2),
        m.PaymentAuthorized(order_id=ORDER, payment_id="pay_1", amount=amount, currency="EUR"),
        m.PaymentDeclined(
            order_id=ORDER, reason=m.RejectionReason.PAYMENT_DECLINED, detail="card declined"
        ),
        m.PaymentRefunded(order_id=ORDER, payment_id="pay_1", amount=amount, currency="EUR"),
        m.PaymentVoided(order_id=ORDER, payment_ids=("pay_1",)),
        m.OrderPlaced(
            order_id=ORDER, user_id=USER, customer_email="ada@example.com",
            items=(line(),), currency="EUR", total=amount,
        ),
        m.OrderConfirmed(order_id=ORDER, user_id=USER, payment_id="pay_1"),
        m.OrderRejected(order_id=ORDER, user_id=USER, reason=m.RejectionReason.OUT_OF_STOCK),
        m.OrderCancelled(order_id=ORDER, user_id=USER),
        m.UpsertProduct(product_id=PRODUCT, sku="KB-1", name="Keyboard", initial_stock=10),
        m.AdjustStock(product_id=PRODUCT, adjustment_id=uuid.uuid4(), delta=-3),
        m.ReserveStock(product_id=PRODUCT, order_id=ORDER, quantity=2),
        m.ReleaseStock(product_id=PRODUCT, order_id=ORDER),
        m.CommitStock(product_id=PRODUCT, order_id=ORDER),
        m.StockChanged(
            product_id=PRODUCT, version=2, available=8, reserved=2, sold=0, cause="ReserveStock",
            order_id=ORDER,
        ),
        m.AuthorizePayment(order_id=ORDER, amount=amount, currency="EUR", payment_token="tok_visa"),
        m.RefundPayment(order_id=ORDER, payment_id="pay_1", amount=amount, currency="EUR"),
        m.VoidPayment(order_id=ORDER),
        m.NotificationSent(
            notification_id=uuid.uuid4(), order_id=ORDER, user_id=USER,
            recipient="ada@example.com", order_event="OrderConfirmed",
            subject="Your order is confirmed", sent_at=datetime.now(UTC),
        ),
        m.ProductsBoughtTogether(
            product_id=PRODUCT, order_id=ORDER, bought_with=(uuid.uuid4(),),
            confirmed_at=datetime.now(UTC),
        ),
    ]  # fmt: skip
    return samples
