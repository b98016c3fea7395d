"""Forged, foreign and expired access tokens are refused (RFC 8725)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from tests.support.edge import Account, Api, bearer

pytestmark = pytest.mark.e2e


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def refused(api: Api, token: str) -> bool:
    response = await api.http.get("/users/me", headers=bearer(token))
    return response.status_code == 401 and response.json()["status"] == 401


async def test_an_unsigned_token_with_alg_none_is_refused(api: Api, account: Account) -> None:
    forged = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_of(account.access_token))}."
    assert await refused(api, forged)


async def test_a_token_signed_with_another_key_is_refused(api: Api, account: Account) -> None:
    forged = jwt.encode(claims_of(account.access_token), "another-key-" * 4, algorithm="HS256")
    assert await refused(api, forged)


async def test_a_token_with_another_algorithm_is_refused_even_with_the_right_key(
    api: Api, account: Account
) -> None:
    forged = jwt.encode(claims_of(account.access_token), api.edge.jwt_secret, algorithm="HS512")
    assert await refused(api, forged)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("aud", "someone-else"), ("iss", "an-impostor"), ("exp", 1_000_000_000)],
    ids=["wrong audience", "wrong issuer", "expired"],
)
async def test_a_correctly_signed_token_with_a_wrong_claim_is_refused(
    api: Api, account: Account, claim: str, value: object
) -> None:
    forged = jwt.encode(
        {**claims_of(account.access_token), claim: value}, api.edge.jwt_secret, algorithm="HS256"
    )
    assert await refused(api, forged)


async def test_a_token_without_expiry_is_refused(api: Api, account: Account) -> None:
    claims = claims_of(account.access_token)
    del claims["exp"]
    assert await refused(api, jwt.encode(claims, api.edge.jwt_secret, algorithm="HS256"))


async def test_a_tampered_payload_is_refused(api: Api, account: Account) -> None:
    header, _, signature = account.access_token.split(".")
    claims = {**claims_of(account.access_token), "exp": int(time.time()) + 10**6}
    assert await refused(api, f"{header}.{b64(claims)}.{signature}")


@pytest.mark.parametrize("value", ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt"])
async def test_missing_or_malformed_authorization_is_401(api: Api, value: str) -> None:
    response = await api.http.get("/users/me", headers={"Authorization": value} if value else {})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
