"""The cap on one user's long polls waiting at once (CONVEYOR_MAX_WAITS_PER_USER)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from conveyor.api.routes.orders import MAX_WAIT_SECONDS
from conveyor.api.settings import ApiSettings
from tests.support.edge import Account, Api
from tests.support.long_polls import answered_after_a_change, pending_order
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.e2e

CAP = ApiSettings.model_fields["max_waits_per_user"].default


def waiting_on(api: Api, account: Account, order_id: object) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(
        api.http.get(f"/orders/{order_id}", params={"wait": MAX_WAIT_SECONDS}, headers=account.auth)
    )


async def test_one_wait_past_a_users_cap_is_refused_and_other_users_still_wait(
    api: Api, account: Account, stack: RunningStack, cache: aioredis.Redis
) -> None:
    grace = await api.new_account("Grace Hopper")
    order, graces_order = await pending_order(stack, account), await pending_order(stack, grace)

    polls = [waiting_on(api, account, order) for _ in range(CAP + 1)]

    async def answered() -> int:
        return sum(poll.done() for poll in polls)

    # Until a change is announced only a refused poll answers, and one is refused only while
    # the others fill every place: once one has answered, all the others are waiting.
    await eventually_async(answered, "one poll past the cap is refused")
    graces_poll = waiting_on(api, grace, graces_order)
    answers = await answered_after_a_change(cache, order, polls)
    [graces_answer] = await answered_after_a_change(cache, graces_order, [graces_poll])
    after_the_others = await api.http.get(
        f"/orders/{order}", params={"wait": 0.1}, headers=account.auth
    )

    refused = [answer for answer in answers if answer.status_code == 429]
    assert len(refused) == 1
    assert [answer.status_code for answer in answers].count(200) == CAP
    assert refused[0].headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused[0].headers["retry-after"]) <= MAX_WAIT_SECONDS
    assert "requests waiting on orders" in refused[0].json()["detail"]
    assert graces_answer.status_code == 200
    assert graces_answer.json()["status"] == "pending"
    assert after_the_others.status_code == 200
