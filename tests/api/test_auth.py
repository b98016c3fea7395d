"""Accounts and logins: register, login, rotating refresh, logout, disabled accounts."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.edge import ADMIN_EMAIL, Account, Api, bearer, refused_within_bound

pytestmark = pytest.mark.e2e


def new_email() -> str:
    return f"reg-{uuid.uuid4().hex[:10]}@example.org"


async def test_registering_creates_a_user_account_without_echoing_the_password(api: Api) -> None:
    email = new_email()
    response = await api.http.post(
        "/auth/register",
        json={"email": email, "name": "Grace Hopper", "password": "compiler-1952-cobol"},
    )
    assert response.status_code == 201
    user = response.json()
    assert user["email"] == email
    assert user["role"] == "user"
    assert user["status"] == "active"
    assert "password" not in response.text
    assert "compiler-1952" not in response.text


async def test_an_email_address_registers_once_whatever_its_case(api: Api) -> None:
    email = new_email()
    body = {"email": email, "name": "Ada", "password": "analytical-engine-1843"}
    assert (await api.http.post("/auth/register", json=body)).status_code == 201
    again = await api.http.post("/auth/register", json={**body, "email": email.upper()})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["status"] == 409


async def test_a_password_shorter_than_ten_characters_is_refused(api: Api) -> None:
    response = await api.http.post(
        "/auth/register", json={"email": new_email(), "name": "Ada", "password": "Zq8#kW2!"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    ("password", "advice"),
    [
        ("aaaaaaaaaaaaaaaa", 'Repeats like "aaa" are easy to guess.'),
        ("password123", "This is a very common password."),
        ("qwertyuiop", "Add another word or two."),
        ("abcdefghijkl-1234", "Avoid sequences."),
    ],
)
async def test_passwords_easy_to_guess_are_refused_saying_how_to_choose_better(
    api: Api, password: str, advice: str
) -> None:
    response = await api.http.post(
        "/auth/register", json={"email": new_email(), "name": "Ada", "password": password}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert detail.startswith("the password is too easy to guess")
    assert advice in detail


@pytest.mark.parametrize(
    ("password", "name"),
    [
        ("{local}-2024", "Ada"),
        ("my {local} Password!", "Ada"),
        ("Ada Lovelace 1815", "Ada Lovelace"),
        ("adalovelace-1815", "Ada Lovelace"),
    ],
)
async def test_a_password_holding_the_email_address_or_the_name_is_refused(
    api: Api, password: str, name: str
) -> None:
    email = new_email()
    response = await api.http.post(
        "/auth/register",
        json={
            "email": email,
            "name": name,
            "password": password.format(local=email.split("@")[0]),
        },
    )
    assert response.status_code == 422
    assert "e-mail address or name" in response.json()["detail"]


async def test_a_long_passphrase_of_the_longest_length_is_accepted(api: Api) -> None:
    passphrase = " ".join(
        ["quiet", "harbour", "lantern", "velvet", "orchard", "granite", "meadow", "ember"] * 6
    )[:256]
    response = await api.http.post(
        "/auth/register", json={"email": new_email(), "name": "Ada", "password": passphrase}
    )
    assert response.status_code == 201, response.text
    assert (await api.login(response.json()["email"], passphrase))["access_token"]


async def test_an_invalid_email_address_is_refused(api: Api) -> None:
    response = await api.http.post(
        "/auth/register",
        json={"email": "not-an-address", "name": "Ada", "password": "long enough pass 1"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "email"]


async def test_login_gives_a_bearer_token_pair_that_opens_the_account(
    api: Api, account: Account
) -> None:
    tokens = await api.login(account.email, account.password)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] > 0
    me = await api.http.get("/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == account.email


async def test_a_wrong_password_and_an_unknown_email_are_refused_alike(
    api: Api, account: Account
) -> None:
    wrong = await api.http.post(
        "/auth/login", json={"email": account.email, "password": "not the password"}
    )
    unknown = await api.http.post(
        "/auth/login", json={"email": new_email(), "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_refresh_rotates_and_the_old_refresh_token_stops_working(
    api: Api, account: Account
) -> None:
    first = await api.http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != account.refresh_token
    me = await api.http.get("/users/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 200

    replay = await api.http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert replay.status_code == 401


async def test_reusing_a_rotated_refresh_token_ends_the_whole_login(
    api: Api, account: Account
) -> None:
    """A replayed refresh token means it was copied: the thief's and the owner's die alike."""
    rotated = (
        await api.http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    ).json()
    stolen = await api.http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert stolen.status_code == 401

    owner = await api.http.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert owner.status_code == 401
    await refused_within_bound(api, bearer(rotated["access_token"]), "the owner's access token")


async def test_logout_ends_the_refresh_token_and_its_access_tokens(
    api: Api, account: Account
) -> None:
    out = await api.http.post("/auth/logout", json={"refresh_token": account.refresh_token})
    assert out.status_code == 204
    again = await api.http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert again.status_code == 401
    await refused_within_bound(api, account.auth, "the logged-out access token")


def refresh_cookie(response: httpx.Response) -> dict[str, str]:
    """The attributes of the Set-Cookie that carries the refresh cookie (its value as
    ``value``); the attribute names lowercased."""
    [header] = [
        header
        for header in response.headers.get_list("set-cookie")
        if header.startswith("conveyor_refresh=")
    ]
    first, *attributes = (part.strip() for part in header.split(";"))
    cookie = {"value": first.split("=", 1)[1].strip('"')}
    for attribute in attributes:
        name, _, value = attribute.partition("=")
        cookie[name.lower()] = value
    return cookie


def with_cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"conveyor_refresh={token}"}


async def test_login_also_sets_the_refresh_token_as_a_cookie_no_script_can_read(
    api: Api, account: Account
) -> None:
    response = await api.http.post(
        "/auth/login", json={"email": account.email, "password": account.password}
    )
    cookie = refresh_cookie(response)
    assert cookie["value"] == response.json()["refresh_token"]
    assert {"httponly", "secure"} <= cookie.keys()
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/api/v1/auth"  # sent to the auth routes only
    assert int(cookie["max-age"]) > 0


async def test_a_browser_refreshes_and_logs_out_with_the_cookie_alone(
    api: Api, account: Account
) -> None:
    refreshed = await api.http.post("/auth/refresh", headers=with_cookie(account.refresh_token))
    assert refreshed.status_code == 200, refreshed.text
    rotated = refresh_cookie(refreshed)["value"]
    assert rotated == refreshed.json()["refresh_token"] != account.refresh_token
    me = await api.http.get("/users/me", headers=bearer(refreshed.json()["access_token"]))
    assert me.status_code == 200

    out = await api.http.post("/auth/logout", headers=with_cookie(rotated))
    assert out.status_code == 204
    assert int(refresh_cookie(out)["max-age"]) == 0  # the browser forgets it
    again = await api.http.post("/auth/refresh", headers=with_cookie(rotated))
    assert again.status_code == 401
    await refused_within_bound(api, bearer(refreshed.json()["access_token"]), "the access token")


async def test_a_refused_refresh_cookie_is_deleted_and_none_at_all_says_sign_in(
    api: Api, account: Account
) -> None:
    none = await api.http.post("/auth/refresh")
    assert none.status_code == 401
    assert none.headers["content-type"] == "application/problem+json"
    assert "sign in again" in none.json()["detail"]

    await api.http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    replayed = await api.http.post("/auth/refresh", headers=with_cookie(account.refresh_token))
    assert replayed.status_code == 401
    assert int(refresh_cookie(replayed)["max-age"]) == 0


async def test_the_body_s_refresh_token_wins_over_the_cookie(api: Api, account: Account) -> None:
    """A client that sends its token in the body gets that login refreshed, whatever an
    earlier sign-in left in a cookie."""
    other = await api.login(account.email, account.password)
    refreshed = await api.http.post(
        "/auth/refresh",
        json={"refresh_token": account.refresh_token},
        headers=with_cookie(other["refresh_token"]),
    )
    assert refreshed.status_code == 200
    kept = await api.http.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert kept.status_code == 200  # the cookie's token was not used, so not rotated away


async def test_a_disabled_users_tokens_stop_working_and_login_is_refused(
    api: Api, account: Account, admin: Account
) -> None:
    disabled = await api.http.patch(
        f"/users/{account.id}", json={"status": "disabled"}, headers=admin.auth
    )
    assert disabled.status_code == 200
    await refused_within_bound(api, account.auth, "the disabled account's access token")
    refresh = await api.http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401
    login = await api.http.post(
        "/auth/login", json={"email": account.email, "password": account.password}
    )
    assert login.status_code == 401


async def test_the_first_admin_comes_from_the_environment(api: Api) -> None:
    tokens = await api.login(ADMIN_EMAIL, api.edge.admin_password)
    me = await api.http.get("/users/me", headers=bearer(tokens["access_token"]))
    assert me.json()["role"] == "admin"
