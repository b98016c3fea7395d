"""ASGI middleware: request metrics, shedding above the in-flight cap, the request-body limit.

All are plain ASGI (not BaseHTTPMiddleware) so they stream and cost one function call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api import metrics
from conveyor.api.problems import problem_response


def route_template(scope: Scope) -> str:
    """The matched route with its parameters named (``/api/v1/orders/{order_id}``).

    Built from the path and the path parameters the router found, so it holds for routes
    under any prefix; unmatched paths share one label, so scanners cannot multiply series.
    Requests shed before routing (ShedOverCapacity) share it too.
    """
    if scope.get("route") is None:
        return "unmatched"
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    segments = scope["path"].split("/")
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in segments)


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            template = route_template(scope)
            labels = (template, scope["method"], str(status))
            metrics.HTTP_REQUESTS.labels(*labels).inc()
            metrics.HTTP_REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)


class InFlight:
    """The requests one worker process is answering now, against its cap.

    A plain int, not the in-flight gauge: a worker is one event loop, so nothing changes the
    count between the check and the increment, and the gauge may be a sum over processes.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count >= self.cap

    @contextlib.contextmanager
    def counted(self) -> Iterator[None]:
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1

    @contextlib.contextmanager
    def parked(self) -> Iterator[None]:
        """A counted request that waits without working is not counted meanwhile.

        For long polls: one waiting on the process's single Redis subscription holds an
        event, not the worker's time, so many clients waiting must not shed new work. Counted
        again when it wakes, even above the cap: it was admitted and must finish.
        """
        self.count -= 1
        try:
            yield
        finally:
            self.count += 1


# Never shed: a liveness probe refused under load would have Kubernetes kill a busy pod, and
# a refused scrape would blank the dashboards when they are needed most.
OPERATIONAL_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ShedOverCapacity:
    """Answer 503 with Retry-After at once, without calling the app, to a request arriving
    while this worker already answers ``in_flight.cap`` requests: queued behind them it would
    be answered late, and so would every request after it."""

    def __init__(
        self,
        app: ASGIApp,
        in_flight: InFlight,
        retry_after_seconds: int,
    ) -> None:
        self.app = app
        self.in_flight = in_flight
        self.retry_after_seconds = retry_after_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPERATIONAL_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight.full:
            await self._shed(scope, receive, send)
            return
        with self.in_flight.counted():
            await self.app(scope, receive, send)

    async def _shed(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.HTTP_REQUESTS_SHED.inc()
        refusal = problem_response(
            503,
            f"the edge is at capacity ({self.in_flight.cap} requests in flight on this "
            f"worker); send the request again in {self.retry_after_seconds} seconds "
            "(Retry-After)",
            headers={"Retry-After": str(self.retry_after_seconds)},
            instance=scope.get("path"),
        )
        await refusal(scope, receive, send)


class BodyTooLarge(StarletteHTTPException):
    """Raised mid-read; an HTTPException so FastAPI's body parsing lets it through as 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request bodies are limited to {max_bytes} bytes")


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, noting_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = problem_response(
            413,
            f"request bodies are limited to {self.max_bytes} bytes",
            headers={"Connection": "close"},
            instance=scope.get("path"),
        )
        await refusal(scope, receive, send)
