"""The payments processor on the real stack and sandbox.

- A batch's gateway calls run side by side and each answer goes out as soon as it is known,
  so a card the gateway is slow to answer holds up only its own order.
- Money is never wrong: a late or malformed answer is looked up by the order's reference, a
  VoidPayment gives back whatever the gateway holds, and the gateway keeps an order's total
  if it is confirmed and nothing otherwise.
- Gateway answers are told apart: a refused key is payment_unavailable (counted, never a
  decline), a 429 is tried again, and one slow card never opens the breaker for everyone.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from conveyor.devstack.certificates import LocalAuthority
from conveyor.devstack.money import gateway_ledger, gateway_session
from conveyor.domain import messages as m
from conveyor.domain.codec import decode
from conveyor.domain.topics import DEFAULT_PARTITIONS
from tests.support.shop import (
    Shop,
    assert_money_settled,
    key_in_partition_of,
    read_records,
)
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUICK_ORDERS = 5
# The slow card's one attempt waits for the sandbox's answer (a 504 after its timeout delay):
# time for the quick orders to finish first, unless they wait behind it. A batch window long
# enough that the backlog is surely one batch.
SLOW_CARD_ENDS_LATE = {
    "CONVEYOR_PAYMENT_TIMEOUT_SECONDS": "20",
    "CONVEYOR_PAYMENT_ATTEMPTS": "1",
    "CONVEYOR_BATCH_SECONDS": "1",
}


async def wait_authorizations_queued(
    bootstrap: str, orders: list[m.PlaceOrder], within: float = 60.0
) -> None:
    """Until the saga has asked payments to authorize each of ``orders``."""
    wanted = {str(order.order_id) for order in orders}

    async def not_asked() -> set[str]:
        # Keys only: other tests leave records on the topic that are not JSON on purpose.
        asked = {
            record.key.decode()
            for record in await read_records(bootstrap, "payments.commands")
            if record.key is not None
        }
        return wanted - asked

    await eventually_async(
        not_asked,
        "payments asked to authorize every order",
        until=lambda missing: not missing,
        within=within,
        interval=0.2,
    )


async def test_a_card_that_never_answers_holds_up_only_its_own_order(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    product = await shop.add_product(QUICK_ORDERS + 1)
    workers.stop("payments")
    try:
        # Queued while payments is away, the slow card first, all in one partition of
        # payments.commands: one fetch, one batch when it is back.
        slow = shop.order([(product, 1)], token="tok_timeout")
        quick = [
            shop.order([(product, 1)]).model_copy(
                update={"order_id": key_in_partition_of(slow.order_id, DEFAULT_PARTITIONS)}
            )
            for _ in range(QUICK_ORDERS)
        ]
        for order in (slow, *quick):
            await shop.publisher.publish(order)
        await wait_authorizations_queued(stack.urls.kafka_bootstrap_servers, [slow, *quick])
    finally:
        await asyncio.to_thread(workers.start_with, "payments", SLOW_CARD_ENDS_LATE)
    try:
        for order in quick:
            await shop.wait_status(order.order_id, {"confirmed"})
        # The gateway's timeout is still running for the slow card.
        slow_row = await shop.order_row(slow.order_id)
        assert slow_row is not None
        assert slow_row["status"] == "pending"
        ended = await shop.wait_status(slow.order_id)
        assert (ended["status"], ended["reason"]) == ("rejected", "payment_unavailable")
    finally:
        workers.stop("payments")
        await asyncio.to_thread(workers.start, "payments")


@asynccontextmanager
async def payments_started_with(workers: Workers, env: dict[str, str]) -> AsyncIterator[None]:
    """The payments processor restarted with ``env``, and restarted as before afterwards."""
    workers.stop("payments")
    await asyncio.to_thread(workers.start_with, "payments", env)
    try:
        yield
    finally:
        workers.stop("payments")
        await asyncio.to_thread(workers.start, "payments")


def metric_total(workers: Workers, metric: str, **labels: str) -> float:
    """The sum of ``metric``'s samples on the payments worker that carry ``labels``."""
    return sum(
        value
        for sample_labels, value in workers.samples("payments", metric)
        if labels.items() <= sample_labels.items()
    )


async def ledger_of(stack: RunningStack, order_id: UUID) -> list[dict[str, Any]]:
    return await gateway_ledger(
        stack.urls,
        reference=str(order_id),
    )


async def replies_of(stack: RunningStack, order_id: UUID, kind: type[m.Message]) -> list[m.Message]:
    key = str(order_id).encode()
    replies = [
        decode("orders.replies", record.key, record.value).payload
        for record in await read_records(stack.urls.kafka_bootstrap_servers, "orders.replies")
        if record.key == key
    ]
    return [reply for reply in replies if isinstance(reply, kind)]


async def wait_replies(
    stack: RunningStack, order_id: UUID, kind: type[m.Message], count: int = 1,
    within: float = 90.0,
) -> list[m.Message]:  # fmt: skip
    return await eventually_async(
        lambda: replies_of(stack, order_id, kind),
        f"{count} {kind.__name__} for {order_id}",
        until=lambda found: len(found) >= count,
        within=within,
        interval=0.5,
    )


async def test_a_late_authorization_is_found_by_its_reference_and_the_order_confirmed(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    product = await shop.add_product(1)
    # One attempt: the answer is surely lost, and only the lookup can find the payment.
    async with payments_started_with(workers, {"CONVEYOR_PAYMENT_ATTEMPTS": "1"}):
        order = await shop.place([(product, 1)], token="tok_lateAuthorize")
        row = await shop.wait_status(order.order_id)
        found = metric_total(workers, "conveyor_payment_reconciliations_total", result="authorized")
    assert (row["status"], row["reason"]) == ("confirmed", None)
    assert found >= 1
    [payment] = await ledger_of(stack, order.order_id)
    assert (payment["status"], payment["amount"]) == ("authorized", "10.00")
    await assert_money_settled(stack.urls, [order])


async def test_a_malformed_answer_is_reconciled_and_nothing_is_left_pending(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    product = await shop.add_product(2)
    before = metric_total(workers, "conveyor_payment_reconciliations_total", result="authorized")
    order = await shop.place([(product, 2)], token="tok_malformed")

    row = await shop.wait_status(order.order_id)

    assert (row["status"], row["reason"]) == ("confirmed", None)
    after = metric_total(workers, "conveyor_payment_reconciliations_total", result="authorized")
    assert after == before + 1
    await assert_money_settled(stack.urls, [order])


async def test_a_late_authorization_the_gateway_cannot_be_asked_about_is_voided(
    shop: Shop, stack: RunningStack
) -> None:
    """The gateway takes the charge, then freezes: the answer and the lookup are both lost,
    the order is rejected payment_unavailable, and the charge is voided once the gateway is
    back (the saga's VoidPayment)."""
    sandbox = stack.local.state.load()["payments"]
    product = await shop.add_product(1)
    order = await shop.place([(product, 1)], token="tok_lateAuthorize")
    await eventually_async(
        lambda: ledger_of(stack, order.order_id),
        "the sandbox took the charge",
        within=60,
        interval=0.05,
    )
    os.kill(sandbox.pid, signal.SIGSTOP)
    try:
        [declined] = await wait_replies(stack, order.order_id, m.PaymentDeclined)
    finally:
        os.kill(sandbox.pid, signal.SIGCONT)
    assert isinstance(declined, m.PaymentDeclined)
    assert declined.reason == m.RejectionReason.PAYMENT_UNAVAILABLE

    row = await shop.wait_status(order.order_id)

    assert (row["status"], row["reason"]) == ("rejected", "payment_unavailable")
    [payment] = await ledger_of(stack, order.order_id)
    assert payment["status"] == "voided"
    await assert_money_settled(stack.urls, [order])


async def test_a_gateway_refusing_our_key_is_payment_unavailable_never_a_decline(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    product = await shop.add_product(1)
    async with payments_started_with(workers, {"PAYMENT_GATEWAY_API_KEY": "sk_not_ours"}):
        order = await shop.place([(product, 1)])
        [declined] = await wait_replies(stack, order.order_id, m.PaymentDeclined)
        refused = metric_total(
            workers,
            "conveyor_payment_gateway_rejected_requests_total",
            operation="authorize",
            status="401",
        )
    assert isinstance(declined, m.PaymentDeclined)
    assert declined.reason == m.RejectionReason.PAYMENT_UNAVAILABLE
    assert "401" in declined.detail
    assert refused >= 1
    # With the key fixed, whatever compensation waited on the gateway completes.
    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("rejected", "payment_unavailable")
    assert await ledger_of(stack, order.order_id) == []
    await assert_money_settled(stack.urls, [order])


async def test_payments_are_authorized_over_https_with_the_gateway_key(
    shop: Shop, stack: RunningStack
) -> None:
    product = await shop.add_product(1)
    order = await shop.place([(product, 1)])

    row = await shop.wait_status(order.order_id)

    assert stack.urls.payment_gateway_url.startswith("https://")
    assert (row["status"], row["reason"]) == ("confirmed", None)
    [payment] = await ledger_of(stack, order.order_id)
    assert payment["status"] == "authorized"


async def test_a_gateway_whose_certificate_is_not_trusted_is_payment_unavailable_never_paid(
    shop: Shop, stack: RunningStack, workers: Workers, tmp_path: Path
) -> None:
    """The processor trusts another authority than the one that signed the gateway's
    certificate, as it would an impostor's: nothing is sent, nothing charged."""
    stranger = LocalAuthority(tmp_path)
    stranger.server("someone-else", ["127.0.0.1"])
    product = await shop.add_product(1)
    trusting_a_stranger = {
        "PAYMENT_GATEWAY_CA_CERTIFICATES": stranger.certificate_path.read_text(),
        "CONVEYOR_PAYMENT_ATTEMPTS": "1",
    }
    async with payments_started_with(workers, trusting_a_stranger):
        order = await shop.place([(product, 1)])
        [declined] = await wait_replies(stack, order.order_id, m.PaymentDeclined)
    assert isinstance(declined, m.PaymentDeclined)
    assert declined.reason == m.RejectionReason.PAYMENT_UNAVAILABLE
    assert "certificate" in declined.detail.lower()
    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("rejected", "payment_unavailable")
    assert await ledger_of(stack, order.order_id) == []
    await assert_money_settled(stack.urls, [order])


async def test_a_rate_limited_authorization_is_tried_again_after_retry_after(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    product = await shop.add_product(1)
    before = metric_total(
        workers, "conveyor_payment_gateway_calls_total", operation="authorize", result="429"
    )
    order = await shop.place([(product, 1)], token="tok_rateLimited")

    row = await shop.wait_status(order.order_id)

    assert (row["status"], row["reason"]) == ("confirmed", None)
    after = metric_total(
        workers, "conveyor_payment_gateway_calls_total", operation="authorize", result="429"
    )
    assert after == before + 1
    [payment] = await ledger_of(stack, order.order_id)
    assert payment["status"] == "authorized"
    await assert_money_settled(stack.urls, [order])


SLOW_CARDS = 16  # 13 % of 120
GOOD_CARDS = 104


async def test_slow_cards_never_open_the_breaker_for_everyone_else(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    tokens = ["tok_timeout"] * SLOW_CARDS + ["tok_visa"] * GOOD_CARDS
    random.Random(13).shuffle(tokens)
    product = await shop.add_product(len(tokens))
    orders = [shop.order([(product, 1)], token) for token in tokens]
    # The breaker as it is out of the tests: open after 5 gateway-wide failures in a row.
    async with payments_started_with(workers, {"CONVEYOR_CIRCUIT_FAILURE_THRESHOLD": "5"}):
        await asyncio.gather(*(shop.publisher.publish(order) for order in orders))
        rows = {order.order_id: await shop.wait_status(order.order_id) for order in orders}
        circuit = metric_total(workers, "conveyor_payment_gateway_circuit_open")

    def outcomes(token: str) -> Counter[tuple[str, str | None]]:
        return Counter(
            (rows[o.order_id]["status"], rows[o.order_id]["reason"])
            for o in orders
            if o.payment_token == token
        )

    assert outcomes("tok_visa") == {("confirmed", None): GOOD_CARDS}
    assert outcomes("tok_timeout") == {("rejected", "payment_unavailable"): SLOW_CARDS}
    assert circuit == 0
    await assert_money_settled(stack.urls, orders)


async def sandbox_post(
    stack: RunningStack, path: str, body: dict[str, Any], key: str | None = None
) -> dict[str, Any]:
    headers = {"Idempotency-Key": key or str(uuid.uuid4())}
    async with (
        gateway_session(stack.urls) as session,
        session.post(stack.urls.payment_gateway_url + path, json=body, headers=headers) as answer,
    ):
        result: dict[str, Any] = await answer.json(content_type=None)
        return result


async def test_void_payment_gives_back_what_the_gateway_holds_once(
    shop: Shop, stack: RunningStack
) -> None:
    order_id = uuid.uuid4()

    async def charge(token: str, amount: str) -> dict[str, Any]:
        body = {"amount": amount, "currency": "EUR", "token": token, "reference": str(order_id)}
        return await sandbox_post(stack, "/v1/payments", body)

    # What lost answers can leave behind: an untouched authorization, one partly refunded
    # already, and a decline (which holds nothing).
    untouched = (await charge("tok_visa", "20.00"))["id"]
    partly = (await charge("tok_visa", "30.00"))["id"]
    await sandbox_post(stack, f"/v1/payments/{partly}/refunds", {"amount": "10.00"})
    await charge("tok_chargeDeclined", "5.00")
    command = m.VoidPayment(order_id=order_id)

    event_id = await shop.publisher.publish(command)
    [first] = await wait_replies(stack, order_id, m.PaymentVoided)

    assert isinstance(first, m.PaymentVoided)
    assert sorted(first.payment_ids) == sorted([untouched, partly])
    given_back = {p["id"]: p for p in await ledger_of(stack, order_id)}
    assert given_back[untouched]["status"] == "voided"
    assert (given_back[partly]["status"], given_back[partly]["amount_refunded"]) == (
        "authorized",
        "30.00",
    )
    assert sum(len(p["refunds"]) for p in given_back.values()) == 2

    await shop.publisher.publish(command, event_id=event_id)  # redelivered
    _, again = await wait_replies(stack, order_id, m.PaymentVoided, count=2)

    assert isinstance(again, m.PaymentVoided)
    assert sorted(again.payment_ids) == sorted(first.payment_ids)
    assert {p["id"]: p for p in await ledger_of(stack, order_id)} == given_back
