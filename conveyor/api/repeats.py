"""Repeated catalog reads answered before routing, from the worker's catalog cache.

An ASGI middleware of its own module: it needs the edge's dependencies (the rate limit),
which themselves use ``conveyor.api.middleware``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.api.deps import Resources, limit_requests
from conveyor.api.errors import ApiError
from conveyor.api.problems import api_error_response


class CatalogRepeats:
    """Answer a repeated catalog read from the worker's catalog cache before routing.

    A miss goes on to the route, which computes the answer and keeps it. A repeat still
    spends its caller's rate limit (``limit_requests``, as the route's dependency would).
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        held: Resources | None = (
            getattr(scope["app"].state, "resources", None) if path.startswith(self.prefix) else None
        )
        cached = held.catalog.repeat(scope) if held is not None else None
        if held is None or cached is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            await limit_requests(request, scope["app"].state.settings, held)
        except ApiError as error:
            answer: Response = api_error_response(error, path)
        else:
            answer = held.catalog.response(request.headers, cached)
        scope["route"], scope["path_params"] = cached.route, cached.path_params
        await answer(scope, receive, send)
