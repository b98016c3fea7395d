"""The payment gateway client: timeouts, bounded retries with backoff, a circuit breaker, and
reconciliation by reference when an answer is lost.

Every write carries an idempotency key derived from the order or the payment
(``authorize-<order>``, ``refund-<order>``, ``void-<payment>``), so a retry, a redelivered
command or a restarted processor never charges, refunds or voids twice. Every payment is made
with the order id as its reference, so when an authorization's answer is lost (a timeout, a
reset connection, a 5xx through every attempt, a 2xx without a payment id) the gateway is
asked what it holds for the order before anything is decided.

What an answer means:

- 2xx: done; 402: the card is declined;
- 429: the gateway asks us to slow down: tried again after its ``Retry-After``;
- any other 4xx (400, 401, 403, 404, 409, 422, ...): our request or credentials are wrong,
  never the card; counted in ``conveyor_payment_gateway_rejected_requests_total``;
- 5xx, refused or reset connections, a certificate that is not trusted: the gateway is
  failing (or is not the gateway): tried again, and counted by the circuit breaker; never a
  payment, nor a decline;
- a timeout (or a 504, the gateway's own timeout upstream): counted by the breaker only when
  the gateway does not answer a lookup either; a lookup answered at once proves the gateway
  is up, and only this request (one card's slowness) was slow.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import aiohttp

from conveyor.streams import metrics
from conveyor.streams.errors import ServiceUnavailable

log = logging.getLogger(__name__)

CARD_DECLINED = 402
TOO_MANY_REQUESTS = 429
GATEWAY_TIMEOUT = 504
# The gateway will not let us in: nothing it holds can be read until the key is fixed.
CREDENTIALS_REFUSED = frozenset({401, 403})
# A Retry-After longer than this is cut short: the attempts are bounded, the wait too.
RETRY_AFTER_CAP_SECONDS = 10.0


@dataclass(frozen=True)
class Authorization:
    outcome: Literal["authorized", "declined", "unavailable"]
    payment_id: str | None = None
    detail: str = ""


class GatewayUnavailable(ServiceUnavailable):
    """The gateway did not give a final answer within the attempts allowed."""


class GatewayRefused(Exception):
    """The gateway's final answer is no (a 4xx), and asking again will not change it."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of the gateway."""

    status: int
    body: dict[str, Any]
    retry_after_seconds: float | None = None

    @property
    def detail(self) -> str:
        return str(self.body.get("detail", self.body))


class NoAnswer(Exception):
    """An exchange that ended without an HTTP answer: timed out, refused or reset."""

    def __init__(self, detail: str, *, timed_out: bool) -> None:
        super().__init__(detail)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Admission:
    """A call the circuit breaker let through; ``trial``: the one call of a half-open circuit."""

    trial: bool


class CircuitBreaker:
    """Stops calling a failing gateway for a while, so orders fail fast instead of queueing.

    After ``threshold`` gateway-wide failures in a row (see the module's docstring: never a
    decline, a refused request or one card's slowness) the circuit opens; after
    ``reset_seconds`` one trial call goes through (half-open), and every other call fails
    fast until its result closes or reopens it. A trial that tells nothing of the gateway (a
    429, one card's slowness) lets the next call be the trial.
    """

    def __init__(self, threshold: int, reset_seconds: float) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_running = False

    def admit(self) -> Admission | None:
        """Whether a call may go to the gateway now; every call admitted ends with
        ``release``. While the circuit is half-open, only one call at a time: a gateway that
        is still down then holds up one order for its timeout, not every order waiting."""
        if self.opened_at is None:
            return Admission(trial=False)
        if self._trial_running or time.monotonic() - self.opened_at < self.reset_seconds:
            return None
        self._trial_running = True
        return Admission(trial=True)

    def release(self, admission: Admission) -> None:
        """The call ``admission`` let through is over, whatever it told of the gateway."""
        if admission.trial:
            self._trial_running = False

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


def ledger_path(order_id: str) -> str:
    """Where the gateway lists the payments made with the order as their reference."""
    return f"/v1/payments?reference={order_id}"


class PaymentGateway:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        tls: ssl.SSLContext | None = None,
        timeout_seconds: float,
        attempts: int,
        backoff_seconds: float,
        breaker: CircuitBreaker,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        # None: the gateway's certificate is checked against the system's authorities.
        self.tls = tls
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.breaker = breaker
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- what the payments processor asks ------------------------------------------------

    async def authorize(
        self, order_id: str, amount: Decimal, currency: str, token: str
    ) -> Authorization:
        body = {"amount": f"{amount:.2f}", "currency": currency, "token": token}
        body["reference"] = order_id
        try:
            answer = await self._call(
                "authorize",
                "POST",
                "/v1/payments",
                body,
                idempotency_key=f"authorize-{order_id}",
                probe_path=ledger_path(order_id),
            )
        except GatewayUnavailable as lost:
            return await self._reconciled(order_id, str(lost))
        if answer.status in (200, 201):
            payment_id = answer.body.get("id")
            if isinstance(payment_id, str) and payment_id:
                return Authorization("authorized", payment_id=payment_id)
            return await self._reconciled(
                order_id, f"the gateway answered {answer.status} without a payment id"
            )
        if answer.status == CARD_DECLINED:
            return Authorization("declined", detail=answer.detail)
        return Authorization(
            "unavailable",
            detail=f"the gateway refused our request ({answer.status}): {answer.detail}",
        )

    async def payments_of(self, order_id: str) -> list[dict[str, Any]]:
        """Every payment the gateway holds with the order as its reference.

        A gateway refusing our credentials raises GatewayUnavailable, like one that does not
        answer: what it holds is unknown until the key is fixed, and is then looked up again.
        """
        answer = await self._call("lookup", "GET", ledger_path(order_id), None)
        if answer.status in CREDENTIALS_REFUSED:
            raise GatewayUnavailable(f"the gateway refused our credentials ({answer.status})")
        items = answer.body.get("items")
        if answer.status != 200 or not isinstance(items, list):
            raise GatewayRefused(
                f"looking up the payments of {order_id} refused ({answer.status}): {answer.detail}"
            )
        return [item for item in items if isinstance(item, dict)]

    async def refund(self, order_id: str, payment_id: str, amount: Decimal) -> str:
        """Refund ``amount`` of ``payment_id``; returns the refund id.

        Raises GatewayUnavailable when the gateway gave no answer, GatewayRefused when it said no.
        """
        answer = await self._call(
            "refund",
            "POST",
            f"/v1/payments/{payment_id}/refunds",
            {"amount": f"{amount:.2f}"},
            idempotency_key=f"refund-{order_id}",
            probe_path=f"/v1/payments/{payment_id}",
        )
        if answer.status in (200, 201):
            # A 2xx is the refund made, even one whose body lacks the refund's id.
            return str(answer.body.get("id", ""))
        raise GatewayRefused(f"refund of {payment_id} refused ({answer.status}): {answer.body}")

    async def give_back_everything(self, order_id: str) -> tuple[str, ...]:
        """Void (or refund the rest of) every authorization of the order that holds money.

        Returns the ids of the order's authorizations, all of which hold nothing afterwards;
        asked again it finds them so and changes nothing. Raises GatewayUnavailable when the
        gateway gave no answer, GatewayRefused when it said no.
        """
        given_back: list[str] = []
        for payment in await self.payments_of(order_id):
            payment_id = str(payment["id"])
            if payment["status"] == "declined":
                continue
            if payment["status"] == "authorized":
                refunded = Decimal(payment["amount_refunded"])
                if refunded == 0:
                    await self._give_back(payment_id, "void", "void", {})
                elif refunded < Decimal(payment["amount"]):
                    rest = Decimal(payment["amount"]) - refunded
                    await self._give_back(
                        payment_id, "refund", "refunds", {"amount": f"{rest:.2f}"}
                    )
            given_back.append(payment_id)
        return tuple(given_back)

    # -- how -------------------------------------------------------------------------------

    async def _give_back(
        self, payment_id: str, operation: str, action: str, body: dict[str, Any]
    ) -> None:
        answer = await self._call(
            operation,
            "POST",
            f"/v1/payments/{payment_id}/{action}",
            body,
            # Its own key per payment: a refund the customer asked for (refund-<order>) is
            # another one.
            idempotency_key=f"void-{payment_id}",
            probe_path=f"/v1/payments/{payment_id}",
        )
        if answer.status not in (200, 201):
            raise GatewayRefused(
                f"giving back {payment_id} refused ({answer.status}): {answer.detail}"
            )
        log.info("payment %s given back (%s)", payment_id, operation)

    async def _reconciled(self, order_id: str, why: str) -> Authorization:
        """The authorization's outcome as the gateway's ledger has it, after a lost answer."""
        try:
            payments = await self.payments_of(order_id)
        except (GatewayUnavailable, GatewayRefused) as failed:
            metrics.PAYMENT_RECONCILIATIONS.labels("unanswered").inc()
            return Authorization(
                "unavailable", detail=f"{why}; looking the payment up failed too: {failed}"
            )
        authorized = [p for p in payments if p.get("status") == "authorized"]
        if authorized:
            metrics.PAYMENT_RECONCILIATIONS.labels("authorized").inc()
            payment_id = str(authorized[0]["id"])
            log.info("order %s: answer lost (%s), found %s authorized", order_id, why, payment_id)
            return Authorization("authorized", payment_id=payment_id)
        if any(p.get("status") == "declined" for p in payments):
            metrics.PAYMENT_RECONCILIATIONS.labels("declined").inc()
            return Authorization("declined", detail=f"{why}; the gateway recorded a decline")
        metrics.PAYMENT_RECONCILIATIONS.labels("not_found").inc()
        return Authorization(
            "unavailable", detail=f"{why}; the gateway holds no payment for the order"
        )

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        idempotency_key: str | None = None,
        probe_path: str | None = None,
    ) -> Answer:
        """The gateway's final answer (2xx or 4xx); tries again on 429, 5xx, timeouts and lost
        connections, at most ``attempts`` times, then raises GatewayUnavailable."""
        last_error = "no attempt made"
        delay = self.backoff_seconds
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(delay)
            delay = self.backoff_seconds * 2 ** (attempt - 1)
            admission = self.breaker.admit()
            if admission is None:
                metrics.PAYMENT_GATEWAY_CALLS.labels(operation, "circuit_open").inc()
                raise GatewayUnavailable("the circuit breaker is open after repeated failures")
            try:
                answer = await self._exchange(method, path, body, idempotency_key)
            except NoAnswer as lost:
                result = "timeout" if lost.timed_out else "error"
                metrics.PAYMENT_GATEWAY_CALLS.labels(operation, result).inc()
                last_error = str(lost)
                if not (lost.timed_out and await self._answers(probe_path)):
                    self.breaker.record_failure()
            else:
                metrics.PAYMENT_GATEWAY_CALLS.labels(operation, str(answer.status)).inc()
                last_error = f"HTTP {answer.status}: {answer.detail}"
                if answer.status == TOO_MANY_REQUESTS:
                    if answer.retry_after_seconds is not None:
                        delay = min(answer.retry_after_seconds, RETRY_AFTER_CAP_SECONDS)
                elif answer.status == GATEWAY_TIMEOUT:
                    if not await self._answers(probe_path):
                        self.breaker.record_failure()
                elif answer.status >= 500:
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success()
                    if answer.status >= 400 and answer.status != CARD_DECLINED:
                        metrics.PAYMENT_GATEWAY_REJECTED_REQUESTS.labels(
                            operation, str(answer.status)
                        ).inc()
                        log.error(
                            "payment gateway refused our %s request (%d): %s",
                            operation,
                            answer.status,
                            answer.detail,
                        )
                    return answer
            finally:
                self.breaker.release(admission)
            log.warning(
                "payment gateway %s attempt %d/%d failed: %s",
                operation,
                attempt,
                self.attempts,
                last_error,
            )
        raise GatewayUnavailable(f"no answer after {self.attempts} attempts: {last_error}")

    async def _answers(self, probe_path: str | None) -> bool:
        """Whether the gateway answers a lookup at ``probe_path`` within the timeout."""
        if probe_path is None:
            return False
        try:
            answer = await self._exchange("GET", probe_path, None, None)
        except NoAnswer:
            return False
        return answer.status < 500

    async def _exchange(
        self, method: str, path: str, body: dict[str, Any] | None, idempotency_key: str | None
    ) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(ssl=self.tls or True)
            )
        headers = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            async with self._session.request(
                method, self.base_url + path, json=body, headers=headers
            ) as response:
                try:
                    parsed = await response.json(content_type=None)
                except ValueError:
                    parsed = None
                return Answer(
                    response.status,
                    parsed if isinstance(parsed, dict) else {},
                    _seconds(response.headers.get("Retry-After")),
                )
        except TimeoutError as exc:
            raise NoAnswer(f"no answer within {self.timeout.total} s", timed_out=True) from exc
        except aiohttp.ClientError as exc:
            raise NoAnswer(f"{type(exc).__name__}: {exc}", timed_out=False) from exc


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After given in seconds (the HTTP-date form is not used by gateways we know)."""
    try:
        return None if retry_after is None else max(0.0, float(retry_after))
    except ValueError:
        return None
