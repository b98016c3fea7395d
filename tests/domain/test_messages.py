"""Messages refuse what the saga could never handle, before it reaches a topic."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from conveyor.domain import messages as m
from conveyor.domain.messages import OrderStatus
from tests.domain.samples import ORDER, USER, line, place_order


def test_money_is_written_as_a_string_with_two_decimals() -> None:
    order = place_order(items=(line(quantity=1, price="5"),), total=Decimal("5"))
    dumped = order.model_dump(mode="json")
    assert dumped["total"] == "5.00"
    assert dumped["items"][0]["unit_price"] == "5.00"


@pytest.mark.parametrize("price", ["19.999", "-1.00", "NaN", "Infinity"])
def test_an_amount_with_fractions_of_a_cent_or_below_zero_is_refused(price: str) -> None:
    with pytest.raises(ValidationError):
        m.AuthorizePayment(
            order_id=ORDER, amount=Decimal(price), currency="EUR", payment_token="tok_visa"
        )


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", ""])
def test_a_currency_that_is_not_an_iso_code_is_refused(currency: str) -> None:
    with pytest.raises(ValidationError):
        place_order(currency=currency)


def test_an_order_whose_total_differs_from_its_lines_is_refused() -> None:
    with pytest.raises(ValidationError, match="sum of the line subtotals"):
        place_order(total=Decimal("40.00"))


def test_a_line_whose_subtotal_is_not_price_times_quantity_is_refused() -> None:
    with pytest.raises(ValidationError, match="subtotal"):
        m.OrderLine(
            product_id=ORDER, quantity=2, unit_price=Decimal("1.00"), subtotal=Decimal("3.00")
        )


def test_an_order_naming_a_product_on_two_lines_is_refused() -> None:
    with pytest.raises(ValidationError, match="one line only"):
        place_order(items=(line(), line()), total=Decimal("79.96"))


@pytest.mark.parametrize("quantity", [0, -1])
def test_a_line_of_less_than_one_item_is_refused(quantity: int) -> None:
    with pytest.raises(ValidationError):
        line(quantity=quantity)


def test_an_order_without_lines_is_refused() -> None:
    with pytest.raises(ValidationError):
        place_order(items=(), total=Decimal("0"))


def test_unknown_fields_are_refused_rather_than_dropped() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        m.CancelOrder.model_validate({"order_id": ORDER, "requested_by": USER, "price": "0"})


def test_a_stock_adjustment_of_zero_is_refused() -> None:
    with pytest.raises(ValidationError, match="delta"):
        m.AdjustStock(product_id=ORDER, adjustment_id=USER, delta=0)


def test_a_notification_time_without_a_timezone_is_refused() -> None:
    with pytest.raises(ValidationError):
        m.NotificationSent(
            notification_id=USER, order_id=ORDER, user_id=USER, recipient="a@b.c",
            order_event="OrderConfirmed", subject="s", sent_at=datetime(2026, 1, 1),
        )  # fmt: skip


def test_messages_cannot_be_changed_after_they_are_made() -> None:
    order = place_order()
    with pytest.raises(ValidationError):
        order.payment_token = "tok_chargeDeclined"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("current", "later", "forward"),
    [
        (OrderStatus.PENDING, OrderStatus.CONFIRMED, True),
        (OrderStatus.PENDING, OrderStatus.REJECTED, True),
        (OrderStatus.PENDING, OrderStatus.CANCELLED, True),
        (OrderStatus.CONFIRMED, OrderStatus.CANCELLED, True),
        (OrderStatus.CONFIRMED, OrderStatus.PENDING, False),
        (OrderStatus.CONFIRMED, OrderStatus.REJECTED, False),
        (OrderStatus.REJECTED, OrderStatus.CONFIRMED, False),
        (OrderStatus.CANCELLED, OrderStatus.CONFIRMED, False),
        (OrderStatus.PENDING, OrderStatus.PENDING, False),
    ],
)
def test_order_statuses_only_move_forward(
    current: OrderStatus, later: OrderStatus, forward: bool
) -> None:
    assert current.can_become(later) is forward


def test_rejected_and_cancelled_orders_are_terminal_and_confirmed_ones_are_not() -> None:
    terminal = {status for status in OrderStatus if status.is_terminal}
    assert terminal == {OrderStatus.REJECTED, OrderStatus.CANCELLED}
