"""Faust's Kafka consumer on the worker's own event loop, not in a thread of its own.

Faust runs aiokafka's consumer in a second thread with a second event loop, so that an agent
blocking the main loop (``time.sleep`` in a handler) cannot starve its heartbeats. Every
fetch, commit and seek then crosses between the two loops: a method queue, a future on each
side and a wake-up of the other loop through its self-pipe, and the two threads take turns
at the GIL. A processor of Conveyor never blocks its loop (its I/O is asynchronous and a
batch's decisions take milliseconds), and profiled at 50 orders/s the consumer thread and
the hand-overs took about a third of a processor's CPU.

``InLoopConsumerThread`` is Faust's own aiokafka consumer service with its thread taken
out: the service runs as a task on the worker's loop, and what Faust sends "to the thread"
is awaited in place. Everything else (the consumer aiokafka makes, rebalance callbacks,
fetch and commit logic) is Faust's.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


class InLoopConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer service, run as a task on the worker's loop."""

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        loop = kwargs.pop("loop", None) or asyncio.get_event_loop_policy().get_event_loop()
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the service on this loop; return once its consumer has started."""
        assert not self._thread_started.is_set()
        self._thread_started.set()
        self._thread_running = self.parent_loop.create_future()
        self._serving = self.parent_loop.create_task(self._serve(), name=self.label)
        try:
            # Set by `_serve` once the consumer started, or to the error it crashed with.
            await self._thread_running
        finally:
            self._thread_running = None

    async def stop(self) -> None:
        await super().stop()
        if self._serving is not None:
            await asyncio.shield(self._serving)

    async def _gather_remaining_tasks(self) -> None:
        # The thread's version cancels every task left on its loop, which here is the
        # worker's own: the consumer's tasks are stopped with the consumer instead.
        return None

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = fun(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await self.consumer.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        await self.consumer.on_partitions_assigned(assigned, generation_id)
