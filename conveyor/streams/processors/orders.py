"""``orders``: the saga orchestrator, one ``OrderSaga`` per order in a table keyed by order_id.

It reads ``orders.commands`` and ``orders.replies`` (co-partitioned with its table, so an
order's commands, replies and state are always on the same partition) and sends commands to
inventory and payments and the order's public events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.domain import messages as m
from conveyor.domain.codec import MESSAGE_CLASSES
from conveyor.domain.envelope import Envelope
from conveyor.domain.topics import PROCESSOR_INPUTS
from conveyor.streams import metrics
from conveyor.streams.runtime import Processor, Send
from conveyor.streams.saga import OrderSaga, decide, event_id_for

log = logging.getLogger(__name__)

_TERMINAL_EVENTS = (m.OrderConfirmed, m.OrderRejected, m.OrderCancelled)


class SagaRecord(BaseModel):
    """What the table keeps per order: the saga, and what each message it applied sent.

    The table's changelog can be ahead of the records the saga sent: after a crash, a
    message is redelivered to a saga that already applied it, while what it sent then may
    never have reached Kafka. Keeping the outputs per event id lets the saga send exactly
    those again (with the same event ids) instead of ignoring the redelivery.
    """

    model_config = ConfigDict(extra="forbid")

    saga: OrderSaga
    sent: dict[str, list[dict[str, Any]]] = {}


def register(processor: Processor) -> None:
    sagas = processor.state_table("sagas", SagaRecord)
    retention = processor.settings.state_retention_seconds

    def decide_next(envelope: Envelope[m.Message], key: str) -> Sequence[Send]:
        message = envelope.payload
        record = sagas.get(key)
        event_id = str(envelope.event_id)
        if record is not None and event_id in record.sent:
            log.info("order %s: %s redelivered; sending its outputs again", key, message.type)
            resent = [
                MESSAGE_CLASSES[out["type"]].model_validate(out) for out in record.sent[event_id]
            ]
            return sends_for(record.saga, resent)
        decision = decide(None if record is None else record.saga, message)
        if decision.saga is None:
            log.info("order %s: %s ignored: %s", key, message.type, decision.ignored)
            return []
        if decision.ignored:
            log.info("order %s: %s ignored: %s", key, message.type, decision.ignored)
        log.debug(
            "order %s: %s %s -> %s/%s, sends %s",
            key,
            message.type,
            envelope.event_id,
            decision.saga.phase,
            decision.saga.status,
            [output.type for output in decision.outputs],
        )
        sent = {} if record is None else dict(record.sent)
        sent[event_id] = [output.model_dump(mode="json") for output in decision.outputs]
        # A finished saga is kept for the retention window: long enough for any redelivery
        # and for the customer to cancel a confirmed order; then it is deleted.
        finished = decision.saga.phase == "done"
        sagas.put(
            key,
            SagaRecord(saga=decision.saga, sent=sent),
            expires_in=retention if finished else None,
        )
        _count_outcomes(decision.outputs)
        return sends_for(decision.saga, decision.outputs)

    processor.decide_in_batches(PROCESSOR_INPUTS["orders"], decide_next)


def sends_for(saga: OrderSaga, outputs: list[m.Message]) -> list[Send]:
    """What the saga's ``outputs`` are sent as: the order's own events with ids of their
    own, whatever step sent them; commands with ids derived from their cause."""
    return [
        Send(output, event_id_for(saga.order.order_id, output.type))
        if isinstance(output, (m.OrderPlaced, *_TERMINAL_EVENTS))
        else Send(output)
        for output in outputs
    ]


def _count_outcomes(outputs: list[m.Message]) -> None:
    for output in outputs:
        if isinstance(output, m.OrderRejected):
            metrics.SAGA_OUTCOMES.labels("rejected", output.reason.value).inc()
        elif isinstance(output, m.OrderConfirmed):
            metrics.SAGA_OUTCOMES.labels("confirmed", "").inc()
        elif isinstance(output, m.OrderCancelled):
            metrics.SAGA_OUTCOMES.labels("cancelled", "").inc()
