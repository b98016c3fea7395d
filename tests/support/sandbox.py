"""The payment sandbox's fault switch as tests drive it: the next N refunds answer 503
(``refund_faults`` in ``conveyor.devstack.payment_sandbox``)."""

from __future__ import annotations

import aiohttp

FAULTS_PATH = "/_sandbox/faults"


async def fail_next_refunds(session: aiohttp.ClientSession, gateway_url: str, count: int) -> None:
    """Make the sandbox at ``gateway_url`` answer its next ``count`` refunds 503 (0 ends it)."""
    async with session.post(
        f"{gateway_url}{FAULTS_PATH}", json={"refund_failures": count}
    ) as answer:
        assert answer.status == 200, await answer.text()


async def refund_failures_left(session: aiohttp.ClientSession, gateway_url: str) -> int:
    """How many of those 503s the sandbox has still to give: the refunds that reached it are
    the difference."""
    async with session.get(f"{gateway_url}{FAULTS_PATH}") as answer:
        left: int = (await answer.json())["refund_failures"]
    return left
