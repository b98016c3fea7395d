"""Inventory decisions, free of Kafka: a product's stock and what each command does to it.

The ``inventory`` processor keeps one ``ProductStock`` per product in its table. Every
command is idempotent by its natural key: a reservation, release or sale by
(order_id, product_id), an adjustment by its adjustment_id. The equation
``received = available + reserved + sold`` holds after every step, and ``available`` never
goes below zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from conveyor.domain import messages as m

# How many applied adjustment ids a product remembers to refuse a redelivered one.
REMEMBERED_ADJUSTMENTS = 1000


class StockRefused(Exception):
    """A well-formed command that cannot apply (it goes to the dead-letter topic)."""


class ProductStock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    name: str
    # Initial stock plus every adjustment: what the shop ever had of this product.
    received: int
    available: int
    reservations: dict[UUID, int] = {}
    sales: dict[UUID, int] = {}
    # Orders whose hold on this product ended (released or returned), with the quantity
    # given back, so a late or repeated reservation for them is refused.
    closed: dict[UUID, int] = {}
    adjustments: list[UUID] = []
    version: int = 1

    @property
    def reserved(self) -> int:
        return sum(self.reservations.values())

    @property
    def sold(self) -> int:
        return sum(self.sales.values())


@dataclass
class StockDecision:
    stock: ProductStock | None
    # Replies to the orders saga (orders.replies).
    replies: list[m.Message] = field(default_factory=list)
    # The public change, when the figures moved (inventory.events).
    changed: m.StockChanged | None = None
    # The command had been applied already: a redelivery, perhaps after a crash that kept
    # the table's change but lost the StockChanged it caused, so the current figures are
    # published again (consumers keep the newest version, so this is harmless).
    repeated: bool = False


def apply(stock: ProductStock | None, command: m.Message) -> StockDecision:
    match command:
        case m.UpsertProduct():
            return _upsert(stock, command)
        case m.AdjustStock():
            return _adjust(stock, command)
        case m.ReserveStock():
            return _reserve(stock, command)
        case m.ReleaseStock():
            return _release(stock, command)
        case m.CommitStock():
            return _commit(stock, command)
    raise StockRefused(f"{command.type} is not an inventory command")


def current_figures(product_id: UUID, stock: ProductStock) -> m.StockChanged:
    return _changed(product_id, stock, "republished")


def _changed(
    product_id: UUID, stock: ProductStock, cause: str, order_id: UUID | None = None
) -> m.StockChanged:
    return m.StockChanged(
        product_id=product_id,
        version=stock.version,
        available=stock.available,
        reserved=stock.reserved,
        sold=stock.sold,
        cause=cause,
        order_id=order_id,
    )


def _upsert(stock: ProductStock | None, command: m.UpsertProduct) -> StockDecision:
    if stock is None:
        created = ProductStock(
            sku=command.sku,
            name=command.name,
            received=command.initial_stock,
            available=command.initial_stock,
        )
        return StockDecision(created, changed=_changed(command.product_id, created, "created"))
    # An existing product keeps its stock: initial_stock only counts once.
    renamed = stock.model_copy(update={"sku": command.sku, "name": command.name})
    return StockDecision(renamed)


def _adjust(stock: ProductStock | None, command: m.AdjustStock) -> StockDecision:
    if stock is None:
        raise StockRefused(f"cannot adjust stock of unknown product {command.product_id}")
    if command.adjustment_id in stock.adjustments:
        return StockDecision(stock, repeated=True)
    if stock.available + command.delta < 0:
        raise StockRefused(
            f"adjustment {command.delta} would make available stock negative "
            f"(available {stock.available}, reserved {stock.reserved})"
        )
    adjusted = stock.model_copy(deep=True)
    adjusted.received += command.delta
    adjusted.available += command.delta
    adjusted.adjustments = [*adjusted.adjustments, command.adjustment_id][-REMEMBERED_ADJUSTMENTS:]
    adjusted.version += 1
    return StockDecision(adjusted, changed=_changed(command.product_id, adjusted, "adjusted"))


def _reserve(stock: ProductStock | None, command: m.ReserveStock) -> StockDecision:
    order, product, quantity = command.order_id, command.product_id, command.quantity
    reserved = m.StockReserved(order_id=order, product_id=product, quantity=quantity)
    if stock is None:
        rejected = m.StockRejected(
            order_id=order, product_id=product, requested=quantity, available=0
        )
        return StockDecision(None, [rejected])
    if order in stock.reservations or order in stock.sales:
        return StockDecision(stock, [reserved], repeated=True)
    if order in stock.closed or stock.available < quantity:
        rejected = m.StockRejected(
            order_id=order,
            product_id=product,
            requested=quantity,
            available=0 if order in stock.closed else stock.available,
        )
        return StockDecision(stock, [rejected])
    held = stock.model_copy(deep=True)
    held.available -= quantity
    held.reservations[order] = quantity
    held.version += 1
    return StockDecision(held, [reserved], _changed(product, held, "reserved", order))


def _release(stock: ProductStock | None, command: m.ReleaseStock) -> StockDecision:
    order, product = command.order_id, command.product_id
    if stock is None:
        return StockDecision(
            None, [m.StockReleased(order_id=order, product_id=product, quantity=0)]
        )
    if order in stock.closed:
        quantity = stock.closed[order]
        return StockDecision(
            stock,
            [m.StockReleased(order_id=order, product_id=product, quantity=quantity)],
            repeated=True,
        )
    released = stock.model_copy(deep=True)
    cause = "released"
    quantity = released.reservations.pop(order, 0)
    if not quantity:
        quantity = released.sales.pop(order, 0)
        cause = "returned"
    released.available += quantity
    # Closed even when nothing was held: a reservation arriving later must not take stock.
    released.closed[order] = quantity
    reply = m.StockReleased(order_id=order, product_id=product, quantity=quantity)
    if not quantity:
        return StockDecision(released, [reply])
    released.version += 1
    return StockDecision(released, [reply], _changed(product, released, cause, order))


def _commit(stock: ProductStock | None, command: m.CommitStock) -> StockDecision:
    order, product = command.order_id, command.product_id
    if stock is None or order not in stock.reservations:
        # Already sold, released, or never reserved: nothing to move.
        return StockDecision(stock, repeated=stock is not None)
    sold = stock.model_copy(deep=True)
    sold.sales[order] = sold.reservations.pop(order)
    sold.version += 1
    return StockDecision(sold, changed=_changed(product, sold, "sold", order))
