"""A user's logins: listed with where they signed in, ended one by one or all at once (by
the user or an admin), and ended by the longest life a login may have."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.edge import Account, Api, bearer, edge_of_its_own, refused_within_bound
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.e2e


async def sign_in(api: Api, account: Account, user_agent: str) -> dict[str, Any]:
    """Another login of the account, from a client that names itself ``user_agent``."""
    response = await api.http.post(
        "/auth/login",
        json={"email": account.email, "password": account.password},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def sessions_of(api: Api, access_token: str, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/users/me/sessions", params=params, headers=bearer(access_token))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def current_id(page: dict[str, Any]) -> str:
    [current] = [item["id"] for item in page["items"] if item["current"]]
    return str(current)


async def refresh(api: Api, refresh_token: str) -> httpx.Response:
    return await api.http.post("/auth/refresh", json={"refresh_token": refresh_token})


async def test_users_see_their_logins_newest_first_with_where_each_signed_in(
    api: Api, account: Account
) -> None:
    phone = await sign_in(api, account, "Conveyor/2.1 (iPhone)")
    laptop = await sign_in(api, account, "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")

    listed = await sessions_of(api, laptop["access_token"])

    items = listed["items"]
    assert [item["user_agent"] for item in items] == [
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        "Conveyor/2.1 (iPhone)",
        api.http.headers["User-Agent"],
    ]
    assert [item["current"] for item in items] == [True, False, False]
    assert {item["client_address"] for item in items} == {"127.0.0.1"}
    started = [when(item["created_at"]) for item in items]
    assert started == sorted(started, reverse=True)
    assert listed["next_cursor"] is None
    # Each login sees the same list and knows itself in it.
    from_phone = await sessions_of(api, phone["access_token"])
    assert [item["id"] for item in from_phone["items"]] == [item["id"] for item in items]
    assert current_id(from_phone) == items[1]["id"]


async def test_the_list_of_logins_pages_like_every_list(api: Api, account: Account) -> None:
    for index in range(2):
        await sign_in(api, account, f"client {index}")
    everything = [item["id"] for item in (await sessions_of(api, account.access_token))["items"]]

    first = await sessions_of(api, account.access_token, limit=2)
    rest = await sessions_of(api, account.access_token, limit=2, cursor=first["next_cursor"])

    assert len(everything) == 3
    assert [item["id"] for item in first["items"] + rest["items"]] == everything
    assert rest["next_cursor"] is None


async def test_a_refresh_keeps_one_login_and_marks_when_it_was_last_used(
    api: Api, account: Account
) -> None:
    before = (await sessions_of(api, account.access_token))["items"]
    refreshed = await refresh(api, account.refresh_token)
    assert refreshed.status_code == 200
    after = (await sessions_of(api, refreshed.json()["access_token"]))["items"]

    assert [item["id"] for item in after] == [item["id"] for item in before]
    assert after[0]["created_at"] == before[0]["created_at"]
    assert when(after[0]["last_used_at"]) > when(before[0]["last_used_at"])
    assert after[0]["current"]


async def test_ending_one_login_refuses_its_tokens_and_leaves_the_others(
    api: Api, account: Account
) -> None:
    other = await sign_in(api, account, "a shared computer")
    other_id = current_id(await sessions_of(api, other["access_token"]))

    ended = await api.http.delete(f"/users/me/sessions/{other_id}", headers=account.auth)

    assert ended.status_code == 204
    assert (await refresh(api, other["refresh_token"])).status_code == 401
    await refused_within_bound(api, bearer(other["access_token"]), "the ended login's token")
    left = await sessions_of(api, account.access_token)
    assert [item["id"] for item in left["items"]] == [current_id(left)]
    assert (await refresh(api, account.refresh_token)).status_code == 200
    again = await api.http.delete(f"/users/me/sessions/{other_id}", headers=account.auth)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"


async def test_another_users_login_can_be_neither_seen_nor_ended(
    api: Api, account: Account
) -> None:
    mallory = await api.new_account("Mallory")
    victim_login = current_id(await sessions_of(api, account.access_token))

    theirs = await sessions_of(api, mallory.access_token)
    ended = await api.http.delete(f"/users/me/sessions/{victim_login}", headers=mallory.auth)
    unknown = await api.http.delete(f"/users/me/sessions/{uuid.uuid4()}", headers=mallory.auth)

    assert victim_login not in [item["id"] for item in theirs["items"]]
    assert ended.status_code == unknown.status_code == 404
    assert ended.json()["detail"].startswith("no live login")
    assert (await api.http.get("/orders", headers=account.auth)).status_code == 200


async def test_signing_out_everywhere_ends_every_login_the_current_one_included(
    api: Api, account: Account
) -> None:
    other = await sign_in(api, account, "a tablet")

    out = await api.http.delete("/users/me/sessions", headers=account.auth)

    assert out.status_code == 204
    for tokens in (other, {"access_token": account.access_token}):
        await refused_within_bound(api, bearer(tokens["access_token"]), "an ended login")
    for refresh_token in (account.refresh_token, other["refresh_token"]):
        refused = await refresh(api, refresh_token)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "this login has ended; sign in again"
    # The password still opens the account.
    again = await sign_in(api, account, "the same tablet")
    listed = await sessions_of(api, again["access_token"])
    assert [item["current"] for item in listed["items"]] == [True]


async def test_an_admin_ends_every_login_of_a_user(
    api: Api, account: Account, admin: Account
) -> None:
    other = await sign_in(api, account, "a stolen phone")

    ended = await api.http.delete(f"/users/{account.id}/sessions", headers=admin.auth)
    unknown = await api.http.delete(f"/users/{uuid.uuid4()}/sessions", headers=admin.auth)

    assert ended.status_code == 204
    assert unknown.status_code == 404
    for access_token in (account.access_token, other["access_token"]):
        await refused_within_bound(api, bearer(access_token), "a login the admin ended")
    assert (await refresh(api, other["refresh_token"])).status_code == 401
    # The admin's own login is not one of them.
    assert (await api.http.get("/users", headers=admin.auth)).status_code == 200


# -- the longest life of a login -----------------------------------------------------------

LOGIN_LIFE_SECONDS = 6


async def test_a_login_ends_at_its_longest_life_however_often_it_is_refreshed(
    stack: RunningStack, tmp_path: Path
) -> None:
    settings = {"CONVEYOR_SESSION_MAX_SECONDS": str(LOGIN_LIFE_SECONDS)}
    with edge_of_its_own(stack.urls, tmp_path, settings) as edge:
        async with Api(edge) as client:
            account = await client.new_account()
            refreshed: list[dict[str, Any]] = []

            async def keep_refreshing() -> httpx.Response:
                latest = refreshed[-1]["refresh_token"] if refreshed else account.refresh_token
                answer = await refresh(client, latest)
                if answer.status_code == 200:
                    refreshed.append(answer.json())
                return answer

            refused = await eventually_async(
                keep_refreshing,
                "a login refreshed again and again ends",
                until=lambda answer: answer.status_code == 401,
                within=LOGIN_LIFE_SECONDS * 10,
            )

            assert refreshed, "the login was refused before it was ever refreshed"
            assert refused.json()["detail"] == (
                "this login has lasted as long as a login may; sign in again"
            )
            await refused_within_bound(
                client, bearer(refreshed[-1]["access_token"]), "the last access token of the login"
            )
            again = await client.login(account.email, account.password)
            assert (await refresh(client, again["refresh_token"])).status_code == 200
