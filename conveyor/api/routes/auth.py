"""``/auth``: register, login, refresh (rotating) and logout."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from conveyor.api import security
from conveyor.api.data import users
from conveyor.api.deps import Db, KeptLogins, Settings, client_address
from conveyor.api.errors import Unauthorized
from conveyor.api.routes import problems
from conveyor.api.settings import ApiSettings
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


def _lifetimes(settings: ApiSettings) -> users.Lifetimes:
    return users.Lifetimes(
        refresh_token=timedelta(seconds=settings.refresh_token_seconds),
        login=timedelta(seconds=settings.session_max_seconds),
    )


def _pair(settings: ApiSettings, user_id: UUID, family: UUID, refresh_token: str) -> TokenPair:
    return TokenPair(
        access_token=security.issue_access_token(settings, user_id, family),
        refresh_token=refresh_token,
        expires_in=settings.access_token_seconds,
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
async def login(body: Credentials, db: Db, settings: Settings, request: Request) -> TokenPair:
    """Trade e-mail and password for an access token and a refresh token.

    The login lasts CONVEYOR_SESSION_MAX_SECONDS (30 days by default) at the most, however
    often it is refreshed; GET /users/me/sessions lists it with its user agent and address.
    """
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
        _lifetimes(settings),
        user_agent=request.headers.get("user-agent"),
        client_address=client_address(request),
    )
    return _pair(settings, user.id, family, refresh_token)


@router.post("/refresh", operation_id="refreshTokens", responses=problems(401))
async def refresh(
    body: RefreshRequest, db: Db, settings: Settings, kept_logins: KeptLogins
) -> TokenPair:
    """A new token pair; the refresh token sent stops working. Sending it again ends the login.

    Refused once the login has ended (signed out, ended from its sessions, a password
    change elsewhere) or has lasted CONVEYOR_SESSION_MAX_SECONDS: then sign in again.
    """
    new_token = security.new_refresh_token()
    try:
        user_id, family = await users.rotate_session(
            db,
            security.refresh_token_digest(body.refresh_token),
            security.refresh_token_digest(new_token),
            _lifetimes(settings),
        )
    except Unauthorized:
        kept_logins.clear()  # a token sent again has just ended its login
        raise
    caller = await users.find_user(db, user_id)
    if caller is None or caller.status is not UserStatus.ACTIVE:
        raise Unauthorized("this account is disabled")
    return _pair(settings, user_id, family, new_token)


@router.post("/logout", operation_id="logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, db: Db, kept_logins: KeptLogins) -> Response:
    """End the login the refresh token belongs to; its access tokens stop working too (at once
    on this edge worker, within CONVEYOR_SESSION_CACHE_SECONDS on the others)."""
    await users.end_session(db, security.refresh_token_digest(body.refresh_token))
    kept_logins.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
