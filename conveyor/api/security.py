"""Passwords and refresh tokens (access tokens are ``access_tokens``).

Passwords are hashed with argon2id. Refresh tokens are opaque random strings; only their
SHA-256 is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from conveyor.api.errors import Unprocessable
from conveyor.domain.rest import MIN_PASSWORD_LENGTH

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


def new_refresh_token() -> str:
    return secrets.token_urlsafe(48)


def refresh_token_digest(token: str) -> str:
    # The token is 384 random bits, so a fast hash suffices: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
