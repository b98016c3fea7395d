"""``orders``: the saga orchestrator, one ``OrderSaga`` per order in a table keyed by order_id.

It reads ``orders.commands`` and ``orders.replies`` (co-partitioned with its table, so an
order's commands, replies and state are always on the same partition) and sends commands to
inventory and payments and the order's public events.

A timer sweeps the deadlines of the open sagas of the partitions this worker holds, every
``DEADLINE_SWEEP_SECONDS``, through an index in memory (``deadlines.OpenOrders``), and sets
the pending-orders gauge.

The handling is ``OrderSagas``, over the table it is given; ``register`` is only the Faust
glue (the batch loop, the timer, sending), so a test drives the handling in-process.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.domain import messages as m
from conveyor.domain.codec import MESSAGE_CLASSES, derived_event_id
from conveyor.domain.envelope import Envelope
from conveyor.streams import metrics
from conveyor.streams.deadlines import OpenOrders
from conveyor.streams.runtime import Processor, Send
from conveyor.streams.saga import DEADLINE_PASSED, OrderSaga, Timing, decide, event_id_for
from conveyor.streams.state import (
    StateTable,
    acting_for_partition,
    current_partition,
    decode_entry,
    entry_expiry,
)

log = logging.getLogger(__name__)

_TERMINAL_EVENTS = (m.OrderConfirmed, m.OrderRejected, m.OrderCancelled)

# The index makes a sweep cost what is due, so it can run often: an order is compensated
# within a second of its deadline, and the gauge is as fresh.
DEADLINE_SWEEP_SECONDS = 1.0
_DEADLINE_NAMESPACE = uuid.UUID("2d7c55b8-93f0-4a5e-8d0b-4b9f3e6a1c27")


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
    """The Faust glue: the sagas' decisions on the inputs, their deadlines on a timer."""
    sagas = OrderSagas(
        processor.state_table("sagas", SagaRecord),
        retention_seconds=processor.settings.state_retention_seconds,
        deadline_seconds=processor.settings.order_deadline_seconds,
    )
    processor.decide_in_batches(processor.spec.inputs, sagas.decide)

    async def sweep_deadlines() -> None:
        app = processor.app
        # TableManagerT leaves out the recovery service its one implementation has.
        if app.rebalancing or app.tables.recovery.in_recovery:  # type: ignore[attr-defined]
            return
        changelog = sagas.table.table.changelog_topic.get_topic_name()
        partitions = frozenset(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog
        )
        now = sagas.clock()
        for send in sagas.pass_deadlines(partitions, now):
            await processor.emit(send.message, cause=None, event_id=send.event_id)
        for label, count in sagas.open_orders.pending_by_age(now).items():
            metrics.ORDERS_PENDING.labels(label).set(count)

    processor.app.timer(DEADLINE_SWEEP_SECONDS)(sweep_deadlines)


class OrderSagas:
    """The orders processor's handling, over its saga table: what the runtime calls.

    ``decide`` is the per-record decision (``Decider``): it reads and writes ``table`` while
    the runtime has made the record Faust's current event, and returns what to send.
    ``pass_deadlines`` is the timer's: it applies the deadlines that have come and writes the
    sagas it changed (flushed, as a batch's are), and returns what they owe. Nothing here
    talks to Kafka, so a test drives both with Faust's in-memory tables.
    """

    def __init__(
        self,
        table: StateTable[SagaRecord],
        *,
        retention_seconds: float,
        deadline_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.retention_seconds = retention_seconds
        self.deadline_seconds = deadline_seconds
        self.clock = clock
        self.open_orders = OpenOrders()
        self._indexed_for: frozenset[int] | None = None

    def decide(self, envelope: Envelope[m.Message], key: str) -> Sequence[Send]:
        message = envelope.payload
        record = self.table.get(key)
        event_id = str(envelope.event_id)
        if record is not None and event_id in record.sent:
            log.info("order %s: %s redelivered; sending its outputs again", key, message.type)
            resent = [
                MESSAGE_CLASSES[out["type"]].model_validate(out)
                for out in record.sent[event_id]
                # Once the saga gave up on the payment (a deadline, a cancel), an
                # authorization asked again would land behind its VoidPayment and keep money.
                if out["type"] != "AuthorizePayment" or record.saga.phase == "authorizing"
            ]
            return sends_for(record.saga, resent)
        timing = Timing(self.clock(), self.deadline_seconds)
        decision = decide(None if record is None else record.saga, message, timing)
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
        if isinstance(message, m.PaymentVoided) and message.payment_ids:
            log.info("order %s: the gateway gave back %s", key, ", ".join(message.payment_ids))
        sent = {} if record is None else dict(record.sent)
        sent[event_id] = [output.model_dump(mode="json") for output in decision.outputs]
        self._store(key, record, SagaRecord(saga=decision.saga, sent=sent), current_partition())
        _count_outcomes(decision.outputs)
        return sends_for(decision.saga, decision.outputs)

    def pass_deadlines(self, partitions: frozenset[int], now: float) -> list[Send]:
        """Apply the deadline of every open saga of ``partitions`` whose time has come.

        The index of open sagas is rebuilt by one walk of the table whenever ``partitions``
        (this worker's assignment) changed. The sagas changed are written before this
        returns; what they owe is returned, to be sent after.
        """
        if partitions != self._indexed_for:
            self.open_orders.rebuild(
                open_sagas(self.table.table.data.items(), self.table.name, partitions),
                now,
                self.deadline_seconds,
            )
            self._indexed_for = partitions
        timing = Timing(now, self.deadline_seconds)
        sends: list[Send] = []
        for key, partition in self.open_orders.due(now):
            with acting_for_partition(self.table, partition):
                record = self.table.get(key)
                if record is None:
                    continue
                decision = decide(record.saga, DEADLINE_PASSED, timing)
                if decision.ignored or decision.saga is None:
                    continue
                log.info(
                    "order %s: deadline passed while %s; sends %s",
                    key,
                    record.saga.phase,
                    [output.type for output in decision.outputs],
                )
                metrics.SAGA_DEADLINES_PASSED.labels(record.saga.phase).inc()
                after = SagaRecord(saga=decision.saga, sent=record.sent)
                self._store(key, record, after, partition)
                sends.extend(deadline_sends(record.saga, decision.outputs))
        # Written before sent, as for records: if the worker dies in between, the saga's
        # new deadline brings the sweep back to send what is still owed.
        self.table.flush()
        return sends

    def _store(
        self, key: str, before: SagaRecord | None, after: SagaRecord, partition: int
    ) -> None:
        """Write ``after`` to the table (in the current batch) and follow it in the index."""
        # A finished saga is kept for the retention window: long enough for any redelivery
        # and for the customer to cancel a confirmed order; then it is deleted.
        finished = after.saga.phase == "done"
        self.table.put(key, after, expires_in=self.retention_seconds if finished else None)
        self.open_orders.track(
            key, partition, after.saga, None if before is None else before.saga, self.clock()
        )


def sends_for(saga: OrderSaga, outputs: list[m.Message]) -> list[Send]:
    """What the saga's ``outputs`` are sent as: the order's own events with ids of their
    own, whatever step sent them; commands with ids derived from their cause."""
    return [
        Send(output, event_id_for(saga.order.order_id, output.type))
        if isinstance(output, (m.OrderPlaced, *_TERMINAL_EVENTS))
        else Send(output)
        for output in outputs
    ]


def deadline_sends(before: OrderSaga, outputs: list[m.Message]) -> list[Send]:
    """What a deadline decision sends, with ids derived from the deadline that caused them:
    the same deadline decided again (after a crash) sends the very same records."""
    cause = uuid.uuid5(_DEADLINE_NAMESPACE, f"{before.order.order_id}:{before.deadline!r}")
    return [Send(output, derived_event_id(cause, output)) for output in outputs]


def open_sagas(
    entries: Iterable[tuple[str, bytes]], table: str, partitions: frozenset[int]
) -> list[tuple[str, int, OrderSaga]]:
    """The open sagas among the saga table's raw ``entries`` of ``partitions``: those stored
    without an expiry (finished ones have one), so only they are decoded and validated."""
    found = []
    for key, raw in entries:
        expires_at, partition = entry_expiry(raw, table)
        if expires_at is None and partition in partitions:
            record, _, _ = decode_entry(SagaRecord, raw, table)
            found.append((key, partition, record.saga))
    return found


def _count_outcomes(outputs: list[m.Message]) -> None:
    for output in outputs:
        if isinstance(output, m.OrderRejected):
            metrics.SAGA_OUTCOMES.labels("rejected", output.reason.value).inc()
        elif isinstance(output, m.OrderConfirmed):
            metrics.SAGA_OUTCOMES.labels("confirmed", "").inc()
        elif isinstance(output, m.OrderCancelled):
            metrics.SAGA_OUTCOMES.labels("cancelled", "").inc()
