"""``/auth``: register, login, refresh (rotating) and logout."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from fastapi import APIRouter, Response, status

from conveyor.api import security
from conveyor.api.access_tokens import AccessTokens
from conveyor.api.data import users
from conveyor.api.deps import Db, KeptLogins, Settings, Tokens
from conveyor.api.errors import Unauthorized
from conveyor.api.routes import problems
from conveyor.domain.rest import (
    Credentials,
    RefreshRequest,
    Registration,
    TokenPair,
    UserPublic,
    UserStatus,
)

# The app rate-limits this router per address, with a tighter budget than the others.
router = APIRouter(prefix="/auth", tags=["auth"])


def _pair(tokens: AccessTokens, user_id: UUID, family: UUID, refresh_token: str) -> TokenPair:
    return TokenPair(
        access_token=tokens.issue(user_id, family),
        refresh_token=refresh_token,
        expires_in=int(tokens.lifetime.total_seconds()),
    )


@router.post(
    "/register",
    operation_id="registerUser",
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, 422),
)
async def register(body: Registration, db: Db) -> UserPublic:
    """Open an account with the `user` role."""
    security.check_password_strength(body.password, body.email, body.name)
    password_hash = await security.hash_password(body.password)
    return await users.create_user(db, body.email, body.name, password_hash)


@router.post("/login", operation_id="login", responses=problems(401))
async def login(body: Credentials, db: Db, settings: Settings, tokens: Tokens) -> TokenPair:
    """Trade e-mail and password for an access token and a refresh token."""
    found = await users.find_login(db, body.email)
    valid = await security.verify_password(body.password, found[1] if found else None)
    if found is None or not valid:
        raise Unauthorized("the e-mail address or the password is wrong")
    user = found[0]
    if user.status is not UserStatus.ACTIVE:
        raise Unauthorized("this account is disabled")
    refresh_token = security.new_refresh_token()
    family = await users.start_session(
        db,
        user.id,
        security.refresh_token_digest(refresh_token),
        timedelta(seconds=settings.refresh_token_seconds),
    )
    return _pair(tokens, user.id, family, refresh_token)


@router.post("/refresh", operation_id="refreshTokens", responses=problems(401))
async def refresh(
    body: RefreshRequest, db: Db, settings: Settings, tokens: Tokens, kept_logins: KeptLogins
) -> TokenPair:
    """A new token pair; the refresh token sent stops working. Sending it again ends the login."""
    new_token = security.new_refresh_token()
    try:
        user_id, family = await users.rotate_session(
            db,
            security.refresh_token_digest(body.refresh_token),
            security.refresh_token_digest(new_token),
            timedelta(seconds=settings.refresh_token_seconds),
        )
    except Unauthorized:
        kept_logins.clear()  # a token sent again has just ended its login
        raise
    caller = await users.find_user(db, user_id)
    if caller is None or caller.status is not UserStatus.ACTIVE:
        raise Unauthorized("this account is disabled")
    return _pair(tokens, user_id, family, new_token)


@router.post("/logout", operation_id="logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, db: Db, kept_logins: KeptLogins) -> Response:
    """End the login the refresh token belongs to; its access tokens stop working too (at once
    on this edge worker, within CONVEYOR_SESSION_CACHE_SECONDS on the others)."""
    await users.end_session(db, security.refresh_token_digest(body.refresh_token))
    kept_logins.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
