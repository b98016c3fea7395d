"""The one place errors become HTTP answers: RFC 9457 problem+json for every failure.

Routes raise ``conveyor.api.errors``; FastAPI's validation errors, Starlette's 404/405 and
anything unexpected are turned into the same shape here. Validation errors never echo the
input back, so a password sent in a malformed body is not reflected or logged, nor name the
edge's exception classes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from conveyor.api.errors import ApiError, validation_message
from conveyor.domain.rest import Problem, ValidationIssue

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("conveyor.api")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_response(
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    errors: list[ValidationIssue] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = Problem(
        type="about:blank",
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=instance,
        errors=errors,
    ).model_dump(mode="json", exclude_none=True)
    body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _issues(error: RequestValidationError) -> list[ValidationIssue]:
    return [
        ValidationIssue(
            loc=[part if isinstance(part, int) else str(part) for part in issue.get("loc", ())],
            msg=validation_message(issue),
            type=str(issue.get("type", "")),
        )
        for issue in error.errors()
    ]


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document lists for the requested path.

    Starlette names only the first route that matched the path; a client told 405 needs all.
    """
    document: dict[str, Any] = request.app.openapi()
    matching = [
        (template.count("{"), operations)
        for template, operations in document.get("paths", {}).items()
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path)
    ]
    if not matching:
        return []
    # Like the router: a literal path (/users/me) wins over a template (/users/{user_id}).
    fewest = min(parameters for parameters, _ in matching)
    return sorted(
        {method.upper() for parameters, ops in matching if parameters == fewest for method in ops}
    )


def api_error_response(error: ApiError, path: str) -> JSONResponse:
    return problem_response(
        error.status, error.detail, headers=error.headers, instance=path, **error.extensions
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return api_error_response(error, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        issues = _issues(error)
        where = ", ".join(".".join(str(part) for part in issue.loc) for issue in issues[:5])
        return problem_response(
            422, f"the request is not valid: {where}", instance=request.url.path, errors=issues
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        status, headers = error.status_code, dict(error.headers or {})
        detail = error.detail if isinstance(error.detail, str) else _TITLES.get(status)
        if status == 400:
            # FastAPI's word for a body that is not JSON at all; the contract's is 422.
            status, detail = 422, "the body is not valid JSON"
        elif status == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(
            status, str(detail or "error"), headers=headers, instance=request.url.path
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "an unexpected error occurred; it has been logged", instance=request.url.path
        )
