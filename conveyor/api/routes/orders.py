"""``/orders``: place (priced from the catalog, idempotent), follow, list, cancel, and download
a confirmed order's invoice."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status

from conveyor.api import metrics
from conveyor.api.data import orders, products
from conveyor.api.data.invoices import invoice_of
from conveyor.api.data.orders import PricedLine
from conveyor.api.deps import (
    Announced,
    Cache,
    CurrentUser,
    Cursor,
    Db,
    InFlightRequests,
    Limit,
    Sender,
    Settings,
    Waits,
    Watcher,
)
from conveyor.api.errors import Conflict, Forbidden, NotFound, Unprocessable
from conveyor.api.routes import problems
from conveyor.domain.messages import CancelOrder, OrderLine, OrderStatus, PlaceOrder
from conveyor.domain.rest import (
    CancelAccepted,
    OrderCreate,
    OrderPublic,
    Page,
    Role,
    UserPublic,
)
from conveyor.infra.invoice_pdf import render_invoice

router = APIRouter(prefix="/orders", tags=["orders"], responses=problems(401))
_ORDER_IDS = uuid.UUID("8f6d2b7a-1c4e-4a9b-b3f0-6e2d9c8a7b51")
MAX_WAIT_SECONDS = 30


def _visible(order: OrderPublic | None, caller: UserPublic, order_id: UUID) -> OrderPublic:
    # Someone else's order is "not found", not "forbidden": its existence is not revealed.
    if order is None or (order.user_id != caller.id and caller.role is not Role.ADMIN):
        raise NotFound(f"no order {order_id} for you")
    return order


@router.post(
    "",
    operation_id="placeOrder",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": OrderPublic, "description": "This Idempotency-Key already placed it."},
        **problems(
            422,
            503,
            described={
                403: "The caller's e-mail address is not verified, and this edge takes orders "
                "only from verified addresses (CONVEYOR_REQUIRE_VERIFIED_EMAIL).",
                429: "The caller already has the most pending orders one account may have "
                "(`max_pending_orders`), or the rate limit is reached; see Retry-After.",
            },
        ),
    },
)
async def place_order(
    body: OrderCreate,
    idempotency_key: Annotated[
        str,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Required. The same key from the same user is the same order.",
        ),
    ],
    user: CurrentUser,
    db: Db,
    sender: Sender,
    settings: Settings,
    announced: Announced,
    response: Response,
) -> OrderPublic:
    """Place an order, priced from the catalog. 202 means Kafka has it; the saga takes over.

    A user may have CONVEYOR_MAX_PENDING_ORDERS_PER_USER orders (10 by default) pending at
    once; a new one beyond that is refused with 429 until one of them ends. Orders accepted
    a moment ago count at once. E-mails about the order go only to a verified address; with
    CONVEYOR_REQUIRE_VERIFIED_EMAIL (on by default) an unverified account's order is 403.
    """
    if settings.require_verified_email and not user.email_verified:
        raise Forbidden(
            "verify your e-mail address before you order: send the code from the e-mail we "
            "sent you to POST /api/v1/auth/verify, or ask for a new one with "
            "POST /api/v1/auth/verify/resend"
        )
    wanted = [line.product_id for line in body.items]
    if len(set(wanted)) != len(wanted):
        raise Unprocessable("each product may appear on one line only")
    catalog = await products.find_products(db, wanted)
    unknown = [str(product_id) for product_id in wanted if product_id not in catalog]
    if unknown:
        raise Unprocessable(f"no such products in the catalog: {', '.join(unknown)}")
    foreign = [
        str(product_id)
        for product_id, row in catalog.items()
        if row["currency"].strip() != body.currency
    ]
    if foreign:
        raise Unprocessable(f"not priced in {body.currency}: {', '.join(foreign)}")
    lines = [
        PricedLine(line.product_id, line.quantity, catalog[line.product_id]["price"])
        for line in body.items
    ]
    order_id = uuid.uuid5(_ORDER_IDS, f"{user.id}:{idempotency_key}")

    async def announce(priced: list[PricedLine]) -> None:
        command = PlaceOrder(
            order_id=order_id,
            user_id=user.id,
            # The order's e-mails go to a proven address or nowhere.
            customer_email=user.email if user.email_verified else None,
            items=tuple(
                OrderLine(
                    product_id=line.product_id,
                    quantity=line.quantity,
                    unit_price=line.price,
                    subtotal=line.subtotal,
                )
                for line in priced
            ),
            currency=body.currency,
            total=orders.total_of(priced),
            payment_token=body.payment_token,
        )
        # The same order always travels as the same event, however often it is sent.
        await sender.send(command, event_id=uuid.uuid5(order_id, "PlaceOrder"))

    placement = await orders.place_order(
        db,
        orders.NewOrder(
            order_id=order_id,
            user_id=user.id,
            idempotency_key=idempotency_key,
            fingerprint=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
            lines=lines,
            currency=body.currency,
        ),
        max_pending=settings.max_pending_orders_per_user,
        retry_after=settings.retry_after_seconds,
        announce=announce,
        marks=announced,
    )
    response.headers["Location"] = f"/api/v1/orders/{placement.order.id}"
    if placement.created:
        metrics.ORDERS_ACCEPTED.inc()
    else:
        response.status_code = status.HTTP_200_OK
    return placement.order


@router.get(
    "/{order_id:uuid}",
    operation_id="getOrder",
    responses=problems(
        404,
        described={
            429: "With `wait`: the caller already has the most requests waiting one account "
            "may have at once; or the rate limit is reached. See Retry-After."
        },
    ),
)
async def get_order(
    order_id: UUID,
    user: CurrentUser,
    db: Db,
    cache: Cache,
    watcher: Watcher,
    waits: Waits,
    in_flight: InFlightRequests,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Seconds to wait for the order to leave `pending`; it answers as "
            "soon as it does.",
        ),
    ] = 0,
) -> OrderPublic:
    """One order; with `wait`, a long poll on its status (no busy polling behind it).

    A user may have CONVEYOR_MAX_WAITS_PER_USER requests (5 by default) waiting at once on
    one edge worker; one more that would wait is refused with 429 and a Retry-After saying
    when one of them ends at the latest.
    """
    order = _visible(await orders.find_order(db, order_id, cache), user, order_id)
    if wait <= 0 or order.status is not OrderStatus.PENDING:
        return order
    with waits.admitted(user.id, wait):
        async with watcher.watching(order_id) as changed:
            # Read again after subscribing: a change in between is then either seen here or
            # announced to the subscription, never lost.
            order = _visible(await orders.find_order(db, order_id, cache), user, order_id)
            if order.status is OrderStatus.PENDING:
                try:
                    # Waiting costs the worker no CPU, so it does not take a place under the
                    # in-flight cap (CONVEYOR_MAX_REQUESTS_IN_FLIGHT) meanwhile.
                    with in_flight.parked():
                        await asyncio.wait_for(changed.wait(), wait)
                except TimeoutError:
                    return order
                order = _visible(await orders.find_order(db, order_id, cache), user, order_id)
    return order


@router.get(
    "/{order_id:uuid}/invoice",
    operation_id="getOrderInvoice",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The invoice as a PDF, to save as the file the "
            "Content-Disposition header names (`invoice-2026-000042.pdf`).",
        },
        **problems(
            404,
            described={
                409: "The order has no invoice: it is pending (it gets one once confirmed), "
                "rejected, or was cancelled before it was confirmed."
            },
        ),
    },
)
async def get_order_invoice(order_id: UUID, user: CurrentUser, db: Db, cache: Cache) -> Response:
    """The order's invoice (PDF), for its owner or an admin.

    A confirmed order has one, numbered per year without gaps (`2026-000042`); a cancelled
    one keeps it, with a note of the refund. Issued on confirmation; if this is the first
    to ask, the edge issues it.
    """
    order = _visible(await orders.find_order(db, order_id, cache), user, order_id)
    invoice = await invoice_of(db, order)
    # A page of text takes milliseconds, but they are CPU: off the event loop.
    pdf = await asyncio.to_thread(render_invoice, invoice)
    return Response(
        content=pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{invoice.filename}"'},
    )


@router.get("", operation_id="listOrders", responses=problems(403, 422))
async def list_orders(
    user: CurrentUser,
    db: Db,
    status_filter: Annotated[OrderStatus | None, Query(alias="status")] = None,
    user_id: Annotated[UUID | None, Query(description="Admins: whose orders.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[OrderPublic]:
    """Your orders, newest first; admins see everyone's, or one user's with `user_id`."""
    if user.role is Role.ADMIN:
        owner = user_id
    elif user_id is not None and user_id != user.id:
        raise Forbidden("only admins can list other users' orders")
    else:
        owner = user.id
    items, next_cursor = await orders.list_orders(
        db, user_id=owner, status=status_filter, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/{order_id:uuid}/cancel",
    operation_id="cancelOrder",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(404, 409, 503),
)
async def cancel_order(
    order_id: UUID, user: CurrentUser, db: Db, cache: Cache, sender: Sender, settings: Settings
) -> CancelAccepted:
    """Ask to cancel: a confirmed order is refunded and restocked, a pending one stopped.

    A confirmed order can be cancelled within the state retention of its confirmation
    (CONVEYOR_STATE_RETENTION_SECONDS, 7 days by default); after that its saga is gone.
    """
    order = _visible(await orders.find_order(db, order_id, cache), user, order_id)
    if order.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
        raise Conflict(f"the order is already {order.status.value}")
    window = timedelta(seconds=settings.state_retention_seconds)
    if order.status == OrderStatus.CONFIRMED and datetime.now(UTC) - order.updated_at > window:
        raise Conflict(
            f"the order was confirmed on {order.updated_at.isoformat()}; a confirmed order can "
            f"be cancelled within {_duration(window)} of its confirmation, so this one no "
            "longer can be"
        )
    await sender.send(CancelOrder(order_id=order_id, requested_by=user.id))
    return CancelAccepted(order_id=order_id, status=order.status)


def _duration(window: timedelta) -> str:
    if window.total_seconds() >= 86400:
        return f"{window.total_seconds() / 86400:g} days"
    return f"{window.total_seconds():g} seconds"
