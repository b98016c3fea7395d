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
from conveyor.streams.stock import (
    Hold,
    ProductStock,
    StockRefused,
    announced,
    apply,
    hold_key,
)


def register(processor: Processor) -> None:
    products = processor.state_table("products", ProductStock)
    holds = processor.state_table("holds", Hold)
    retention = processor.settings.state_retention_seconds

    def decide(envelope: Envelope[m.Message], key: str) -> Sequence[Send]:
        command = envelope.payload
        stock = products.get(key)
        held_under = hold_key(command)
        hold = None if held_under is None else holds.get(held_under)
        try:
            decision = apply(stock, hold, command)
        except StockRefused as exc:
            raise Refused(str(exc)) from exc
        if decision.stock is not None and decision.stock != stock:
            products.put(key, decision.stock)
        if held_under is not None and decision.hold is not None and decision.hold != hold:
            # An open reservation stays until the order ends; what ended is kept only as
            # long as a redelivery of its commands may still arrive.
            expires_in = None if decision.hold.is_open else retention
            holds.put(held_under, decision.hold, expires_in=expires_in)
        return [Send(message) for message in announced(UUID(key), decision)]

    processor.decide_in_batches(processor.spec.inputs, decide)
