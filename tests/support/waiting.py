"""Waiting for something a test expects to happen: one ``eventually``, in a sync and an async
form, that returns what it waited for and, when the time is up, says what it waited for and
what it saw last.

A check returns what it reads (a row, a record, a count), and the wait returns that value,
so a test waits and reads in one step. The value is accepted when it is true, or when
``until(value)`` is, for a value that may be 0 or empty when it holds; None (nothing there
yet) is never accepted. Either way the last value read is what a failure shows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough for a rebalance or a pod start on a loaded two-core machine; a check that
# holds returns at once, so only a failing test ever waits this long.
WITHIN_SECONDS = 90.0
INTERVAL_SECONDS = 0.25


class _Deadline:
    def __init__(self, what: str, within: float) -> None:
        self.what = what
        self.within = within
        self.ends = time.monotonic() + within

    def passed(self) -> bool:
        return time.monotonic() > self.ends

    def failure(self, last: object, context: str | None) -> AssertionError:
        told = f"\n{context}" if context else ""
        return AssertionError(
            f"not so after {self.within:g} s: {self.what} (last seen: {last!r}){told}"
        )


def eventually(
    check: Callable[[], T | None],
    what: str,
    *,
    within: float = WITHIN_SECONDS,
    until: Callable[[T], bool] = bool,
    interval: float = INTERVAL_SECONDS,
    context: Callable[[], str] | None = None,
) -> T:
    """Calls ``check`` until its value is true (or ``until(value)`` is), and returns it.

    On timeout raises an AssertionError naming ``what`` and the last value seen, followed by
    what ``context()`` tells of the state then (a log, the records of an order).
    """
    deadline = _Deadline(what, within)
    while True:
        last = check()
        if last is not None and until(last):
            return last
        if deadline.passed():
            raise deadline.failure(last, context() if context is not None else None)
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    within: float = WITHIN_SECONDS,
    until: Callable[[T], bool] = bool,
    interval: float = INTERVAL_SECONDS,
    context: Callable[[], Awaitable[str]] | None = None,
) -> T:
    """``eventually`` for a check that is a coroutine (a query, a read of a topic)."""
    deadline = _Deadline(what, within)
    while True:
        last = await check()
        if last is not None and until(last):
            return last
        if deadline.passed():
            raise deadline.failure(last, await context() if context is not None else None)
        await asyncio.sleep(interval)
