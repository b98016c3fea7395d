"""Changing one's password: proven by the current one, checked for strength, limited per
account, ending every other login, and kept by the first admin across restarts."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.edge import Account, Api, bearer, edge_of_its_own, refused_within_bound
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a brand new pass phrase 2025"


async def change_password(
    api: Api, access_token: str, current: str, new: str = NEW_PASSWORD
) -> httpx.Response:
    return await api.http.post(
        "/users/me/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(access_token),
    )


async def login_status(api: Api, email: str, password: str) -> int:
    response = await api.http.post("/auth/login", json={"email": email, "password": password})
    return response.status_code


async def test_a_password_change_ends_every_other_login_and_keeps_the_callers(
    api: Api, account: Account
) -> None:
    other: dict[str, Any] = await api.login(account.email, account.password)

    changed = await change_password(api, account.access_token, account.password)

    assert changed.status_code == 204
    await refused_within_bound(api, bearer(other["access_token"]), "the other login's token")
    stale = await api.http.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert stale.status_code == 401
    assert (await api.http.get("/orders", headers=account.auth)).status_code == 200
    kept = await api.http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert kept.status_code == 200
    assert await login_status(api, account.email, NEW_PASSWORD) == 200
    assert await login_status(api, account.email, account.password) == 401


async def test_a_wrong_current_password_is_403_and_changes_nothing(
    api: Api, account: Account
) -> None:
    other: dict[str, Any] = await api.login(account.email, account.password)

    refused = await change_password(api, account.access_token, "not my password at all")

    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "the current password is wrong"
    assert await login_status(api, account.email, account.password) == 200
    assert (await api.http.get("/orders", headers=bearer(other["access_token"]))).status_code == 200


@pytest.mark.parametrize(
    ("new", "why"),
    [("password123", "too easy"), (None, "must differ from the current one")],
    ids=["common", "unchanged"],
)
async def test_a_weak_or_unchanged_new_password_is_refused(
    api: Api, account: Account, new: str | None, why: str
) -> None:
    refused = await change_password(
        api, account.access_token, account.password, new or account.password
    )

    assert refused.status_code == 422
    assert why in refused.json()["detail"]
    assert await login_status(api, account.email, account.password) == 200


ATTEMPTS_PER_MINUTE = 3


async def test_guessing_an_accounts_password_is_refused_past_its_budget_and_others_are_not(
    stack: RunningStack, tmp_path: Path
) -> None:
    settings = {"CONVEYOR_RATE_LIMIT_ACCOUNT_PER_MINUTE": str(ATTEMPTS_PER_MINUTE)}
    with edge_of_its_own(stack.urls, tmp_path, settings) as edge:
        async with Api(edge) as client:
            victim, bystander = await client.new_account(), await client.new_account()
            # The budget is per minute: a minute may turn once during the guesses, so twice the
            # budget and one more always reach it.
            answers = []
            for _ in range(2 * ATTEMPTS_PER_MINUTE + 1):
                answers.append(
                    await change_password(client, victim.access_token, f"guess {uuid.uuid4()}")
                )
                if answers[-1].status_code == 429:
                    break
            bystanders_try = await change_password(
                client, bystander.access_token, "not the password either"
            )

    refused = answers[-1]
    assert refused.status_code == 429
    assert {answer.status_code for answer in answers[:-1]} == {403}
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    assert refused.headers["content-type"] == "application/problem+json"
    assert bystanders_try.status_code == 403


async def test_the_first_admins_changed_password_survives_a_restart(
    stack: RunningStack, tmp_path: Path
) -> None:
    """Start-up creates the first admin when absent and never resets its password."""
    email = f"first-admin-{uuid.uuid4().hex[:8]}@conveyor.example"
    with edge_of_its_own(stack.urls, tmp_path, {"CONVEYOR_ADMIN_EMAIL": email}) as edge:
        async with Api(edge) as client:
            tokens = await client.login(email, edge.admin_password)
            changed = await change_password(client, tokens["access_token"], edge.admin_password)
            assert changed.status_code == 204
    with edge.running():
        async with Api(edge) as client:
            with_new = await login_status(client, email, NEW_PASSWORD)
            with_configured = await login_status(client, email, edge.admin_password)
    assert with_new == 200
    assert with_configured == 401
