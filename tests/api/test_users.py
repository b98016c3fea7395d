"""Users: one's own account and profile, and account management reserved to admins."""

from __future__ import annotations

import uuid

import pytest

from tests.support.edge import Account, Api

pytestmark = pytest.mark.e2e


async def test_users_see_their_own_account_with_its_profile(api: Api, account: Account) -> None:
    me = (await api.http.get("/users/me", headers=account.auth)).json()
    assert me["id"] == str(account.id)
    assert me["profile"] == {"bio": None, "avatar_url": None, "location": None, "phone": None}


async def test_users_change_their_name_and_profile_field_by_field(
    api: Api, account: Account
) -> None:
    first = await api.http.patch(
        "/users/me",
        json={
            "name": "Ada King",
            "profile": {"bio": "Mathematician.\nPoet.", "location": "London"},
        },
        headers=account.auth,
    )
    assert first.status_code == 200
    second = await api.http.patch(
        "/users/me", json={"profile": {"phone": "+44 20 7946 0958"}}, headers=account.auth
    )
    profile = second.json()["profile"]
    assert second.json()["name"] == "Ada King"
    assert profile["bio"] == "Mathematician.\nPoet."
    assert profile["location"] == "London"
    assert profile["phone"] == "+44 20 7946 0958"


async def test_users_show_an_https_avatar(api: Api, account: Account) -> None:
    avatar = "https://images.example.org/ada.png?size=128"
    response = await api.http.patch(
        "/users/me", json={"profile": {"avatar_url": avatar}}, headers=account.auth
    )
    assert response.status_code == 200
    me = (await api.http.get("/users/me", headers=account.auth)).json()
    assert me["profile"]["avatar_url"] == avatar


@pytest.mark.parametrize(
    "avatar",
    [
        "javascript:alert(document.cookie)",
        "http://images.example.org/ada.png",
        "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
        "https://",
        "https://user:secret@images.example.org/ada.png",
    ],
    ids=["javascript", "http", "data", "no host", "credentials"],
)
async def test_an_avatar_that_is_not_an_https_address_is_refused(
    api: Api, account: Account, avatar: str
) -> None:
    response = await api.http.patch(
        "/users/me", json={"profile": {"avatar_url": avatar}}, headers=account.auth
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [issue] = response.json()["errors"]
    assert issue["loc"] == ["body", "profile", "avatar_url"]
    assert issue["msg"] == "an avatar URL must be an https:// address with a host name"
    me = (await api.http.get("/users/me", headers=account.auth)).json()
    assert me["profile"]["avatar_url"] is None


@pytest.mark.parametrize("field", [{"role": "admin"}, {"status": "disabled"}, {"email": "x@y.io"}])
async def test_users_cannot_change_their_role_status_or_email(
    api: Api, account: Account, field: dict[str, str]
) -> None:
    response = await api.http.patch("/users/me", json=field, headers=account.auth)
    assert response.status_code == 422
    me = (await api.http.get("/users/me", headers=account.auth)).json()
    assert me["role"] == "user"
    assert me["status"] == "active"
    assert me["email"] == account.email


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users"),
        ("POST", "/users"),
        ("GET", "/users/{other}"),
        ("PATCH", "/users/{other}"),
        ("DELETE", "/users/{other}"),
        ("DELETE", "/users/{other}/sessions"),
        ("POST", "/products"),
        ("PATCH", "/products/{product}"),
        ("DELETE", "/products/{product}"),
        ("POST", "/products/{product}/stock"),
    ],
)
async def test_admin_routes_are_forbidden_to_users(
    api: Api, account: Account, method: str, path: str
) -> None:
    other = await api.new_account()
    url = path.format(other=other.id, product=uuid.uuid4())
    bodies = {
        "POST /users": {
            "email": "x@example.org",
            "name": "X",
            "password": "long enough password",
            "role": "admin",
        },
        "PATCH /users/{other}": {"role": "admin"},
        "POST /products": {"sku": "X-1", "name": "X", "price": "1.00", "currency": "EUR"},
        "PATCH /products/{product}": {"price": "0.01"},
        "POST /products/{product}/stock": {"delta": 5},
    }
    body = bodies.get(f"{method} {path}")
    response = await api.http.request(method, url, json=body, headers=account.auth)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    # Nothing changed: the other account is still a user.
    admin = await api.admin()
    after = await api.http.get(f"/users/{other.id}", headers=admin.auth)
    assert after.json()["role"] == "user"


async def test_admins_create_read_promote_and_delete_accounts(api: Api, admin: Account) -> None:
    email = f"staff-{uuid.uuid4().hex[:8]}@example.org"
    created = await api.http.post(
        "/users",
        json={
            "email": email,
            "name": "Staff",
            "password": "keeper of the stockroom 7",
            "role": "admin",
        },
        headers=admin.auth,
    )
    assert created.status_code == 201
    user_id = created.json()["id"]
    assert created.json()["role"] == "admin"

    demoted = await api.http.patch(f"/users/{user_id}", json={"role": "user"}, headers=admin.auth)
    assert demoted.json()["role"] == "user"
    assert (await api.http.get(f"/users/{user_id}", headers=admin.auth)).json()["email"] == email

    assert (await api.http.delete(f"/users/{user_id}", headers=admin.auth)).status_code == 204
    assert (await api.http.get(f"/users/{user_id}", headers=admin.auth)).status_code == 404
    assert (await api.http.delete(f"/users/{user_id}", headers=admin.auth)).status_code == 404
    gone = await api.http.patch(f"/users/{user_id}", json={"name": "X"}, headers=admin.auth)
    assert gone.status_code == 404


async def test_admins_cannot_lock_themselves_out(api: Api, admin: Account) -> None:
    demote = await api.http.patch(f"/users/{admin.id}", json={"role": "user"}, headers=admin.auth)
    delete = await api.http.delete(f"/users/{admin.id}", headers=admin.auth)
    assert demote.status_code == delete.status_code == 409
    assert (await api.http.get("/users/me", headers=admin.auth)).json()["role"] == "admin"


async def test_the_user_list_pages_through_every_account_once(api: Api, admin: Account) -> None:
    for _ in range(3):
        await api.new_account()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.http.get("/users", params=params, headers=admin.auth)).json()
        assert len(page["items"]) <= 2
        seen += [user["id"] for user in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 4


async def test_a_cursor_the_api_did_not_give_out_is_422(api: Api, admin: Account) -> None:
    response = await api.http.get("/users", params={"cursor": "bm9wZQ"}, headers=admin.auth)
    assert response.status_code == 422
