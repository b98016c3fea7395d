"""``inventory``: stock per product in a table keyed by product_id.

It reads ``inventory.commands``, answers reservations and releases on ``orders.replies`` and
publishes every change of the figures on ``inventory.events``.
"""

from __future__ import annotations

from uuid import UUID

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.domain.topics import PROCESSOR_INPUTS
from conveyor.streams.runtime import Processor, Refused
from conveyor.streams.stock import ProductStock, StockRefused, apply, current_figures


def register(processor: Processor) -> None:
    products = processor.table("products")

    async def on_message(envelope: Envelope[m.Message], key: str) -> None:
        command = envelope.payload
        stored = products.get(key)
        stock = None if stored is None else ProductStock.model_validate(stored)
        try:
            decision = apply(stock, command)
        except StockRefused as exc:
            raise Refused(str(exc)) from exc
        if decision.stock is not None and decision.stock != stock:
            products[key] = decision.stock.model_dump(mode="json")
        for reply in decision.replies:
            await processor.emit(reply, cause=envelope)
        if decision.changed is not None:
            await processor.emit(decision.changed, cause=envelope)
        elif decision.repeated and decision.stock is not None:
            await processor.emit(current_figures(UUID(key), decision.stock), cause=envelope)

    processor.handle(PROCESSOR_INPUTS["inventory"], on_message)
