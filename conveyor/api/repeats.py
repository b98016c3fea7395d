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
        held = self._resources_for_a_catalog_read(scope)
        cached = held.catalog.repeat(scope) if held is not None else None
        if held is None or cached is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            state = scope["app"].state
            await limit_requests(request, state.settings, state.access_tokens, held)
        except ApiError as error:
            answer: Response = api_error_response(error, scope["path"])
        else:
            answer = held.catalog.response(request.headers, cached)
        scope["route"], scope["path_params"] = cached.route, cached.path_params
        await answer(scope, receive, send)

    def _resources_for_a_catalog_read(self, scope: Scope) -> Resources | None:
        """The edge's resources when ``scope`` reads the catalog (and the app has started)."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        if not str(scope["path"]).startswith(self.prefix):
            return None
        held: Resources | None = getattr(scope["app"].state, "resources", None)
        return held
