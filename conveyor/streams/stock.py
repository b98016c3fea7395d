"""Inventory decisions, free of Kafka: a product's stock and what each command does to it.

The ``inventory`` processor keeps, per product, a ``ProductStock`` of counters only, and per
(product, order) or (product, adjustment) a ``Hold``: what that order holds of the product
(reserved, sold) or that its hold ended (closed), or that an adjustment was applied. A
product's record therefore costs the same on its millionth sale as on its first; holds of
finished orders expire after the retention window (see ``conveyor.streams.state``).

Every command is idempotent by its natural key: a reservation, release or sale by
(order_id, product_id), an adjustment by its adjustment_id, each found through its hold.
The equation ``received = available + reserved + sold`` holds after every step, and
``available`` never goes below zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from conveyor.domain import messages as m


class StockRefused(Exception):
    """A well-formed command that cannot apply (it goes to the dead-letter topic)."""


class ProductStock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    name: str
    # Initial stock plus every adjustment: what the shop ever had of this product.
    received: int
    available: int
    reserved: int = 0
    sold: int = 0
    version: int = 1


class Hold(BaseModel):
    """What one order did to one product, or that one adjustment was applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # reserved and sold: the order holds ``quantity``; closed: its hold ended (released or
    # returned) giving back ``quantity``, so a late or repeated reservation is refused;
    # adjusted: the adjustment of ``quantity`` was applied.
    state: Literal["reserved", "sold", "closed", "adjusted"]
    quantity: int

    @property
    def is_open(self) -> bool:
        """Still part of the stock figures: never expires while so."""
        return self.state == "reserved"


def hold_key(command: m.Message) -> str | None:
    """The key of the hold a command reads and writes, beside its product's key."""
    match command:
        case m.ReserveStock() | m.ReleaseStock() | m.CommitStock():
            return f"{command.product_id}:{command.order_id}"
        case m.AdjustStock():
            return f"{command.product_id}:adjustment:{command.adjustment_id}"
    return None


@dataclass
class StockDecision:
    stock: ProductStock | None
    # The command's hold as it is now (unchanged when the command changed nothing).
    hold: Hold | None = None
    # Replies to the orders saga (orders.replies).
    replies: list[m.Message] = field(default_factory=list)
    # The public change, when the figures moved (inventory.events).
    changed: m.StockChanged | None = None
    # The command had been applied already: a redelivery, perhaps after a crash that kept
    # the table's change but lost the StockChanged it caused, so the current figures are
    # published again (consumers keep the newest version, so this is harmless).
    repeated: bool = False


def apply(stock: ProductStock | None, hold: Hold | None, command: m.Message) -> StockDecision:
    """What ``command`` does, given its product's stock and its hold (``hold_key``)."""
    match command:
        case m.UpsertProduct():
            return _upsert(stock, command)
        case m.AdjustStock():
            return _adjust(stock, hold, command)
        case m.ReserveStock():
            return _reserve(stock, hold, command)
        case m.ReleaseStock():
            return _release(stock, hold, command)
        case m.CommitStock():
            return _commit(stock, hold, command)
    raise StockRefused(f"{command.type} is not an inventory command")


def current_figures(product_id: UUID, stock: ProductStock) -> m.StockChanged:
    return _changed(product_id, stock, "republished")


def announced(product_id: UUID, decision: StockDecision) -> list[m.Message]:
    """What ``decision`` sends: its replies, then the change of the figures, or after a
    repeated command the current figures again."""
    messages = list(decision.replies)
    if decision.changed is not None:
        messages.append(decision.changed)
    elif decision.repeated and decision.stock is not None:
        messages.append(current_figures(product_id, decision.stock))
    return messages


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


def _moved(stock: ProductStock, **deltas: int) -> ProductStock:
    """A copy of ``stock`` with each named counter moved by its delta, one version on."""
    update = {name: getattr(stock, name) + delta for name, delta in deltas.items()}
    return stock.model_copy(update={**update, "version": stock.version + 1})


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


def _adjust(stock: ProductStock | None, hold: Hold | None, command: m.AdjustStock) -> StockDecision:
    if stock is None:
        raise StockRefused(f"cannot adjust stock of unknown product {command.product_id}")
    if hold is not None:
        return StockDecision(stock, hold, repeated=True)
    if stock.available + command.delta < 0:
        raise StockRefused(
            f"adjustment {command.delta} would make available stock negative "
            f"(available {stock.available}, reserved {stock.reserved})"
        )
    adjusted = _moved(stock, received=command.delta, available=command.delta)
    return StockDecision(
        adjusted,
        Hold(state="adjusted", quantity=command.delta),
        changed=_changed(command.product_id, adjusted, "adjusted"),
    )


def _reserve(
    stock: ProductStock | None, hold: Hold | None, command: m.ReserveStock
) -> StockDecision:
    order, product, quantity = command.order_id, command.product_id, command.quantity
    reserved = m.StockReserved(order_id=order, product_id=product, quantity=quantity)
    if stock is None:
        rejected = m.StockRejected(
            order_id=order, product_id=product, requested=quantity, available=0
        )
        return StockDecision(None, hold, [rejected])
    if hold is not None and hold.state in ("reserved", "sold"):
        return StockDecision(stock, hold, [reserved], repeated=True)
    closed = hold is not None and hold.state == "closed"
    if closed or stock.available < quantity:
        rejected = m.StockRejected(
            order_id=order,
            product_id=product,
            requested=quantity,
            available=0 if closed else stock.available,
        )
        return StockDecision(stock, hold, [rejected])
    held = _moved(stock, available=-quantity, reserved=quantity)
    return StockDecision(
        held,
        Hold(state="reserved", quantity=quantity),
        [reserved],
        _changed(product, held, "reserved", order),
    )


def _release(
    stock: ProductStock | None, hold: Hold | None, command: m.ReleaseStock
) -> StockDecision:
    order, product = command.order_id, command.product_id
    if stock is None:
        return StockDecision(
            None, hold, [m.StockReleased(order_id=order, product_id=product, quantity=0)]
        )
    if hold is not None and hold.state == "closed":
        return StockDecision(
            stock,
            hold,
            [m.StockReleased(order_id=order, product_id=product, quantity=hold.quantity)],
            repeated=True,
        )
    quantity = 0 if hold is None else hold.quantity
    # Closed even when nothing was held: a reservation arriving later must not take stock.
    closed = Hold(state="closed", quantity=quantity)
    reply = m.StockReleased(order_id=order, product_id=product, quantity=quantity)
    if hold is None or not quantity:
        return StockDecision(stock, closed, [reply])
    if hold.state == "reserved":
        released, cause = _moved(stock, available=quantity, reserved=-quantity), "released"
    else:
        released, cause = _moved(stock, available=quantity, sold=-quantity), "returned"
    return StockDecision(released, closed, [reply], _changed(product, released, cause, order))


def _commit(stock: ProductStock | None, hold: Hold | None, command: m.CommitStock) -> StockDecision:
    order, product = command.order_id, command.product_id
    if stock is None or hold is None or hold.state != "reserved":
        # Already sold, released, or never reserved: nothing to move.
        return StockDecision(stock, hold, repeated=stock is not None)
    sold = _moved(stock, reserved=-hold.quantity, sold=hold.quantity)
    return StockDecision(
        sold,
        Hold(state="sold", quantity=hold.quantity),
        changed=_changed(product, sold, "sold", order),
    )
