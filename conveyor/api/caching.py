"""What an edge worker keeps in its own memory for a few seconds: catalog answers and
session checks.

Each worker has its own copy, so a change made through one worker is seen at once there and
within the entry's lifetime everywhere else (other workers, other replicas). That lifetime
is the stated bound of staleness (CONVEYOR_CATALOG_CACHE_SECONDS,
CONVEYOR_SESSION_CACHE_SECONDS); a lifetime of 0 keeps nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import Scope

from conveyor.api import metrics

Key = TypeVar("Key")
Value = TypeVar("Value")


class Expiring(Generic[Key, Value]):
    """At most ``size`` values, each for ``lifetime`` seconds, the least recently used
    dropped first: keys may come from clients (a search text), so the memory is bounded."""

    def __init__(self, name: str, lifetime: float, size: int) -> None:
        self.lifetime = lifetime
        self.size = size
        self._entries: OrderedDict[Key, tuple[float, Value]] = OrderedDict()
        # Bound once: a lookup is on every catalog read's path.
        self._hits = metrics.EDGE_CACHE_LOOKUPS.labels(name, "hit")
        self._misses = metrics.EDGE_CACHE_LOOKUPS.labels(name, "miss")

    def get(self, key: Key) -> Value | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            if entry is not None:
                del self._entries[key]
            self._misses.inc()
            return None
        self._entries.move_to_end(key)
        self._hits.inc()
        return entry[1]

    def put(self, key: Key, value: Value) -> None:
        if self.lifetime <= 0:
            return
        self._entries[key] = (time.monotonic() + self.lifetime, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    async def fetch(self, key: Key, load: Callable[[], Awaitable[Value | None]]) -> Value | None:
        """The kept value, or ``load()``'s (kept unless None)."""
        value = self.get(key)
        if value is None:
            value = await load()
            if value is not None:
                self.put(key, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True)
class CachedAnswer:
    body: bytes
    etag: str
    # The route that made it and its path parameters: a repeat, answered before routing,
    # is labelled in the request metrics as the route labels its own answers.
    route: object
    path_params: dict[str, Any]


CATALOG_ENTRIES = 10_000
# A login's check is a few hundred bytes; this many bounds the memory to tens of MB.
SESSION_ENTRIES = 100_000


class CatalogCache:
    """Catalog answers (pages, searches, products) as the bytes sent, with their ETag.

    The route computes an answer and keeps it (``answer``); a repeat of the same request is
    answered from here before routing (``repeat``, from ``CatalogRepeats`` in
    ``conveyor.api.repeats``), which skips FastAPI's routing, validation and
    dependencies: the query string is the one the route already validated. The answer does
    not depend on who asks, so one entry serves everyone. Anonymous readers are told they
    may cache it as long as the edge does (``public``), and a browser that sends the ETag
    back gets 304 without a body.
    """

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._answers: Expiring[str, CachedAnswer] = Expiring("catalog", lifetime, CATALOG_ENTRIES)

    async def answer(
        self, request: Request, compute: Callable[[], Awaitable[BaseModel]]
    ) -> Response:
        """The route's answer, computed, kept and sent."""
        body = (await compute()).model_dump_json().encode()
        cached = CachedAnswer(
            body,
            f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"',
            request.scope.get("route"),
            dict(request.path_params),
        )
        self._answers.put(_key(request.scope), cached)
        return self.response(request.headers, cached)

    def repeat(self, scope: Scope) -> CachedAnswer | None:
        return self._answers.get(_key(scope))

    def response(self, headers: Headers, cached: CachedAnswer) -> Response:
        audience = "private" if "authorization" in headers else "public"
        sent = {"ETag": cached.etag, "Cache-Control": f"{audience}, max-age={int(self.lifetime)}"}
        if _matches(headers.get("if-none-match"), cached.etag):
            return Response(status_code=304, headers=sent)
        return Response(cached.body, media_type="application/json", headers=sent)

    def forget(self) -> None:
        """A product was created, changed or retired through this worker."""
        self._answers.clear()


def _key(scope: Scope) -> str:
    query: bytes = scope["query_string"]
    return f"{scope['path']}?{query.decode('latin-1')}"


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    offered = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in offered or etag in offered
