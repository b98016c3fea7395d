"""Access tokens: signed with the edge's Ed25519 keys, published as JWKS, rotated without
ending anyone's login; forged, foreign and expired tokens are refused (RFC 8725, RFC 9068)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from conveyor.api.access_tokens import LEEWAY_SECONDS
from conveyor.api.signing_keys import SigningKey, new_signing_key_pem, read_signing_keys
from tests.support.edge import Account, Api, EdgeProcess, bearer
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64_json(data: dict[str, Any]) -> str:
    return b64(json.dumps(data).encode())


def signing_key(edge: EdgeProcess) -> SigningKey:
    return read_signing_keys(edge.signing_keys)[0]


def signed(claims: dict[str, Any], key: SigningKey, **header: Any) -> str:
    """A token as the edge would sign it with ``key``, but for ``header``'s changes."""
    return jwt.encode(
        claims, key.private, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": key.kid, **header}
    )


async def accepted(api: Api, token: str) -> bool:
    return (await api.http.get("/users/me", headers=bearer(token))).status_code == 200


async def refused(api: Api, token: str) -> bool:
    response = await api.http.get("/users/me", headers=bearer(token))
    return response.status_code == 401 and response.json()["status"] == 401


async def key_set(edge: EdgeProcess) -> httpx.Response:
    async with httpx.AsyncClient(base_url=edge.base_url) as http:
        return await http.get("/.well-known/jwks.json")


# -- what the edge issues and publishes ----------------------------------------------------


async def test_access_tokens_are_eddsa_access_tokens_naming_their_key(
    api: Api, account: Account
) -> None:
    header = jwt.get_unverified_header(account.access_token)
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": signing_key(api.edge).kid}


async def test_anyone_can_verify_an_access_token_with_the_published_keys(
    api: Api, account: Account
) -> None:
    published = await key_set(api.edge)
    assert published.status_code == 200
    assert published.headers["cache-control"].startswith("public, max-age=")
    keys = jwt.PyJWKSet.from_dict(published.json())
    kid = jwt.get_unverified_header(account.access_token)["kid"]
    claims = jwt.decode(
        account.access_token, keys[kid], algorithms=["EdDSA"], audience="conveyor-api"
    )
    assert claims["sub"] == str(account.id)


async def test_a_token_signed_with_the_edges_key_by_anyone_who_holds_it_is_accepted(
    api: Api, account: Account
) -> None:
    """The forgeries below are refused for what they change, not for how the test signs."""
    assert await accepted(api, signed(claims_of(account.access_token), signing_key(api.edge)))


# -- forged and foreign tokens -------------------------------------------------------------


async def test_an_unsigned_token_with_alg_none_is_refused(api: Api, account: Account) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": signing_key(api.edge).kid}
    forged = f"{b64_json(header)}.{b64_json(claims_of(account.access_token))}."
    assert await refused(api, forged)


async def test_a_token_signed_with_another_key_under_the_edges_key_id_is_refused(
    api: Api, account: Account
) -> None:
    another = read_signing_keys(new_signing_key_pem())[0]
    forged = signed(claims_of(account.access_token), another, kid=signing_key(api.edge).kid)
    assert await refused(api, forged)


async def test_a_token_signed_with_a_key_the_edge_does_not_hold_is_refused(
    api: Api, account: Account
) -> None:
    another = read_signing_keys(new_signing_key_pem())[0]
    response = await api.http.get(
        "/users/me", headers=bearer(signed(claims_of(account.access_token), another))
    )
    assert response.status_code == 401
    assert "key this edge does not hold" in response.json()["detail"]


async def test_a_token_without_a_key_id_is_refused(api: Api, account: Account) -> None:
    key = signing_key(api.edge)
    forged = jwt.encode(
        claims_of(account.access_token), key.private, algorithm="EdDSA", headers={"typ": "at+jwt"}
    )
    assert await refused(api, forged)


@pytest.mark.parametrize(
    "public_form", ["pem", "raw"], ids=["the PEM public key", "the JWKS bytes"]
)
async def test_an_hmac_token_keyed_with_the_edges_public_key_is_refused(
    api: Api, account: Account, public_form: str
) -> None:
    """The classic confusion: a verifier that took the algorithm from the token would check
    an HS256 signature made with the public key, which anyone can read."""
    public = signing_key(api.edge).public
    secret = (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if public_form == "pem"
        else public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": signing_key(api.edge).kid}
    signing_input = f"{b64_json(header)}.{b64_json(claims_of(account.access_token))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert await refused(api, f"{signing_input}.{b64(mac)}")


@pytest.mark.parametrize("token_type", ["JWT", "id+jwt", None])
async def test_a_token_of_another_type_is_refused_even_with_the_edges_key(
    api: Api, account: Account, token_type: str | None
) -> None:
    forged = signed(claims_of(account.access_token), signing_key(api.edge), typ=token_type)
    assert await refused(api, forged)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("aud", "someone-else"), ("iss", "an-impostor"), ("exp", 1_000_000_000)],
    ids=["wrong audience", "wrong issuer", "expired"],
)
async def test_a_correctly_signed_token_with_a_wrong_claim_is_refused(
    api: Api, account: Account, claim: str, value: object
) -> None:
    forged = signed({**claims_of(account.access_token), claim: value}, signing_key(api.edge))
    assert await refused(api, forged)


async def test_a_token_accepted_before_is_refused_once_it_has_expired(
    api: Api, account: Account
) -> None:
    """Each worker keeps the claims of the tokens it verified; a kept token still expires."""
    expires_at = time.time() + 3
    token = signed(
        {**claims_of(account.access_token), "exp": int(expires_at)}, signing_key(api.edge)
    )
    for _ in range(6):  # on every worker of the edge, as far as the requests spread
        assert await accepted(api, token)
    await asyncio.sleep(max(0.0, expires_at + LEEWAY_SECONDS + 1 - time.time()))
    for _ in range(6):
        assert await refused(api, token)


async def test_a_token_without_expiry_is_refused(api: Api, account: Account) -> None:
    claims = claims_of(account.access_token)
    del claims["exp"]
    assert await refused(api, signed(claims, signing_key(api.edge)))


async def test_a_tampered_payload_is_refused(api: Api, account: Account) -> None:
    header, _, signature = account.access_token.split(".")
    claims = {**claims_of(account.access_token), "exp": int(time.time()) + 10**6}
    assert await refused(api, f"{header}.{b64_json(claims)}.{signature}")


@pytest.mark.parametrize("value", ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt"])
async def test_missing_or_malformed_authorization_is_401(api: Api, value: str) -> None:
    response = await api.http.get("/users/me", headers={"Authorization": value} if value else {})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


# -- rotation ------------------------------------------------------------------------------


async def test_a_rotation_keeps_old_tokens_working_until_the_old_key_is_removed(
    api: Api, account: Account, stack: RunningStack, tmp_path: Path
) -> None:
    """A new key first in CONVEYOR_JWT_SIGNING_KEYS signs; the old one after it still
    verifies; once it is removed, the tokens it signed are refused."""
    old = signing_key(api.edge)
    new_pem = new_signing_key_pem()
    new = read_signing_keys(new_pem)[0]
    rotated = EdgeProcess(
        stack.urls, tmp_path / "rotated.log", signing_keys=new_pem + api.edge.signing_keys
    )
    with rotated.running():
        client = Api(rotated)
        try:
            old_token_still_works = await accepted(client, account.access_token)
            fresh = (await client.login(account.email, account.password))["access_token"]
            fresh_works = await accepted(client, fresh)
        finally:
            await client.close()
        published = (await key_set(rotated)).json()
    assert old_token_still_works
    assert jwt.get_unverified_header(fresh)["kid"] == new.kid
    assert fresh_works
    assert [key["kid"] for key in published["keys"]] == [new.kid, old.kid]

    retired = EdgeProcess(stack.urls, tmp_path / "retired.log", signing_keys=new_pem)
    with retired.running():
        client = Api(retired)
        try:
            old_token_refused = await refused(client, account.access_token)
            fresh_still_works = await accepted(client, fresh)
        finally:
            await client.close()
        published = (await key_set(retired)).json()
    assert old_token_refused
    assert fresh_still_works
    assert [key["kid"] for key in published["keys"]] == [new.kid]
