"""Refresh tokens and the single-use codes of account e-mails (passwords are
``conveyor.api.passwords``, access tokens ``conveyor.api.access_tokens``).

Both are opaque random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets


def new_refresh_token() -> str:
    return secrets.token_urlsafe(48)


def token_digest(token: str) -> str:
    """What is stored of a random token (a refresh token, an account e-mail's code)."""
    # Such a token is 256 random bits or more, so a fast hash suffices: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def address_digest(email: str) -> str:
    """What a count kept in Redis per e-mail address is keyed by: the address in any case,
    hashed, so Redis names no address."""
    return hashlib.sha256(email.lower().encode()).hexdigest()
