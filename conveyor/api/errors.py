"""The edge's errors, one class per answer the contract promises.

Routes and data access raise these; ``problems.py`` turns every one of them (and whatever
FastAPI or Starlette raise) into an RFC 9457 problem+json response, in one place.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import ErrorDetails


class ApiError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(
        self, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


class Unauthorized(ApiError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str = "a valid bearer token is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="conveyor"'})


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"


class NotFound(ApiError):
    status = 404
    title = "Not Found"


class Conflict(ApiError):
    status = 409
    title = "Conflict"


class Unprocessable(ApiError):
    status = 422
    title = "Unprocessable Content"


class TooManyRequests(ApiError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class TooManyPendingOrders(TooManyRequests):
    """A user's new order while they already have the most pending orders one may have."""

    def __init__(self, pending: int, max_pending: int, retry_after: int) -> None:
        super().__init__(
            f"you already have {pending} pending orders, the most one account may have at "
            "once; wait until one of them is confirmed, rejected or cancelled "
            "(GET /api/v1/orders?status=pending lists them), then place this order again",
            retry_after,
        )
        self.extensions = {"pending_orders": pending, "max_pending_orders": max_pending}


class ServiceUnavailable(ApiError):
    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def validation_message(issue: ErrorDetails) -> str:
    """What a failed validation says, in the validator's own words where it has them.

    pydantic puts the kind of exception before a validator's message ("Value error, ..."),
    which tells a client about the edge's code and nothing about its request.
    """
    if issue["type"] in ("value_error", "assertion_error"):
        error = issue.get("ctx", {}).get("error")
        if error is not None:
            return str(error)
    return issue["msg"]
