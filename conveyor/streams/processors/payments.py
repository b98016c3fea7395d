"""``payments``: authorizes and refunds through the payment gateway, answering the saga.

Stateless: the gateway's idempotency keys (``authorize-<order>``, ``refund-<order>``) make a
redelivered command return the first answer instead of charging again. A gateway that stays
down ends the authorization as ``payment_unavailable``, so no order waits forever on it.
"""

from __future__ import annotations

import asyncio
import logging

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.domain.topics import PROCESSOR_INPUTS
from conveyor.streams.gateway import (
    CircuitBreaker,
    GatewayRefused,
    GatewayUnavailable,
    PaymentGateway,
)
from conveyor.streams.runtime import Processor, Refused

log = logging.getLogger(__name__)

# A refund is owed money: it is retried until the gateway answers, this long apart at most.
REFUND_RETRY_CAP_SECONDS = 30.0


def register(processor: Processor) -> None:
    settings = processor.settings
    gateway = PaymentGateway(
        processor.urls.payment_gateway_url,
        timeout_seconds=settings.payment_timeout_seconds,
        attempts=settings.payment_attempts,
        backoff_seconds=settings.payment_backoff_seconds,
        breaker=CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_reset_seconds),
    )

    async def on_message(envelope: Envelope[m.Message], key: str) -> None:
        match envelope.payload:
            case m.AuthorizePayment() as command:
                reply = await authorization_reply(gateway, command)
            case m.RefundPayment() as command:
                reply = await refund_reply(gateway, command)
            case other:
                raise Refused(f"{other.type} is not a payments command")
        await processor.emit(reply, cause=envelope)

    processor.handle(PROCESSOR_INPUTS["payments"], on_message)

    @processor.app.on_before_shutdown.connect
    async def close_gateway(*_: object, **__: object) -> None:
        await gateway.close()


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


async def refund_reply(gateway: PaymentGateway, command: m.RefundPayment) -> m.Message:
    delay = 1.0
    while True:
        try:
            await gateway.refund(str(command.order_id), command.payment_id, command.amount)
            break
        except GatewayRefused as exc:
            raise Refused(str(exc)) from exc
        except GatewayUnavailable as exc:
            log.warning("refund for order %s not done yet: %s", command.order_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, REFUND_RETRY_CAP_SECONDS)
    return m.PaymentRefunded(
        order_id=command.order_id,
        payment_id=command.payment_id,
        amount=command.amount,
        currency=command.currency,
    )
