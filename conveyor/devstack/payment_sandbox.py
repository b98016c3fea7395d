"""A payment gateway sandbox: a real HTTP server that behaves like a card gateway.

It stands in for the payment provider, an outside party. Tokens decide the outcome:

- ``tok_visa`` authorizes (201);
- ``tok_chargeDeclined`` is declined (402), and so is any token the sandbox does not know
  (as an invalid card number is);
- ``tok_timeout`` answers only after ``--timeout-delay`` seconds (a 504, no payment), so
  clients with shorter timeouts give up;
- ``tok_lateAuthorize`` authorizes at once but answers only after ``--timeout-delay``
  seconds: the client gives up on a charge that did happen;
- ``tok_malformed`` authorizes and answers 201 without the payment's ``id``;
- ``tok_rateLimited`` is answered 429 with ``Retry-After: 1`` the first time its
  Idempotency-Key is seen (the 429 is not stored), and authorizes when asked again.

Like a real gateway, every write takes an ``Idempotency-Key``: a retry with the same key and
body gets the stored answer (``Idempotent-Replayed: true``), the same key with another body a
409. An authorization can be voided (``POST /v1/payments/{id}/void``) or refunded, in part or
in full (``POST /v1/payments/{id}/refunds``), never both. ``GET /v1/payments?reference=`` finds
an order's payments: the ledger. With ``--api-key`` every ``/v1`` request must carry
``Authorization: Bearer <key>``, or gets a 401. With ``--certificate`` and ``--private-key``
it serves HTTPS only, as a real gateway does.

Run it with ``python -m conveyor.devstack.payment_sandbox --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import ssl
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware

AUTHORIZING_TOKEN = "tok_visa"
DECLINED_TOKEN = "tok_chargeDeclined"
TIMEOUT_TOKEN = "tok_timeout"
LATE_AUTHORIZING_TOKEN = "tok_lateAuthorize"
MALFORMED_TOKEN = "tok_malformed"
RATE_LIMITED_TOKEN = "tok_rateLimited"
KNOWN_TOKENS = frozenset(
    {
        AUTHORIZING_TOKEN,
        DECLINED_TOKEN,
        TIMEOUT_TOKEN,
        LATE_AUTHORIZING_TOKEN,
        MALFORMED_TOKEN,
        RATE_LIMITED_TOKEN,
    }
)
# How long tok_rateLimited asks the client to wait.
RATE_LIMITED_RETRY_AFTER_SECONDS = 1


def problem(status: int, type_: str, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": type_, "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


class RateLimited(Exception):
    """Answered 429 and not stored, so the same key is served when asked again."""


class BadRequest(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def parse_amount(raw: object) -> Decimal:
    if not isinstance(raw, str):
        raise BadRequest('amount must be a decimal string such as "19.99"')
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise BadRequest(f"amount {raw!r} is not a decimal number") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise BadRequest(f"amount {raw!r} must be positive with at most two decimals")
    return amount.quantize(Decimal("0.01"))


@dataclass
class StoredResponse:
    status: int
    body: dict[str, Any]
    request_digest: str


@dataclass
class Payment:
    id: str
    status: str  # authorized | declined | voided
    amount: Decimal
    currency: str
    reference: str
    created_at: str
    refunds: list[dict[str, str]] = field(default_factory=list)
    voided_at: str | None = None

    @property
    def refunded(self) -> Decimal:
        return sum((Decimal(r["amount"]) for r in self.refunds), Decimal("0.00"))

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "amount": f"{self.amount:.2f}",
            "currency": self.currency,
            "reference": self.reference,
            "created_at": self.created_at,
            "amount_refunded": f"{self.refunded:.2f}",
            "refunds": self.refunds,
            "voided_at": self.voided_at,
        }


class PaymentStore:
    """The sandbox's memory: payments and the answers given per idempotency key."""

    def __init__(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.responses: dict[str, StoredResponse] = {}
        self.key_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Idempotency keys of tok_rateLimited already answered 429 once.
        self.rate_limited_keys: set[str] = set()


Handler = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


async def idempotent(request: web.Request, store: PaymentStore, handle: Handler) -> web.Response:
    """Run ``handle`` once per Idempotency-Key; replay its answer for repeats of that key."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return problem(
            400,
            "missing_idempotency_key",
            "Idempotency-Key is required",
            "Send a unique Idempotency-Key header with every write.",
        )
    raw = await request.read()
    scope = f"{request.method} {request.path} {key}"
    digest = hashlib.sha256(raw).hexdigest()
    async with store.key_locks[scope]:
        stored = store.responses.get(scope)
        if stored is not None:
            if stored.request_digest != digest:
                return problem(
                    409,
                    "idempotency_key_reused",
                    "Idempotency-Key reused",
                    "This key was used with a different request body.",
                )
            return web.json_response(
                stored.body, status=stored.status, headers={"Idempotent-Replayed": "true"}
            )
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            status, answer = await handle(body)
        except (BadRequest, ValueError) as exc:
            detail = exc.detail if isinstance(exc, BadRequest) else f"invalid JSON: {exc}"
            return problem(400, "invalid_request", "Invalid request", detail)
        except RateLimited:
            limited = problem(429, "rate_limited", "Too many requests", "Slow down and try again.")
            limited.headers["Retry-After"] = str(RATE_LIMITED_RETRY_AFTER_SECONDS)
            return limited
        store.responses[scope] = StoredResponse(status, answer, digest)
        return web.json_response(answer, status=status)


def refund_faults() -> tuple[list[web.RouteDef], Callable[..., Awaitable[web.StreamResponse]]]:
    """Routes for tests to make the next N refunds answer 503, and the middleware doing it.

    ``POST /_sandbox/faults`` with ``{"refund_failures": N}`` (0 ends them);
    ``GET /_sandbox/faults`` says how many are left, so a test tells how many refunds reached
    the gateway. A refund answered 503 stores nothing under its idempotency key, as a real
    gateway's outage would not.
    """
    remaining = {"refund_failures": 0}

    async def set_faults(request: web.Request) -> web.Response:
        body = await request.json()
        count = body.get("refund_failures") if isinstance(body, dict) else None
        if not isinstance(count, int) or count < 0:
            return problem(400, "invalid_request", "Invalid request", "refund_failures: N >= 0")
        remaining["refund_failures"] = count
        return web.json_response(remaining)

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response(remaining)

    @web.middleware
    async def failing_refunds(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if (
            request.method == "POST"
            and request.path.endswith("/refunds")
            and remaining["refund_failures"] > 0
        ):
            remaining["refund_failures"] -= 1
            return problem(503, "unavailable", "Service unavailable", "a fault the test asked for")
        return await handler(request)

    routes = [web.post("/_sandbox/faults", set_faults), web.get("/_sandbox/faults", get_faults)]
    return routes, failing_refunds


def create_app(timeout_delay: float = 30.0, api_key: str | None = None) -> web.Application:
    """The sandbox; with ``api_key``, every ``/v1`` request must present it as a bearer token."""
    store = PaymentStore()
    faults_routes, failing_refunds = refund_faults()
    middlewares = [require_api_key(api_key)] if api_key else []
    app = web.Application(middlewares=[*middlewares, failing_refunds])

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def authorize(request: web.Request) -> web.Response:
        async def handle(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            amount = parse_amount(body.get("amount"))
            currency = body.get("currency")
            if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
                raise BadRequest("currency must be a three-letter ISO 4217 code such as EUR")
            token, reference = body.get("token"), body.get("reference")
            if not isinstance(token, str) or not token:
                raise BadRequest("token (the card's payment token) is required")
            if not isinstance(reference, str) or not reference:
                raise BadRequest("reference (the order id) is required")
            if token == RATE_LIMITED_TOKEN:
                key = request.headers["Idempotency-Key"]
                if key not in store.rate_limited_keys:
                    store.rate_limited_keys.add(key)
                    raise RateLimited
            if token == TIMEOUT_TOKEN:
                await asyncio.sleep(timeout_delay)
                return 504, {
                    "type": "gateway_timeout",
                    "title": "The card network timed out",
                    "status": 504,
                    "detail": "No answer from the card network.",
                }
            # A token no card stands behind is the issuer's refusal, as an invalid card number
            # is at a real gateway: the customer's fault, answered 402, not our request's.
            declined = token == DECLINED_TOKEN or token not in KNOWN_TOKENS
            payment = Payment(
                id=f"pay_{secrets.token_hex(12)}",
                status="declined" if declined else "authorized",
                amount=amount,
                currency=currency,
                reference=reference,
                created_at=datetime.now(UTC).isoformat(),
            )
            store.payments[payment.id] = payment
            print(f"payment {payment.id} for {reference}: {payment.status}", flush=True)
            if payment.status == "declined":
                return 402, {
                    "type": "card_declined",
                    "title": "Your card was declined.",
                    "status": 402,
                    "detail": "The issuer declined the charge."
                    if token in KNOWN_TOKENS
                    else f"No card is known for token {token!r}; the sandbox's cards are "
                    f"{sorted(KNOWN_TOKENS)}.",
                    "payment_id": payment.id,
                }
            if token == LATE_AUTHORIZING_TOKEN:
                # The charge is made; only its answer is late.
                await asyncio.sleep(timeout_delay)
            if token == MALFORMED_TOKEN:
                return 201, {key: value for key, value in payment.public().items() if key != "id"}
            return 201, payment.public()

        return await idempotent(request, store, handle)

    async def refund(request: web.Request) -> web.Response:
        payment = store.payments.get(request.match_info["payment_id"])
        if payment is None:
            return problem(404, "not_found", "No such payment", request.match_info["payment_id"])

        async def handle(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if payment.status != "authorized":
                return 409, {
                    "type": "not_refundable",
                    "title": "Payment not refundable",
                    "status": 409,
                    "detail": f"the payment is {payment.status}",
                }
            remaining = payment.amount - payment.refunded
            amount = parse_amount(body["amount"]) if "amount" in body else remaining
            if amount > remaining or amount <= 0:
                return 409, {
                    "type": "refund_exceeds_payment",
                    "title": "Refund too large",
                    "status": 409,
                    "detail": f"{amount:.2f} asked, {remaining:.2f} left to refund",
                }
            entry = {
                "id": f"re_{secrets.token_hex(12)}",
                "payment_id": payment.id,
                "amount": f"{amount:.2f}",
                "status": "succeeded",
            }
            payment.refunds.append(entry)
            return 201, entry

        return await idempotent(request, store, handle)

    async def void(request: web.Request) -> web.Response:
        payment = store.payments.get(request.match_info["payment_id"])
        if payment is None:
            return problem(404, "not_found", "No such payment", request.match_info["payment_id"])

        async def handle(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if payment.status != "authorized" or payment.refunds:
                state = "refunded" if payment.refunds else payment.status
                return 409, {
                    "type": "not_voidable",
                    "title": "Payment cannot be voided",
                    "status": 409,
                    "detail": f"the payment is {state}; only an untouched authorization is voided",
                }
            payment.status = "voided"
            payment.voided_at = datetime.now(UTC).isoformat()
            print(f"payment {payment.id} for {payment.reference}: voided", flush=True)
            return 200, payment.public()

        return await idempotent(request, store, handle)

    async def show(request: web.Request) -> web.Response:
        payment = store.payments.get(request.match_info["payment_id"])
        if payment is None:
            return problem(404, "not_found", "No such payment", request.match_info["payment_id"])
        return web.json_response(payment.public())

    async def search(request: web.Request) -> web.Response:
        reference = request.query.get("reference")
        items = [
            p.public()
            for p in store.payments.values()
            if reference is None or p.reference == reference
        ]
        return web.json_response({"items": items})

    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.post("/v1/payments", authorize),
            web.get("/v1/payments", search),
            web.get("/v1/payments/{payment_id}", show),
            web.post("/v1/payments/{payment_id}/refunds", refund),
            web.post("/v1/payments/{payment_id}/void", void),
            *faults_routes,
        ]
    )
    return app


def require_api_key(api_key: str) -> Middleware:
    expected = f"Bearer {api_key}".encode()

    @web.middleware
    async def check(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        presented = request.headers.get("Authorization", "").encode()
        if request.path.startswith("/v1/") and not secrets.compare_digest(presented, expected):
            return problem(
                401,
                "unauthorized",
                "Invalid API key",
                "Send the account's key as `Authorization: Bearer <key>`.",
            )
        return await handler(request)

    return check


def payment_gateway_is_healthy(url: str, ca_certificates: str = "", timeout: float = 2.0) -> bool:
    """Whether the gateway answers its health check; over https, with a certificate signed by
    an authority of ``ca_certificates`` (PEM) or, when empty, of the system's."""
    try:
        trust = ssl.create_default_context(cadata=ca_certificates or None)
        with urllib.request.urlopen(  # noqa: S310
            f"{url.rstrip('/')}/healthz", timeout=timeout, context=trust
        ) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def serving_tls(certificate: str | None, private_key: str | None) -> ssl.SSLContext | None:
    """What the sandbox presents over HTTPS; None serves plain HTTP."""
    if certificate is None and private_key is None:
        return None
    if certificate is None or private_key is None:
        raise SystemExit("--certificate and --private-key go together: give both, or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, private_key)
    return context


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Conveyor's payment gateway sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument(
        "--timeout-delay",
        type=float,
        default=30.0,
        help="seconds tok_timeout and tok_lateAuthorize wait before answering",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="when set, /v1 requests without `Authorization: Bearer <key>` are answered 401",
    )
    parser.add_argument(
        "--certificate",
        default=None,
        help="PEM file of the certificate chain to serve HTTPS with (needs --private-key)",
    )
    parser.add_argument("--private-key", default=None, help="PEM file of the certificate's key")
    arguments = parser.parse_args(argv)
    # aiohttp stops on SIGTERM and SIGINT by itself; a short grace keeps tok_timeout
    # requests from holding the shutdown up.
    web.run_app(
        create_app(arguments.timeout_delay, arguments.api_key),
        host=arguments.host,
        port=arguments.port,
        ssl_context=serving_tls(arguments.certificate, arguments.private_key),
        shutdown_timeout=1.0,
        print=lambda text: print(text, flush=True),
    )


if __name__ == "__main__":
    main()
