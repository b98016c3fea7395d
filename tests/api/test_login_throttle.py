"""Failed logins per account: a growing wait after a few in a row, never a lock for good."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.edge import CHEAP_PASSWORD_HASHES, NO_FIRST_ADMIN, Account, Api, EdgeProcess
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e

ATTEMPTS_BEFORE_DELAY = 3
FIRST_DELAY_SECONDS = 1
MAX_DELAY_SECONDS = 4


@pytest.fixture(scope="module")
async def client(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """An edge whose waits are short, so a test sees them grow and end; cheap hashes, since
    nothing here is about their cost."""
    edge = EdgeProcess(
        stack.urls,
        tmp_path_factory.mktemp("throttled-edge") / "edge.log",
        settings={
            **NO_FIRST_ADMIN,
            **CHEAP_PASSWORD_HASHES,
            "CONVEYOR_LOGIN_ATTEMPTS_BEFORE_DELAY": str(ATTEMPTS_BEFORE_DELAY),
            "CONVEYOR_LOGIN_DELAY_FIRST_SECONDS": str(FIRST_DELAY_SECONDS),
            "CONVEYOR_LOGIN_DELAY_MAX_SECONDS": str(MAX_DELAY_SECONDS),
            "CONVEYOR_LOGIN_ATTEMPTS_FORGOTTEN_AFTER_SECONDS": "60",
        },
    )
    with edge.running():
        async with Api(edge) as api:
            yield api


async def log_in(client: Api, email: str, password: str) -> httpx.Response:
    return await client.http.post("/auth/login", json={"email": email, "password": password})


async def fail_in_a_row(client: Api, email: str, times: int) -> list[int]:
    return [(await log_in(client, email, "not the password")).status_code for _ in range(times)]


async def test_failed_logins_in_a_row_make_the_next_attempt_wait_and_say_how_long(
    client: Api,
) -> None:
    account = await client.new_account()
    # The address counts in any case, as it logs in in any case.
    spelled = [account.email, account.email.upper(), account.email.title()]
    answers = [
        (await log_in(client, spelled[i % 3], "not the password")).status_code
        for i in range(ATTEMPTS_BEFORE_DELAY)
    ]
    assert answers == [401] * ATTEMPTS_BEFORE_DELAY

    refused = await log_in(client, account.email, account.password)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == str(FIRST_DELAY_SECONDS)
    assert f"wait {FIRST_DELAY_SECONDS} s" in refused.json()["detail"]


async def test_the_right_password_after_the_wait_opens_the_account_and_clears_the_count(
    client: Api,
) -> None:
    account = await client.new_account()
    await fail_in_a_row(client, account.email, ATTEMPTS_BEFORE_DELAY)
    refused = await log_in(client, account.email, account.password)
    assert refused.status_code == 429

    await asyncio.sleep(int(refused.headers["retry-after"]))
    assert (await log_in(client, account.email, account.password)).status_code == 200
    # Counting starts again from nothing: as many failures as at first before any wait.
    assert await fail_in_a_row(client, account.email, ATTEMPTS_BEFORE_DELAY) == [401] * 3


async def test_each_further_failure_doubles_the_wait_up_to_the_most(client: Api) -> None:
    account = await client.new_account()
    await fail_in_a_row(client, account.email, ATTEMPTS_BEFORE_DELAY)
    waits = []
    for _ in range(4):
        refused = await log_in(client, account.email, "not the password")
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        await asyncio.sleep(waits[-1])
        # The wait is over: this attempt is checked (and fails), and the next must wait longer.
        assert await fail_in_a_row(client, account.email, 1) == [401]
    # 1 s, then 2, 4, and 4 again (the most). Each figure is the time left when it was
    # answered, rounded up, so a slow answer may show one second less than the wait set.
    assert waits[0] == FIRST_DELAY_SECONDS
    assert waits[2] > 2 * FIRST_DELAY_SECONDS
    assert waits == sorted(waits)
    assert waits[-1] <= MAX_DELAY_SECONDS


async def test_another_account_is_not_slowed_by_one_being_guessed(client: Api) -> None:
    guessed, other = await client.new_account(), await client.new_account()
    await fail_in_a_row(client, guessed.email, ATTEMPTS_BEFORE_DELAY)
    assert (await log_in(client, guessed.email, guessed.password)).status_code == 429

    assert (await log_in(client, other.email, other.password)).status_code == 200
    assert await fail_in_a_row(client, other.email, 1) == [401]


async def test_an_address_without_an_account_waits_exactly_like_one_with(client: Api) -> None:
    """Otherwise the waits would tell a guesser which addresses have accounts."""
    known: Account = await client.new_account()
    unknown = f"nobody-{uuid.uuid4().hex[:10]}@example.org"
    answers = {}
    for email in (known.email, unknown):
        answers[email] = [
            await log_in(client, email, "not the password")
            for _ in range(ATTEMPTS_BEFORE_DELAY + 1)
        ]
    statuses = {email: [a.status_code for a in tries] for email, tries in answers.items()}
    assert statuses[known.email] == statuses[unknown] == [401] * ATTEMPTS_BEFORE_DELAY + [429]
    known_refusal, unknown_refusal = answers[known.email][-1], answers[unknown][-1]
    assert known_refusal.json()["detail"] == unknown_refusal.json()["detail"]
    assert known_refusal.headers["retry-after"] == unknown_refusal.headers["retry-after"]


async def test_guesses_sent_at_once_get_no_more_tries_than_guesses_sent_one_by_one(
    client: Api,
) -> None:
    account = await client.new_account()
    answers = await asyncio.gather(
        *(log_in(client, account.email, f"guess number {n}") for n in range(12))
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * ATTEMPTS_BEFORE_DELAY + [429] * (12 - ATTEMPTS_BEFORE_DELAY)
