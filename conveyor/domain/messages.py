"""Every command and event of the order saga, one frozen model each.

Each message names its type in a ``type`` field and carries the natural key of the topic it
travels on (``order_id`` or ``product_id``), which is also its Kafka record key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from conveyor.domain.money import Amount, Currency


class Message(BaseModel):
    """The base of every command and event: immutable and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    def can_become(self, later: OrderStatus) -> bool:
        """Whether ``later`` is a step forward from this status (statuses never go back)."""
        return later in _FORWARD_STEPS[self]

    @property
    def is_terminal(self) -> bool:
        return not _FORWARD_STEPS[self]


_FORWARD_STEPS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    # A confirmed order can still be cancelled (refund and restock), and that is final.
    OrderStatus.CONFIRMED: frozenset({OrderStatus.CANCELLED}),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


class RejectionReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_UNAVAILABLE = "payment_unavailable"
    # The order's deadline passed before its stock or payment was settled.
    TIMED_OUT = "timed_out"


class OrderLine(BaseModel):
    """One product of an order, priced by the edge from the catalog."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: UUID
    quantity: int = Field(ge=1)
    unit_price: Amount
    subtotal: Amount

    @model_validator(mode="after")
    def _subtotal_is_price_times_quantity(self) -> OrderLine:
        if self.subtotal != self.unit_price * self.quantity:
            raise ValueError("subtotal must equal unit_price times quantity")
        return self


class _PricedOrder(Message):
    """What PlaceOrder and OrderPlaced share: lines whose subtotals add up to the total."""

    order_id: UUID
    user_id: UUID
    # Where the order's e-mails go; None when the customer's address is not verified, and
    # then none are sent. Records from before always name one.
    customer_email: str | None = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    items: tuple[OrderLine, ...] = Field(min_length=1, max_length=100)
    currency: Currency
    total: Amount

    @model_validator(mode="after")
    def _lines_are_distinct_and_add_up(self) -> _PricedOrder:
        products = [line.product_id for line in self.items]
        if len(set(products)) != len(products):
            raise ValueError("each product appears on one line only")
        if sum((line.subtotal for line in self.items), start=self.total * 0) != self.total:
            raise ValueError("total must equal the sum of the line subtotals")
        return self


# -- orders.commands ---------------------------------------------------------------------


class PlaceOrder(_PricedOrder):
    type: Literal["PlaceOrder"] = "PlaceOrder"
    payment_token: str = Field(min_length=1, max_length=200)


class CancelOrder(Message):
    type: Literal["CancelOrder"] = "CancelOrder"
    order_id: UUID
    requested_by: UUID


# -- orders.replies ----------------------------------------------------------------------


class StockReserved(Message):
    type: Literal["StockReserved"] = "StockReserved"
    order_id: UUID
    product_id: UUID
    quantity: int = Field(ge=1)


class StockRejected(Message):
    type: Literal["StockRejected"] = "StockRejected"
    order_id: UUID
    product_id: UUID
    requested: int = Field(ge=1)
    available: int = Field(ge=0)


class StockReleased(Message):
    type: Literal["StockReleased"] = "StockReleased"
    order_id: UUID
    product_id: UUID
    quantity: int = Field(ge=0)


class PaymentAuthorized(Message):
    type: Literal["PaymentAuthorized"] = "PaymentAuthorized"
    order_id: UUID
    payment_id: str = Field(min_length=1)
    amount: Amount
    currency: Currency


class PaymentDeclined(Message):
    type: Literal["PaymentDeclined"] = "PaymentDeclined"
    order_id: UUID
    reason: Literal[RejectionReason.PAYMENT_DECLINED, RejectionReason.PAYMENT_UNAVAILABLE]
    detail: str


class PaymentRefunded(Message):
    type: Literal["PaymentRefunded"] = "PaymentRefunded"
    order_id: UUID
    payment_id: str = Field(min_length=1)
    amount: Amount
    currency: Currency


class PaymentVoided(Message):
    """The answer to VoidPayment: no authorization of the order holds money any more.

    ``payment_ids`` are those found and voided or refunded (empty when there was none).
    """

    type: Literal["PaymentVoided"] = "PaymentVoided"
    order_id: UUID
    payment_ids: tuple[str, ...] = ()


# -- orders.events (public) --------------------------------------------------------------


class OrderPlaced(_PricedOrder):
    type: Literal["OrderPlaced"] = "OrderPlaced"


class OrderConfirmed(Message):
    type: Literal["OrderConfirmed"] = "OrderConfirmed"
    order_id: UUID
    user_id: UUID
    payment_id: str


class OrderRejected(Message):
    type: Literal["OrderRejected"] = "OrderRejected"
    order_id: UUID
    user_id: UUID
    reason: RejectionReason


class OrderCancelled(Message):
    type: Literal["OrderCancelled"] = "OrderCancelled"
    order_id: UUID
    user_id: UUID


# -- inventory.commands ------------------------------------------------------------------


class UpsertProduct(Message):
    """Create a product with its initial stock, or rename an existing one (stock unchanged)."""

    type: Literal["UpsertProduct"] = "UpsertProduct"
    product_id: UUID
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    initial_stock: int = Field(ge=0)


class AdjustStock(Message):
    type: Literal["AdjustStock"] = "AdjustStock"
    product_id: UUID
    # The same adjustment delivered twice must change stock once.
    adjustment_id: UUID
    delta: int

    @model_validator(mode="after")
    def _changes_something(self) -> AdjustStock:
        if self.delta == 0:
            raise ValueError("delta must not be zero")
        return self


class ReserveStock(Message):
    type: Literal["ReserveStock"] = "ReserveStock"
    product_id: UUID
    order_id: UUID
    quantity: int = Field(ge=1)


class ReleaseStock(Message):
    type: Literal["ReleaseStock"] = "ReleaseStock"
    product_id: UUID
    order_id: UUID


class CommitStock(Message):
    type: Literal["CommitStock"] = "CommitStock"
    product_id: UUID
    order_id: UUID


# -- inventory.events (public) -----------------------------------------------------------


class StockChanged(Message):
    type: Literal["StockChanged"] = "StockChanged"
    product_id: UUID
    # Counts the product's changes, so a read model applies only a newer figure than it has.
    version: int = Field(ge=1)
    available: int = Field(ge=0)
    reserved: int = Field(ge=0)
    sold: int = Field(ge=0)
    cause: str
    order_id: UUID | None = None


# -- payments.commands -------------------------------------------------------------------


class AuthorizePayment(Message):
    type: Literal["AuthorizePayment"] = "AuthorizePayment"
    order_id: UUID
    amount: Amount
    currency: Currency
    payment_token: str = Field(min_length=1, max_length=200)


class RefundPayment(Message):
    type: Literal["RefundPayment"] = "RefundPayment"
    order_id: UUID
    payment_id: str = Field(min_length=1)
    amount: Amount
    currency: Currency


class VoidPayment(Message):
    """Give back whatever the gateway holds for the order, whether or not the saga knows of it.

    Sent when an order that asked for a payment ends without one it knows of (the
    gateway's answer was lost or late, or the order's deadline passed): the payments
    processor looks the order up at the gateway by its reference and voids or refunds every
    authorization it finds.
    """

    type: Literal["VoidPayment"] = "VoidPayment"
    order_id: UUID


# -- notifications.events ----------------------------------------------------------------


class NotificationSent(Message):
    type: Literal["NotificationSent"] = "NotificationSent"
    notification_id: UUID
    order_id: UUID
    user_id: UUID
    recipient: str
    order_event: Literal["OrderConfirmed", "OrderRejected", "OrderCancelled"]
    subject: str
    sent_at: AwareDatetime


# -- recommendations.copurchases (internal to the recommendations processor) ------------


class ProductsBoughtTogether(Message):
    """One product of a confirmed order, with the other products bought in the same order.

    The recommendations processor sends one per distinct product of each confirmed order,
    keyed by that product, so the product's co-purchase counts are kept in its partition.
    """

    type: Literal["ProductsBoughtTogether"] = "ProductsBoughtTogether"
    product_id: UUID
    order_id: UUID
    # The order's other products, each once (the order's own product never among them).
    bought_with: tuple[UUID, ...] = Field(max_length=100)
    # When the order was confirmed: the co-purchase decays from then on.
    confirmed_at: AwareDatetime

    @model_validator(mode="after")
    def _not_bought_with_itself(self) -> ProductsBoughtTogether:
        if self.product_id in self.bought_with:
            raise ValueError("a product is not bought together with itself")
        if len(set(self.bought_with)) != len(self.bought_with):
            raise ValueError("bought_with names each product once")
        return self


MESSAGE_TYPES: tuple[type[Message], ...] = (
    PlaceOrder, CancelOrder,
    StockReserved, StockRejected, StockReleased,
    PaymentAuthorized, PaymentDeclined, PaymentRefunded, PaymentVoided,
    OrderPlaced, OrderConfirmed, OrderRejected, OrderCancelled,
    UpsertProduct, AdjustStock, ReserveStock, ReleaseStock, CommitStock,
    StockChanged,
    AuthorizePayment, RefundPayment, VoidPayment,
    NotificationSent,
    ProductsBoughtTogether,
)  # fmt: skip
