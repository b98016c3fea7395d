"""The processors' handlers driven in-process, beside the real-Kafka tests of the same paths.

Each handler runs over the tables its processor declares, Faust's own tables with the
``memory://`` store of an app that is never started: a record is made Faust's current event
as the runtime makes it, the handler decides, the tables are flushed as at the end of a
batch, and the test reads what the handler returned to send, what the table holds, and the
changelog records the flush handed to the app's producer (which buffers them, unsent). The
payments processor's act talks to the real payment sandbox, served in-process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from faust.events import Event
from faust.types.tuples import Message as KafkaRecord
from pydantic import BaseModel

from conveyor.devstack.payment_sandbox import create_app
from conveyor.domain import messages as m
from conveyor.domain.codec import decode, encode, message_key
from conveyor.domain.envelope import Envelope
from conveyor.domain.processors import ProcessorName
from conveyor.domain.topics import topic_for
from conveyor.infra.settings import ServiceUrls
from conveyor.streams.gateway import (
    CircuitBreaker,
    GatewayUnavailable,
    PaymentGateway,
    ledger_path,
)
from conveyor.streams.processors.inventory import Inventory
from conveyor.streams.processors.notifications import Customer, Recipients
from conveyor.streams.processors.orders import OrderSagas, SagaRecord, deadline_sends
from conveyor.streams.processors.payments import PaymentCommand, Payments, payment_command
from conveyor.streams.runtime import (
    TRANSIENT_ERRORS,
    Decided,
    Processor,
    Refused,
    Send,
    WorkerSettings,
)
from conveyor.streams.saga import event_id_for
from conveyor.streams.state import StateTable, acting_for, decode_entry
from conveyor.streams.stock import Hold, ProductStock
from tests.streams.test_decisions import PRICE, place
from tests.support.sandbox import fail_next_refunds, refund_failures_left

V = TypeVar("V", bound=BaseModel)
R = TypeVar("R")

RETENTION_SECONDS = 3_600.0
DEADLINE_SECONDS = 120.0
SANDBOX_API_KEY = "sk_test_in_process"


@dataclass(frozen=True)
class ChangelogWrite:
    key: str
    partition: int
    # None: a tombstone.
    value: bytes | None


@dataclass
class InProcess:
    """One processor's Faust app, never started: its tables, and records handed to handlers."""

    processor: Processor
    offsets: itertools.count[int] = field(default_factory=itertools.count)

    def table(self, name: str, model: type[V]) -> StateTable[V]:
        return self.processor.state_table(name, model)

    def record(self, message: m.Message, partition: int) -> tuple[Event, Envelope[m.Message]]:
        """``message`` as a record read from its topic's ``partition``, and its envelope."""
        spec = topic_for(type(message))
        encoded = encode(spec, message)
        headers = list(encoded.headers)
        kafka_record = KafkaRecord(
            spec.name,
            partition,
            next(self.offsets),
            time.time(),
            0,
            headers,
            encoded.key,
            encoded.value,
            None,
        )
        event = Event(self.processor.app, encoded.key, encoded.value, headers, kafka_record)
        return event, decode(spec.name, encoded.key, encoded.value)

    def handle(
        self,
        decide: Callable[[Envelope[m.Message], str], R],
        records: Sequence[tuple[Event, Envelope[m.Message]]],
        tables: Sequence[StateTable[Any]],
    ) -> list[R]:
        """``records`` decided as one batch: in order, each its table writes' partition;
        then every table flushed, as the runtime does before it sends anything."""
        decisions = []
        for event, envelope in records:
            with acting_for(event):
                decisions.append(
                    decide(envelope, message_key(event.message.topic, envelope.payload))
                )
        for table in tables:
            table.flush()
        return decisions

    def changelog_writes(self, table: StateTable[Any]) -> list[ChangelogWrite]:
        """The changelog records of ``table`` handed to the producer since the last call."""
        pending = self.processor.app.producer.buffer.pending
        writes, others = [], []
        while not pending.empty():
            future = pending.get_nowait()
            if (
                future.message.channel.get_topic_name()
                == table.table.changelog_topic.get_topic_name()
            ):
                writes.append(
                    ChangelogWrite(
                        json.loads(future.message.key),
                        future.message.partition,
                        future.message.value,
                    )
                )
            else:
                others.append(future)
        for future in others:
            pending.put_nowait(future)
        return writes


def stored(table: StateTable[V], key: str) -> tuple[V, float | None, int]:
    """What ``table`` holds under ``key``: the value, its expiry and its partition."""
    raw = table.table.data[key]
    return decode_entry(table.model, raw, table.name)


@pytest.fixture
def in_process(tmp_path: Path) -> Callable[[ProcessorName], InProcess]:
    def build(name: ProcessorName) -> InProcess:
        settings = WorkerSettings(store="memory", data_dir=tmp_path)
        return InProcess(Processor(name, ServiceUrls(), settings))

    return build


def types(sends: Sequence[Send]) -> list[str]:
    return [send.message.type for send in sends]


# -- orders --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Orders:
    worker: InProcess
    sagas: OrderSagas
    clock: Clock

    def deliver(self, *records: tuple[Event, Envelope[m.Message]]) -> list[Send]:
        decided = self.worker.handle(self.sagas.decide, records, [self.sagas.table])
        return [send for sends in decided for send in sends]

    def saga(self, order: m.PlaceOrder) -> tuple[SagaRecord, float | None, int]:
        return stored(self.sagas.table, str(order.order_id))


@pytest.fixture
def orders(in_process: Callable[[ProcessorName], InProcess]) -> Orders:
    worker = in_process("orders")
    clock = Clock()
    sagas = OrderSagas(
        worker.table("sagas", SagaRecord),
        retention_seconds=RETENTION_SECONDS,
        deadline_seconds=DEADLINE_SECONDS,
        clock=clock,
    )
    return Orders(worker, sagas, clock)


def test_a_redelivered_place_order_sends_the_same_records_again_and_writes_nothing(
    orders: Orders,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    placed = orders.worker.record(order, partition=2)

    first = orders.deliver(placed)
    assert types(first) == ["OrderPlaced", "ReserveStock", "ReserveStock"]
    assert first[0].event_id == event_id_for(order.order_id, "OrderPlaced")
    record, expires_at, partition = orders.saga(order)
    assert (record.saga.phase, record.saga.status, expires_at, partition) == (
        "reserving",
        m.OrderStatus.PENDING,
        None,
        2,
    )
    assert [(w.key, w.partition) for w in orders.worker.changelog_writes(orders.sagas.table)] == [
        (str(order.order_id), 2)
    ]

    again = orders.deliver(placed)

    assert again == first
    assert orders.worker.changelog_writes(orders.sagas.table) == []


def test_a_saga_restored_beneath_the_table_is_the_one_decided_on(orders: Orders) -> None:
    # Decoded values are kept between batches; a restore after a rebalance writes the
    # table's store without the processor, and must win over what it remembers.
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    orders.deliver(orders.worker.record(order, partition=2))
    key = str(order.order_id)
    placed_only = orders.sagas.table.table.data[key]
    reserved_a = m.StockReserved(order_id=order.order_id, product_id=a, quantity=1)
    assert orders.deliver(orders.worker.record(reserved_a, partition=2)) == []
    # The restore brings back the entry from before StockReserved(a) was counted.
    orders.sagas.table.table.data[key] = placed_only

    reserved_b = m.StockReserved(order_id=order.order_id, product_id=b, quantity=1)
    sends = orders.deliver(orders.worker.record(reserved_b, partition=2))

    # Counted from the restored saga: b alone is reserved, so no payment is asked for yet.
    assert sends == []
    assert orders.saga(order)[0].saga.reserved == [b]


def test_a_deadline_while_reserving_releases_the_stock_then_rejects_the_order_timed_out(
    orders: Orders,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    order = place(a, b)
    orders.deliver(orders.worker.record(order, partition=4))
    orders.deliver(
        orders.worker.record(
            m.StockReserved(order_id=order.order_id, product_id=a, quantity=1), partition=4
        )
    )
    placed_at = orders.clock.now
    assert orders.sagas.pass_deadlines(frozenset({4}), placed_at + DEADLINE_SECONDS - 1) == []

    orders.clock.now = placed_at + DEADLINE_SECONDS
    sends = orders.sagas.pass_deadlines(frozenset({4}), orders.clock.now)

    assert sorted(types(sends)) == ["ReleaseStock", "ReleaseStock"]
    record, _, _ = orders.saga(order)
    assert (record.saga.phase, record.saga.reason) == ("compensating", m.RejectionReason.TIMED_OUT)
    # Passed once: the compensation has a deadline of its own, further away.
    assert orders.sagas.pass_deadlines(frozenset({4}), orders.clock.now) == []
    assert orders.sagas.open_orders.pending_by_age(orders.clock.now)["2m_10m"] == 1

    released = orders.deliver(
        *(
            orders.worker.record(
                m.StockReleased(order_id=order.order_id, product_id=p, quantity=q), partition=4
            )
            for p, q in ((a, 1), (b, 0))
        )
    )

    assert types(released) == ["OrderRejected"]
    rejected = released[0].message
    assert isinstance(rejected, m.OrderRejected)
    assert rejected.reason == m.RejectionReason.TIMED_OUT
    assert released[0].event_id == event_id_for(order.order_id, "OrderRejected")
    record, expires_at, _ = orders.saga(order)
    assert record.saga.status == m.OrderStatus.REJECTED
    # Kept the retention (table expiries are wall-clock time), then deleted.
    assert expires_at == pytest.approx(time.time() + RETENTION_SECONDS, abs=60)
    assert sum(orders.sagas.open_orders.pending_by_age(orders.clock.now).values()) == 0


def test_a_deadline_while_authorizing_voids_and_a_redelivered_reply_asks_no_payment_again(
    orders: Orders,
) -> None:
    product = uuid.uuid4()
    order = place(product)
    orders.deliver(orders.worker.record(order, partition=1))
    reserved = orders.worker.record(
        m.StockReserved(order_id=order.order_id, product_id=product, quantity=1), partition=1
    )
    assert types(orders.deliver(reserved)) == ["AuthorizePayment"]
    before, _, _ = orders.saga(order)

    orders.clock.now += DEADLINE_SECONDS
    sends = orders.sagas.pass_deadlines(frozenset({1}), orders.clock.now)

    assert sorted(types(sends)) == ["ReleaseStock", "VoidPayment"]
    # Ids derived from the deadline: decided again after a crash, the same records go out.
    assert sends == deadline_sends(before.saga, [send.message for send in sends])
    # The reservation's reply comes again: the authorization it sent is not asked again,
    # since it would land behind the void and keep the money.
    assert orders.deliver(reserved) == []


def test_cancelling_a_confirmed_order_refunds_and_restocks_before_it_is_cancelled(
    orders: Orders,
) -> None:
    product = uuid.uuid4()
    order = place(product)
    worker = orders.worker
    orders.deliver(worker.record(order, partition=0))
    orders.deliver(
        worker.record(
            m.StockReserved(order_id=order.order_id, product_id=product, quantity=1), partition=0
        )
    )
    confirmed = orders.deliver(
        worker.record(
            m.PaymentAuthorized(
                order_id=order.order_id, payment_id="pay_1", amount=PRICE, currency="EUR"
            ),
            partition=0,
        )
    )
    assert types(confirmed) == ["CommitStock", "OrderConfirmed"]
    _, confirmed_expiry, _ = orders.saga(order)
    assert confirmed_expiry is not None

    cancel = worker.record(
        m.CancelOrder(order_id=order.order_id, requested_by=order.user_id), partition=0
    )
    compensation = orders.deliver(cancel)

    assert sorted(types(compensation)) == ["RefundPayment", "ReleaseStock"]
    record, expires_at, _ = orders.saga(order)
    assert (record.saga.phase, record.saga.status, expires_at) == (
        "compensating",
        m.OrderStatus.CONFIRMED,
        None,
    )
    assert orders.deliver(cancel) == compensation

    ended = orders.deliver(
        worker.record(
            m.StockReleased(order_id=order.order_id, product_id=product, quantity=1), partition=0
        ),
        worker.record(
            m.PaymentRefunded(
                order_id=order.order_id, payment_id="pay_1", amount=PRICE, currency="EUR"
            ),
            partition=0,
        ),
    )
    assert types(ended) == ["OrderCancelled"]
    record, _, _ = orders.saga(order)
    assert record.saga.status == m.OrderStatus.CANCELLED


def test_a_worker_given_partitions_finds_their_open_sagas_in_the_table_and_no_others(
    orders: Orders,
) -> None:
    ours, theirs = place(uuid.uuid4()), place(uuid.uuid4())
    orders.deliver(orders.worker.record(ours, partition=3))
    orders.deliver(orders.worker.record(theirs, partition=5))
    # Another worker over the same table (a restart, a rebalance): its index is rebuilt from
    # the table for the partitions it holds.
    restarted = OrderSagas(
        orders.sagas.table,
        retention_seconds=RETENTION_SECONDS,
        deadline_seconds=DEADLINE_SECONDS,
        clock=orders.clock,
    )

    sends = restarted.pass_deadlines(frozenset({3}), orders.clock.now + DEADLINE_SECONDS)

    assert {send.message.order_id for send in sends} == {ours.order_id}  # type: ignore[attr-defined]
    assert [w.partition for w in orders.worker.changelog_writes(orders.sagas.table)] == [3, 5, 3]


# -- inventory -----------------------------------------------------------------------------


@dataclass
class Stock:
    worker: InProcess
    inventory: Inventory

    def deliver(self, *records: tuple[Event, Envelope[m.Message]]) -> list[Send]:
        tables: list[StateTable[Any]] = [self.inventory.products, self.inventory.holds]
        decided = self.worker.handle(self.inventory.decide, records, tables)
        return [send for sends in decided for send in sends]


@pytest.fixture
def stock(in_process: Callable[[ProcessorName], InProcess]) -> Stock:
    worker = in_process("inventory")
    inventory = Inventory(
        worker.table("products", ProductStock),
        worker.table("holds", Hold),
        retention_seconds=RETENTION_SECONDS,
    )
    return Stock(worker, inventory)


def product(stock: Stock, quantity: int, partition: int) -> UUID:
    product_id = uuid.uuid4()
    upsert = m.UpsertProduct(product_id=product_id, sku="MUG", name="Mug", initial_stock=quantity)
    stock.deliver(stock.worker.record(upsert, partition))
    stock.worker.changelog_writes(stock.inventory.products)
    return product_id


def test_a_batch_of_reservations_writes_the_product_once_and_each_hold_in_its_partition(
    stock: Stock,
) -> None:
    mug = product(stock, 2, partition=5)
    orders = [uuid.uuid4() for _ in range(3)]

    sends = stock.deliver(
        *(
            stock.worker.record(m.ReserveStock(product_id=mug, order_id=o, quantity=1), 5)
            for o in orders
        )
    )

    assert types(sends) == [
        "StockReserved",
        "StockChanged",
        "StockReserved",
        "StockChanged",
        "StockRejected",
    ]
    counters, _, _ = stored(stock.inventory.products, str(mug))
    assert (counters.available, counters.reserved, counters.received) == (0, 2, 2)
    assert [
        (w.key, w.partition) for w in stock.worker.changelog_writes(stock.inventory.products)
    ] == [(str(mug), 5)]
    holds = stock.worker.changelog_writes(stock.inventory.holds)
    assert sorted(w.key for w in holds) == sorted(f"{mug}:{o}" for o in orders[:2])
    assert {w.partition for w in holds} == {5}
    hold, expires_at, _ = stored(stock.inventory.holds, f"{mug}:{orders[0]}")
    assert (hold.state, expires_at) == ("reserved", None)


def test_a_redelivered_reservation_answers_again_and_moves_nothing(stock: Stock) -> None:
    mug = product(stock, 5, partition=0)
    reserve = stock.worker.record(
        m.ReserveStock(product_id=mug, order_id=uuid.uuid4(), quantity=2), partition=0
    )
    stock.deliver(reserve)
    stock.worker.changelog_writes(stock.inventory.products)
    stock.worker.changelog_writes(stock.inventory.holds)

    again = stock.deliver(reserve)

    # The reply again, and the current figures again (they may be what a crash lost).
    assert types(again) == ["StockReserved", "StockChanged"]
    counters, _, _ = stored(stock.inventory.products, str(mug))
    assert (counters.available, counters.reserved) == (3, 2)
    assert stock.worker.changelog_writes(stock.inventory.products) == []
    assert stock.worker.changelog_writes(stock.inventory.holds) == []


def test_a_release_that_overtakes_its_reservation_closes_the_order_for_the_retention(
    stock: Stock,
) -> None:
    mug = product(stock, 5, partition=1)
    order_id = uuid.uuid4()

    released = stock.deliver(
        stock.worker.record(m.ReleaseStock(product_id=mug, order_id=order_id), partition=1)
    )
    late = stock.deliver(
        stock.worker.record(
            m.ReserveStock(product_id=mug, order_id=order_id, quantity=1), partition=1
        )
    )

    assert types(released) == ["StockReleased"]
    assert types(late) == ["StockRejected"]
    hold, expires_at, _ = stored(stock.inventory.holds, f"{mug}:{order_id}")
    assert (hold.state, hold.quantity) == ("closed", 0)
    assert expires_at == pytest.approx(time.time() + RETENTION_SECONDS, abs=60)
    counters, _, _ = stored(stock.inventory.products, str(mug))
    assert counters.available == 5


def test_an_adjustment_below_zero_is_refused_for_the_dead_letters_and_writes_nothing(
    stock: Stock,
) -> None:
    mug = product(stock, 2, partition=3)
    adjust = m.AdjustStock(product_id=mug, adjustment_id=uuid.uuid4(), delta=-3)

    with pytest.raises(Refused, match="negative"):
        stock.deliver(stock.worker.record(adjust, partition=3))

    counters, _, _ = stored(stock.inventory.products, str(mug))
    assert (counters.available, counters.received) == (2, 2)
    assert stock.worker.changelog_writes(stock.inventory.holds) == []


# -- notifications -------------------------------------------------------------------------


@pytest.fixture
def notifications(
    in_process: Callable[[ProcessorName], InProcess],
) -> tuple[InProcess, Recipients]:
    """The notifications worker in-process, and its decider over its ``customers`` table."""
    worker = in_process("notifications")
    return worker, Recipients(
        worker.table("customers", Customer), retention_seconds=RETENTION_SECONDS
    )


def test_a_terminal_event_is_an_email_to_the_customer_its_order_was_placed_by(
    notifications: tuple[InProcess, Recipients],
) -> None:
    worker, recipients = notifications
    order = place(uuid.uuid4())
    placed = m.OrderPlaced(**order.model_dump(exclude={"type", "payment_token"}))
    confirmed = m.OrderConfirmed(order_id=order.order_id, user_id=order.user_id, payment_id="p")
    stray = m.OrderConfirmed(order_id=uuid.uuid4(), user_id=order.user_id, payment_id="p")

    decided = worker.handle(
        recipients.decide,
        [worker.record(placed, 4), worker.record(confirmed, 4)],
        [recipients.customers],
    )

    assert decided[0] is None
    email = decided[1]
    assert email is not None
    assert (email.recipient, email.event) == ("ada@example.com", confirmed)
    customer, expires_at, partition = stored(recipients.customers, str(order.order_id))
    assert (customer.email, partition) == ("ada@example.com", 4)
    assert expires_at is not None
    with pytest.raises(Refused, match="no recipient"):
        worker.handle(recipients.decide, [worker.record(stray, 4)], [recipients.customers])


def test_an_order_placed_without_an_address_calls_for_no_email_and_goes_to_no_dlq(
    notifications: tuple[InProcess, Recipients],
) -> None:
    worker, recipients = notifications
    order = place(uuid.uuid4()).model_copy(update={"customer_email": None})
    placed = m.OrderPlaced(**order.model_dump(exclude={"type", "payment_token"}))
    confirmed = m.OrderConfirmed(order_id=order.order_id, user_id=order.user_id, payment_id="p")

    decided = worker.handle(
        recipients.decide,
        [worker.record(placed, 4), worker.record(confirmed, 4)],
        [recipients.customers],
    )

    assert decided == [None, None]
    customer, _, _ = stored(recipients.customers, str(order.order_id))
    assert customer.email is None


# -- payments, against the payment sandbox -------------------------------------------------


@pytest.fixture
async def sandbox() -> AsyncIterator[str]:
    """The payment sandbox, served in-process; answers ``tok_timeout`` after a second."""
    server = TestServer(create_app(timeout_delay=1.0, api_key=SANDBOX_API_KEY))
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def gateway(sandbox: str) -> AsyncIterator[PaymentGateway]:
    client = PaymentGateway(
        sandbox,
        api_key=SANDBOX_API_KEY,
        timeout_seconds=0.5,
        attempts=1,
        backoff_seconds=0.05,
        breaker=CircuitBreaker(5, 15.0),
    )
    try:
        yield client
    finally:
        await client.close()


@dataclass
class PaymentsUnderTest:
    worker: InProcess
    payments: Payments
    replies: list[m.Message]

    async def act(self, *commands: PaymentCommand) -> list[m.Message]:
        """``commands`` as one batch; the replies in the order they were sent."""
        batch = []
        for command in commands:
            _, envelope = self.worker.record(command, partition=0)
            decision = payment_command(envelope, str(command.order_id))
            batch.append(Decided(envelope, decision))
        sent_before = len(self.replies)
        assert await self.payments.act(batch) == []
        return self.replies[sent_before:]


@pytest.fixture
def payments(
    in_process: Callable[[ProcessorName], InProcess], gateway: PaymentGateway
) -> PaymentsUnderTest:
    replies: list[m.Message] = []

    async def reply(message: m.Message, cause: Envelope[m.Message]) -> None:
        assert cause.payload.order_id == message.order_id  # type: ignore[attr-defined]
        replies.append(message)

    return PaymentsUnderTest(
        in_process("payments"), Payments(gateway, reply, concurrency=4), replies
    )


async def ledger(sandbox: str, order_id: UUID) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    async with (
        ClientSession() as session,
        session.get(f"{sandbox}{ledger_path(str(order_id))}", headers=headers) as answer,
    ):
        body = await answer.json()
    items: list[dict[str, Any]] = body["items"]
    return items


def authorize(token: str = "tok_visa") -> m.AuthorizePayment:
    return m.AuthorizePayment(
        order_id=uuid.uuid4(), amount=PRICE, currency="EUR", payment_token=token
    )


async def test_an_authorization_asked_twice_is_one_payment_at_the_gateway(
    payments: PaymentsUnderTest, sandbox: str
) -> None:
    command = authorize()

    first = await payments.act(command)
    again = await payments.act(command)

    assert [type(reply) for reply in first] == [m.PaymentAuthorized]
    assert again == first
    held = await ledger(sandbox, command.order_id)
    assert [(p["status"], p["amount"]) for p in held] == [("authorized", "5.00")]


async def test_a_declined_card_is_payment_declined(payments: PaymentsUnderTest) -> None:
    [reply] = await payments.act(authorize("tok_chargeDeclined"))

    assert isinstance(reply, m.PaymentDeclined)
    assert reply.reason == m.RejectionReason.PAYMENT_DECLINED


async def test_an_orders_commands_are_carried_out_in_order_and_a_void_gives_back_its_money(
    payments: PaymentsUnderTest, sandbox: str
) -> None:
    command = authorize()
    void = m.VoidPayment(order_id=command.order_id)

    authorized, voided = await payments.act(command, void)

    assert isinstance(authorized, m.PaymentAuthorized)
    assert voided == m.PaymentVoided(
        order_id=command.order_id, payment_ids=(authorized.payment_id,)
    )
    assert [p["status"] for p in await ledger(sandbox, command.order_id)] == ["voided"]


async def test_a_card_the_gateway_does_not_answer_holds_up_only_its_own_order(
    payments: PaymentsUnderTest,
) -> None:
    stuck, fine = authorize("tok_timeout"), authorize()

    replies = await payments.act(stuck, fine)

    assert [reply.order_id for reply in replies] == [fine.order_id, stuck.order_id]  # type: ignore[attr-defined]
    unanswered = replies[1]
    assert isinstance(unanswered, m.PaymentDeclined)
    assert unanswered.reason == m.RejectionReason.PAYMENT_UNAVAILABLE


async def test_a_refund_the_gateway_fails_is_transient_and_refunds_once_when_tried_again(
    payments: PaymentsUnderTest, sandbox: str
) -> None:
    command = authorize()
    [authorized] = await payments.act(command)
    assert isinstance(authorized, m.PaymentAuthorized)
    refund = m.RefundPayment(
        order_id=command.order_id, payment_id=authorized.payment_id, amount=PRICE, currency="EUR"
    )
    async with ClientSession() as faults:
        await fail_next_refunds(faults, sandbox, 1)

    with pytest.raises(TRANSIENT_ERRORS):
        await payments.act(refund)
    [refunded] = await payments.act(refund)
    assert await payments.act(refund) == [refunded]

    assert isinstance(refunded, m.PaymentRefunded)
    [payment] = await ledger(sandbox, command.order_id)
    assert [r["amount"] for r in payment["refunds"]] == ["5.00"]


async def test_a_half_open_breaker_lets_one_trial_call_through_and_fails_the_rest_fast(
    sandbox: str,
) -> None:
    """After the reset time, a gateway still down costs one call, not every call waiting."""
    reset_seconds = 0.3
    gateway = PaymentGateway(
        sandbox,
        api_key=SANDBOX_API_KEY,
        timeout_seconds=2.0,
        attempts=1,
        backoff_seconds=0.01,
        breaker=CircuitBreaker(2, reset_seconds),
    )
    faults = ClientSession()
    try:
        payments = []
        for _ in range(5):
            order_id = str(uuid.uuid4())
            made = await gateway.authorize(order_id, PRICE, "EUR", "tok_visa")
            assert made.payment_id is not None
            payments.append((order_id, made.payment_id))

        async def refund(index: int) -> str | BaseException:
            order_id, payment_id = payments[index]
            try:
                return await gateway.refund(order_id, payment_id, PRICE)
            except GatewayUnavailable as refused:
                return refused

        await fail_next_refunds(faults, sandbox, 100)
        for index in range(2):  # two failures in a row open the circuit
            assert isinstance(await refund(index), GatewayUnavailable)
        assert isinstance(await refund(0), GatewayUnavailable)
        assert await refund_failures_left(faults, sandbox) == 100 - 2  # open: never reached it

        await asyncio.sleep(reset_seconds)
        half_open = await asyncio.gather(*(refund(index) for index in range(5)))
        assert all(isinstance(outcome, GatewayUnavailable) for outcome in half_open)
        assert await refund_failures_left(faults, sandbox) == 100 - 3  # one trial call, failed
        assert isinstance(await refund(0), GatewayUnavailable)  # so it opened again
        assert await refund_failures_left(faults, sandbox) == 100 - 3
        await fail_next_refunds(faults, sandbox, 0)

        await asyncio.sleep(reset_seconds)
        assert isinstance(await refund(0), str)  # the trial succeeds: closed
        refunded = await asyncio.gather(*(refund(index) for index in range(1, 5)))
        assert all(isinstance(refund_id, str) for refund_id in refunded)
    finally:
        await faults.close()
        await gateway.close()


def test_a_record_that_is_no_payment_command_is_refused(
    in_process: Callable[[ProcessorName], InProcess],
) -> None:
    worker = in_process("payments")
    _, envelope = worker.record(m.ReleaseStock(product_id=uuid.uuid4(), order_id=uuid.uuid4()), 0)

    with pytest.raises(Refused):
        payment_command(envelope, str(envelope.payload.order_id))  # type: ignore[attr-defined]
