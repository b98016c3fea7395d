"""``payments``: authorizes, refunds and voids through the payment gateway, answering the saga.

A batch of commands is answered with its gateway calls side by side, one order's commands in
the order they came (``CONVEYOR_PAYMENT_CONCURRENCY`` orders at once), each answer sent as
soon as it is known. Stateless: the gateway's idempotency keys (``authorize-<order>``,
``refund-<order>``, ``void-<payment>``) make a redelivered command return the first answer
instead of charging, refunding or voiding again.

An authorization whose answer is lost is looked up at the gateway by the order's reference
before it is answered: found authorized, PaymentAuthorized with that payment; found declined,
``payment_declined``; nothing (or no answer to the lookup either), ``payment_unavailable``, so
no order waits forever on the gateway. A gateway that refuses our request or credentials
(a 4xx other than 402) is ``payment_unavailable`` too, never the card's decline.
VoidPayment, sent by the saga when an order ends without a payment it knows of, gives back
every authorization the gateway holds under the order's reference, since one may have landed
after all.
A refund or a void the gateway does not answer is parked on
``payments.commands.retry`` and tried again later, so it holds up no other order of
its partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.infra.settings import ServiceUrls
from conveyor.streams.gateway import (
    CircuitBreaker,
    GatewayRefused,
    PaymentGateway,
)
from conveyor.streams.runtime import Decided, Processor, Refused, Sends, WorkerSettings

PaymentCommand = m.AuthorizePayment | m.RefundPayment | m.VoidPayment


def register(processor: Processor) -> None:
    """The Faust glue: ``payments.commands`` a batch at a time, each reply sent at once."""

    async def reply(message: m.Message, cause: Envelope[m.Message]) -> None:
        await processor.emit(message, cause=cause)

    payments = Payments(
        gateway_for(processor.urls, processor.settings),
        reply,
        concurrency=processor.settings.payment_concurrency,
    )
    processor.decide_and_act_in_batches(processor.spec.inputs, payment_command, payments.act)

    @processor.app.on_before_shutdown.connect
    async def close_gateway(*_: object, **__: object) -> None:
        await payments.gateway.close()


def payment_command(envelope: Envelope[m.Message], key: str) -> PaymentCommand:
    """The decision for a record of ``payments.commands``: the command itself (stateless)."""
    match envelope.payload:
        case m.AuthorizePayment() | m.RefundPayment() | m.VoidPayment() as command:
            return command
        case other:
            raise Refused(f"{other.type} is not a payments command")


# Sends a reply to the saga, caused by the command's record.
Reply = Callable[[m.Message, Envelope[m.Message]], Awaitable[None]]


class Payments:
    """Carries out a batch of payment commands at the gateway (the runtime's ``Actor``)."""

    def __init__(self, gateway: PaymentGateway, reply: Reply, *, concurrency: int) -> None:
        self.gateway = gateway
        self.reply = reply
        self._in_flight = asyncio.Semaphore(concurrency)

    async def act(self, batch: Sequence[Decided[PaymentCommand]]) -> Sends:
        """The batch's gateway calls, orders side by side (at most ``concurrency`` at once),
        each order's commands one after another in the order they came.

        Each answer is sent as soon as it is known, so a card the gateway is slow to answer
        holds up its own order only; the batch is acknowledged once all are answered (a
        redelivered command gets the gateway's stored answer, under the same event id).
        """
        by_order: dict[UUID, list[Decided[PaymentCommand]]] = {}
        for record in batch:
            by_order.setdefault(record.decision.order_id, []).append(record)

        async def one_order(records: list[Decided[PaymentCommand]]) -> None:
            async with self._in_flight:
                for record in records:
                    await self.reply(await answer(self.gateway, record.decision), record.envelope)

        # gather, not a TaskGroup: a failure propagates as itself (Refused, a transient
        # error), which the runtime's retry and dead-lettering recognize.
        await asyncio.gather(*(one_order(records) for records in by_order.values()))
        return []


def gateway_for(urls: ServiceUrls, settings: WorkerSettings) -> PaymentGateway:
    """The payment gateway client, with the timeouts, retries and breaker of ``settings``."""
    return PaymentGateway(
        urls.payment_gateway_url,
        api_key=urls.payment_gateway_api_key.get_secret_value(),
        tls=urls.payment_gateway_tls(),
        timeout_seconds=settings.payment_timeout_seconds,
        attempts=settings.payment_attempts,
        backoff_seconds=settings.payment_backoff_seconds,
        breaker=CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_reset_seconds),
    )


async def answer(gateway: PaymentGateway, command: PaymentCommand) -> m.Message:
    """The saga's reply to ``command``, from the gateway."""
    match command:
        case m.AuthorizePayment():
            return await authorization_reply(gateway, command)
        case m.RefundPayment():
            return await refund_reply(gateway, command)
        case m.VoidPayment():
            return await void_reply(gateway, command)


async def authorization_reply(gateway: PaymentGateway, command: m.AuthorizePayment) -> m.Message:
    result = await gateway.authorize(
        str(command.order_id), command.amount, command.currency, command.payment_token
    )
    if result.outcome == "authorized":
        assert result.payment_id is not None
        return m.PaymentAuthorized(
            order_id=command.order_id,
            payment_id=result.payment_id,
            amount=command.amount,
            currency=command.currency,
        )
    reason = (
        m.RejectionReason.PAYMENT_DECLINED
        if result.outcome == "declined"
        else m.RejectionReason.PAYMENT_UNAVAILABLE
    )
    return m.PaymentDeclined(order_id=command.order_id, reason=reason, detail=result.detail)


async def void_reply(gateway: PaymentGateway, command: m.VoidPayment) -> m.Message:
    """Whatever the gateway holds for the order, given back.

    A gateway that does not answer raises GatewayUnavailable: the command is tried again
    later, since the money is owed back.
    """
    try:
        payment_ids = await gateway.give_back_everything(str(command.order_id))
    except GatewayRefused as exc:
        raise Refused(str(exc)) from exc
    return m.PaymentVoided(order_id=command.order_id, payment_ids=payment_ids)


async def refund_reply(gateway: PaymentGateway, command: m.RefundPayment) -> m.Message:
    """PaymentRefunded once the gateway refunded; a gateway that does not answer raises
    GatewayUnavailable, and the runtime parks the command for a later try (the refund's
    idempotency key makes every try the same refund)."""
    try:
        await gateway.refund(str(command.order_id), command.payment_id, command.amount)
    except GatewayRefused as exc:
        raise Refused(str(exc)) from exc
    return m.PaymentRefunded(
        order_id=command.order_id,
        payment_id=command.payment_id,
        amount=command.amount,
        currency=command.currency,
    )
