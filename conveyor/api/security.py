"""Access tokens and refresh tokens (passwords are ``conveyor.api.passwords``).

Access tokens are JWTs validated per RFC 8725: one fixed algorithm (HS256; ``none`` and every
other algorithm refused, so an RSA public key can never be replayed as an HMAC secret), and
issuer, audience, expiry and subject required. Refresh tokens are opaque random strings;
only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import jwt

from conveyor.api.errors import Unauthorized
from conveyor.api.settings import ApiSettings

ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    session_family: UUID
    expires_at: datetime


def issue_access_token(
    settings: ApiSettings, user_id: UUID, session_family: UUID, now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "sid": str(session_family),
        "iat": issued,
        "nbf": issued,
        "exp": issued + timedelta(seconds=settings.access_token_seconds),
        "jti": str(uuid4()),
    }
    return jwt.encode(
        claims,
        settings.jwt_secret.get_secret_value(),
        algorithm=ALGORITHM,
        headers={"typ": "at+jwt"},
    )


def read_access_token(settings: ApiSettings, token: str) -> AccessClaims:
    """The token's claims, or Unauthorized for anything forged, foreign or expired."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("the token's algorithm is not accepted")
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]},
            leeway=5,
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


def new_refresh_token() -> str:
    return secrets.token_urlsafe(48)


def refresh_token_digest(token: str) -> str:
    return token_digest(token)


def token_digest(token: str) -> str:
    """What is stored of a random token (a refresh token, an account e-mail's code)."""
    # Such a token is 256 random bits or more, so a fast hash suffices: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
