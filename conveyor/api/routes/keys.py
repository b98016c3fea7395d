"""``/.well-known/jwks.json``: the public keys that verify the edge's access tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from conveyor.api.deps import Tokens
from conveyor.domain.rest import JsonWebKeySet

router = APIRouter(tags=["auth"])
# The keys change only with a rotation, which publishes a new key well before it signs
# (docs/accounts.md); a verifier that meets a kid it does not know fetches the set again.
KEY_SET_CACHE_SECONDS = 300


@router.get("/.well-known/jwks.json", operation_id="getSigningKeys")
async def signing_keys(tokens: Tokens, response: Response) -> JsonWebKeySet:
    """The public keys access tokens are signed with, as a JSON Web Key Set (RFC 7517): the
    one signing now first, then those whose tokens may still be live. A token's `kid`
    header names its key."""
    response.headers["Cache-Control"] = f"public, max-age={KEY_SET_CACHE_SECONDS}"
    return tokens.key_set
