"""Access tokens: short-lived JWTs signed with Ed25519 (EdDSA), and the keys that verify them.

Validated per RFC 8725: one algorithm (EdDSA; ``none``, HMAC and every other refused, so a
public key can never be replayed as an HMAC secret), the ``at+jwt`` type of RFC 9068 (no
other kind of JWT passes for an access token), a ``kid`` naming one of the edge's keys, and
issuer, audience, expiry and subject required. Anyone may verify them with the public keys
the edge publishes at ``/.well-known/jwks.json``.

Verifying an Ed25519 signature takes about 0.1 ms of CPU, and a request with a token reads
it twice (its user's rate limit, then its caller). So each worker keeps the claims of the
tokens it verified: a token seen again is only checked for expiry. A kept token was verified
with a key the worker holds, and its keys change only when it restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import jwt

from conveyor.api.caching import Expiring
from conveyor.api.errors import Unauthorized
from conveyor.api.settings import ApiSettings
from conveyor.api.signing_keys import SigningKey, read_signing_keys
from conveyor.domain.rest import JsonWebKey, JsonWebKeySet

ALGORITHM = "EdDSA"
# RFC 9068 §2.1; a media type may drop its "application/" (RFC 7515 §4.1.9).
TOKEN_TYPE = "at+jwt"
_TOKEN_TYPES = frozenset({TOKEN_TYPE, f"application/{TOKEN_TYPE}"})
# Clocks of the edge's replicas may differ this much.
LEEWAY_SECONDS = 5
# Tokens whose claims a worker keeps: one per shopper active within a token's life for ten
# thousand shoppers, about 7 MB (a token and its claims are about 700 bytes).
VERIFIED_TOKENS_KEPT = 10_000


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    session_family: UUID
    expires_at: datetime


class AccessTokens:
    """Issues access tokens with the first key and reads those of any key it holds."""

    def __init__(
        self, keys: tuple[SigningKey, ...], issuer: str, audience: str, lifetime: timedelta
    ) -> None:
        self._signing = keys[0]
        self._verifying = {key.kid: key for key in keys}
        self._issuer = issuer
        self._audience = audience
        self.lifetime = lifetime
        self.key_set = JsonWebKeySet(
            keys=[JsonWebKey(kid=key.kid, x=key.public_jwk["x"]) for key in keys]
        )
        self._verified: Expiring[str, AccessClaims] = Expiring(
            "token", lifetime.total_seconds() + LEEWAY_SECONDS, VERIFIED_TOKENS_KEPT
        )

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> AccessTokens:
        return cls(
            read_signing_keys(settings.jwt_signing_keys.get_secret_value()),
            settings.jwt_issuer,
            settings.jwt_audience,
            timedelta(seconds=settings.access_token_seconds),
        )

    def issue(self, user_id: UUID, session_family: UUID, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_family),
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.lifetime,
            "jti": str(uuid4()),
        }
        return jwt.encode(
            claims,
            self._signing.private,
            algorithm=ALGORITHM,
            headers={"typ": TOKEN_TYPE, "kid": self._signing.kid},
        )

    def read(self, token: str) -> AccessClaims:
        """The token's claims, or Unauthorized for anything forged, foreign or expired."""
        kept = self._verified.get(token)
        if kept is not None and time.time() < kept.expires_at.timestamp() + LEEWAY_SECONDS:
            return kept
        claims = self._verify(token)
        self._verified.put(token, claims)
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise Unauthorized("the token's algorithm is not accepted")
            if str(header.get("typ", "")).lower() not in _TOKEN_TYPES:
                raise Unauthorized(f"the token is not an access token (typ {TOKEN_TYPE})")
            key = self._verifying.get(str(header.get("kid", "")))
            if key is None:
                raise Unauthorized("the token was signed with a key this edge does not hold")
            claims = jwt.decode(
                token,
                key.public,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]},
                leeway=LEEWAY_SECONDS,
            )
            return AccessClaims(
                user_id=UUID(claims["sub"]),
                session_family=UUID(claims["sid"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the access token has expired; refresh it") from exc
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise Unauthorized("the access token is not valid") from exc
