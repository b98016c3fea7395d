"""``orders``: the saga orchestrator, one ``OrderSaga`` per order in a table keyed by order_id.

It reads ``orders.commands`` and ``orders.replies`` (co-partitioned with its table, so an
order's commands, replies and state are always on the same partition) and sends commands to
inventory and payments and the order's public events.
"""

from __future__ import annotations

import logging

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.domain.topics import ORDERS_COMMANDS, ORDERS_REPLIES
from conveyor.streams import metrics
from conveyor.streams.runtime import Processor
from conveyor.streams.saga import OrderSaga, decide, event_id_for

log = logging.getLogger(__name__)

_TERMINAL_EVENTS = (m.OrderConfirmed, m.OrderRejected, m.OrderCancelled)


def register(processor: Processor) -> None:
    sagas = processor.table("sagas")

    async def on_message(envelope: Envelope[m.Message], key: str) -> None:
        message = envelope.payload
        stored = sagas.get(key)
        saga = None if stored is None else OrderSaga.model_validate(stored)
        decision = decide(saga, message)
        if decision.ignored:
            log.info("order %s: %s ignored: %s", key, message.type, decision.ignored)
            return
        if decision.saga is not None:
            sagas[key] = decision.saga.model_dump(mode="json")
        for output in decision.outputs:
            event_id = None
            if isinstance(output, (m.OrderPlaced, *_TERMINAL_EVENTS)):
                event_id = event_id_for(decision.saga.order.order_id, output.type)  # type: ignore[union-attr]
            await processor.emit(output, cause=envelope, event_id=event_id)
            if isinstance(output, m.OrderRejected):
                metrics.SAGA_OUTCOMES.labels("rejected", output.reason.value).inc()
            elif isinstance(output, m.OrderConfirmed):
                metrics.SAGA_OUTCOMES.labels("confirmed", "").inc()
            elif isinstance(output, m.OrderCancelled):
                metrics.SAGA_OUTCOMES.labels("cancelled", "").inc()

    processor.handle([ORDERS_COMMANDS, ORDERS_REPLIES], on_message)
