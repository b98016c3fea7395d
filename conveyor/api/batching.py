"""Work handed in while earlier work is on its way goes together, in the next trip.

The first item of a quiet moment leaves at once; items that arrive while a trip is under
way wait for it to end and then leave together. Under load a worker pays one trip per batch
rather than one per request, and nobody waits for a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Batches(Generic[Item]):
    def __init__(self, send: Callable[[list[Item]], Awaitable[None]], name: str) -> None:
        self._send = send
        self._name = name
        self._waiting: list[Item] = []
        self._sender: asyncio.Task[None] | None = None

    def add(self, item: Item) -> None:
        self._waiting.append(item)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_while_waiting(), name=self._name)

    async def drain(self) -> None:
        """Wait until everything handed in so far has been sent (at shutdown)."""
        while self._sender is not None:
            await asyncio.shield(self._sender)

    async def _send_while_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._sender = None
