"""``inventory``: stock per product, and each order's hold on it, in tables keyed by product.

It reads ``inventory.commands``, answers reservations and releases on ``orders.replies`` and
publishes every change of the figures on ``inventory.events``. Commands are decided in
batches: a hot product's record is read and written once per batch, however many of the
batch's orders buy it. A hold's key starts with its product's id and is written while a
command of that product is handled, so it lives in the product's partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.streams.runtime import Processor, Refused, Send
from conveyor.streams.state import StateTable
from conveyor.streams.stock import (
    Hold,
    ProductStock,
    StockRefused,
    announced,
    apply,
    hold_key,
)


def register(processor: Processor) -> None:
    """The Faust glue: the stock's decisions on ``inventory.commands``, a batch at a time."""
    stock = Inventory(
        processor.state_table("products", ProductStock),
        processor.state_table("holds", Hold),
        retention_seconds=processor.settings.state_retention_seconds,
    )
    processor.decide_in_batches(processor.spec.inputs, stock.decide)


class Inventory:
    """The inventory's per-record decision (``Decider``) over its two tables.

    It reads and writes ``products`` and ``holds`` while the runtime has made the record
    Faust's current event, and returns the replies and figures to send; nothing here talks
    to Kafka, so a test drives it with Faust's in-memory tables.
    """

    def __init__(
        self,
        products: StateTable[ProductStock],
        holds: StateTable[Hold],
        *,
        retention_seconds: float,
    ) -> None:
        self.products = products
        self.holds = holds
        self.retention_seconds = retention_seconds

    def decide(self, envelope: Envelope[m.Message], key: str) -> Sequence[Send]:
        command = envelope.payload
        stock = self.products.get(key)
        held_under = hold_key(command)
        hold = None if held_under is None else self.holds.get(held_under)
        try:
            decision = apply(stock, hold, command)
        except StockRefused as exc:
            raise Refused(str(exc)) from exc
        if decision.stock is not None and decision.stock != stock:
            self.products.put(key, decision.stock)
        if held_under is not None and decision.hold is not None and decision.hold != hold:
            # An open reservation stays until the order ends; what ended is kept only as
            # long as a redelivery of its commands may still arrive.
            expires_in = None if decision.hold.is_open else self.retention_seconds
            self.holds.put(held_under, decision.hold, expires_in=expires_in)
        return [Send(message) for message in announced(UUID(key), decision)]
