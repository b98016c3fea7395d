"""Passwords, access tokens and refresh tokens: the edge's only cryptography.

Passwords are hashed with argon2id. Access tokens are JWTs validated per RFC 8725: one fixed
algorithm (HS256; ``none`` and every other algorithm refused, so an RSA public key can never
be replayed as an HMAC secret), and issuer, audience, expiry and subject required. Refresh
tokens are opaque random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from conveyor.api.errors import Unauthorized, Unprocessable
from conveyor.api.settings import ApiSettings
from conveyor.domain.rest import MIN_PASSWORD_LENGTH

ALGORITHM = "HS256"
# Long inputs cost argon2 nothing extra, but a cap keeps request bodies honest.
MAX_PASSWORD_LENGTH = 256
_COMMON_PASSWORDS = frozenset(
    {
        "password123",
        "1234567890",
        "qwertyuiop",
        "password1234",
        "iloveyou123",
        "letmein1234",
        "0123456789",
        "abcdefghij",
        "aaaaaaaaaa",
    }
)

# argon2-cffi's defaults are argon2id with RFC 9106's second recommended parameter set.
_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so a login takes as long either way and does
# not tell an attacker which addresses have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_password_strength(password: str, email: str, name: str) -> None:
    """Refuse passwords that are short, common, or made of the account's own details."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if lowered in _COMMON_PASSWORDS or len(set(password)) < 4:
        raise Unprocessable("the password is too easy to guess; choose a longer, rarer one")
    local_part = email.split("@", 1)[0].lower()
    if (len(local_part) >= 4 and local_part in lowered) or name.lower() == lowered:
        raise Unprocessable("the password must not contain your e-mail address or name")


async def hash_password(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU by design: off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


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
