"""The payment gateway client: timeouts, bounded retries with backoff, a circuit breaker.

Every call carries an idempotency key derived from the order, so a retry, a redelivered
command or a restarted processor never charges or refunds twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import aiohttp

from conveyor.streams import metrics
from conveyor.streams.errors import ServiceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Authorization:
    outcome: Literal["authorized", "declined", "unavailable"]
    payment_id: str | None = None
    detail: str = ""


class GatewayUnavailable(ServiceUnavailable):
    """The gateway did not give a final answer within the attempts allowed."""


class GatewayRefused(Exception):
    """The gateway's final answer is no (a 4xx), and asking again will not change it."""


class CircuitBreaker:
    """Stops calling a failing gateway for a while, so orders fail fast instead of queueing.

    After ``threshold`` failures in a row the circuit opens; after ``reset_seconds`` one
    trial call goes through (half-open) and its result closes or reopens it.
    """

    def __init__(self, threshold: int, reset_seconds: float) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.failures = 0
        self.opened_at: float | None = None

    def allows_call(self) -> bool:
        if self.opened_at is None:
            return True
        return time.monotonic() - self.opened_at >= self.reset_seconds

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        metrics.CIRCUIT_OPEN.set(0)

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            if self.opened_at is None:
                log.warning("payment gateway circuit opened after %d failures", self.failures)
            self.opened_at = time.monotonic()
            metrics.CIRCUIT_OPEN.set(1)


class PaymentGateway:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        attempts: int,
        backoff_seconds: float,
        breaker: CircuitBreaker,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.breaker = breaker
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def authorize(
        self, order_id: str, amount: Decimal, currency: str, token: str
    ) -> Authorization:
        body = {"amount": f"{amount:.2f}", "currency": currency, "token": token}
        body["reference"] = order_id
        try:
            status, answer = await self._post(
                "authorize", "/v1/payments", body, idempotency_key=f"authorize-{order_id}"
            )
        except GatewayUnavailable as exc:
            return Authorization("unavailable", detail=str(exc))
        if status in (200, 201):
            return Authorization("authorized", payment_id=str(answer["id"]))
        # 402 is the issuer's decline; any other 4xx (an unknown token, a conflicting
        # retry) is the gateway refusing this charge for good, which is a decline too.
        return Authorization("declined", detail=str(answer.get("detail", answer)))

    async def refund(self, order_id: str, payment_id: str, amount: Decimal) -> str:
        """Refund ``amount`` of ``payment_id``; returns the refund id.

        Raises GatewayUnavailable when the gateway gave no answer, GatewayRefused when it said no.
        """
        status, answer = await self._post(
            "refund",
            f"/v1/payments/{payment_id}/refunds",
            {"amount": f"{amount:.2f}"},
            idempotency_key=f"refund-{order_id}",
        )
        if status in (200, 201):
            return str(answer["id"])
        raise GatewayRefused(f"refund of {payment_id} refused ({status}): {answer}")

    async def _post(
        self, operation: str, path: str, body: dict[str, Any], *, idempotency_key: str
    ) -> tuple[int, dict[str, Any]]:
        """The gateway's final answer (2xx or 4xx); retries timeouts, 5xx and lost connections."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        last_error = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            if not self.breaker.allows_call():
                metrics.PAYMENT_GATEWAY_CALLS.labels(operation, "circuit_open").inc()
                raise GatewayUnavailable("the circuit breaker is open after repeated failures")
            try:
                async with self._session.post(
                    self.base_url + path, json=body, headers={"Idempotency-Key": idempotency_key}
                ) as response:
                    answer = await response.json(content_type=None)
                    if response.status < 500:
                        self.breaker.record_success()
                        metrics.PAYMENT_GATEWAY_CALLS.labels(operation, str(response.status)).inc()
                        return response.status, answer if isinstance(answer, dict) else {}
                    last_error = f"HTTP {response.status}: {answer}"
                    metrics.PAYMENT_GATEWAY_CALLS.labels(operation, str(response.status)).inc()
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                metrics.PAYMENT_GATEWAY_CALLS.labels(operation, "error").inc()
            self.breaker.record_failure()
            log.warning(
                "payment gateway %s attempt %d/%d failed: %s",
                operation,
                attempt,
                self.attempts,
                last_error,
            )
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise GatewayUnavailable(f"no answer after {self.attempts} attempts: {last_error}")
