"""``/auth``: register, login, refresh (rotating) and logout; verifying the address and
resetting a forgotten password with the codes account e-mails carry."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Body, Request, Response, status

from conveyor.api import security
from conveyor.api.access_tokens import AccessTokens
from conveyor.api.account_mail import AccountMailSender
from conveyor.api.data import account_emails, users
from conveyor.api.data.base import Pool
from conveyor.api.deps import (
    AccountMail,
    CallerWithinEmailBudget,
    Db,
    KeptLogins,
    LoginThrottle,
    Passwords,
    ResetRequest,
    Settings,
    Tokens,
    client_address,
)
from conveyor.api.errors import Conflict, ServiceUnavailable, Unauthorized
from conveyor.api.routes import API_PREFIX, problems
from conveyor.api.settings import ApiSettings
from conveyor.domain.rest import (
    Credentials,
    EmailVerification,
    PasswordReset,
    RefreshRequest,
    Registration,
    Role,
    TokenPair,
    UserPublic,
    UserStatus,
)

# The app rate-limits this router per address, with a tighter budget than the others.
router = APIRouter(prefix="/auth", tags=["auth"])

# A browser keeps its refresh token here rather than where the page's scripts could read it:
# HttpOnly, sent to these routes only, and never with a request another site starts
# (SameSite=Strict), so a reload stays signed in without the token ever being readable.
REFRESH_COOKIE = "conveyor_refresh"
# Its scope, the same when it is set and when it is deleted: a browser deletes only the
# cookie these name.
REFRESH_COOKIE_SCOPE: dict[str, Any] = {
    "path": f"{API_PREFIX}{router.prefix}",
    "secure": True,
    "httponly": True,
    "samesite": "strict",
}
# The body as sent, or none at all (a browser relying on the cookie).
OptionalRefresh = Annotated[RefreshRequest | None, Body()]


def _lifetimes(settings: ApiSettings) -> users.Lifetimes:
    return users.Lifetimes(
        refresh_token=timedelta(seconds=settings.refresh_token_seconds),
        login=timedelta(seconds=settings.session_max_seconds),
    )


def _pair(
    tokens: AccessTokens,
    user_id: UUID,
    family: UUID,
    refresh_token: str,
    response: Response,
    settings: ApiSettings,
) -> TokenPair:
    """The pair in the body, and its refresh token in the cookie as well."""
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=settings.refresh_token_seconds,
        **REFRESH_COOKIE_SCOPE,
    )
    return TokenPair(
        access_token=tokens.issue(user_id, family),
        refresh_token=refresh_token,
        expires_in=int(tokens.lifetime.total_seconds()),
    )


def _forget_refresh_cookie(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with a Set-Cookie that deletes the refresh cookie."""
    deleting = Response()
    deleting.delete_cookie(REFRESH_COOKIE, **REFRESH_COOKIE_SCOPE)
    return headers | {"set-cookie": deleting.headers["set-cookie"]}


def _refresh_token(body: RefreshRequest | None, request: Request) -> str | None:
    """The refresh token of the body, else of the cookie."""
    if body is not None and body.refresh_token is not None:
        return body.refresh_token
    return request.cookies.get(REFRESH_COOKIE) or None


log = logging.getLogger("conveyor.api")


async def open_account(
    body: Registration,
    role: Role,
    db: Pool,
    settings: ApiSettings,
    passwords: Passwords,
    account_mail: AccountMailSender,
) -> UserPublic:
    """A new account, and the e-mail that asks its owner to verify the address."""
    await passwords.check_strength(body.password, body.email, body.name)
    password_hash = await passwords.hash(body.password)
    user = await users.create_user(
        db,
        body.email,
        body.name,
        password_hash,
        role,
        verify_within=timedelta(seconds=settings.verification_token_seconds),
    )
    account_mail.wake()
    return user


@router.post(
    "/register",
    operation_id="registerUser",
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, 422),
)
async def register(
    body: Registration,
    db: Db,
    settings: Settings,
    passwords: Passwords,
    account_mail: AccountMail,
) -> UserPublic:
    """Open an account with the `user` role. An e-mail with a code to verify the address
    follows (POST /auth/verify)."""
    return await open_account(body, Role.USER, db, settings, passwords, account_mail)


@router.post("/login", operation_id="login", responses=problems(401))
async def login(
    body: Credentials,
    db: Db,
    settings: Settings,
    tokens: Tokens,
    request: Request,
    response: Response,
    passwords: Passwords,
    login_throttle: LoginThrottle,
) -> TokenPair:
    """Trade e-mail and password for an access token and a refresh token.

    After a few failed attempts in a row with one e-mail address, each further attempt must
    wait a delay that doubles each time (429 with `Retry-After`); the right password clears it.
    The login lasts CONVEYOR_SESSION_MAX_SECONDS (30 days by default) at the most, however
    often it is refreshed; GET /users/me/sessions lists it with its user agent and address.
    The refresh token is also set as the `conveyor_refresh` cookie (HttpOnly, SameSite=Strict,
    sent to /api/v1/auth only), which POST /auth/refresh and /auth/logout read when their
    body has none.
    """
    await login_throttle.admit(body.email)
    found = await users.find_login(db, body.email)
    right = await passwords.verify(body.password, found[1] if found else None)
    if found is None or not right:
        raise Unauthorized("the e-mail address or the password is wrong")
    await login_throttle.succeeded(body.email)
    user, password_hash = found
    if user.status is not UserStatus.ACTIVE:
        raise Unauthorized("this account is disabled")
    upgraded_hash = await passwords.upgraded(body.password, password_hash)
    if upgraded_hash is not None:
        await users.upgrade_password_hash(db, user.id, password_hash, upgraded_hash)
    refresh_token = security.new_refresh_token()
    family = await users.start_session(
        db,
        user.id,
        security.token_digest(refresh_token),
        _lifetimes(settings),
        user_agent=request.headers.get("user-agent"),
        client_address=client_address(request),
    )
    return _pair(tokens, user.id, family, refresh_token, response, settings)


@router.post("/refresh", operation_id="refreshTokens", responses=problems(401))
async def refresh(
    request: Request,
    response: Response,
    db: Db,
    settings: Settings,
    tokens: Tokens,
    kept_logins: KeptLogins,
    body: OptionalRefresh = None,
) -> TokenPair:
    """A new token pair; the refresh token sent stops working. Sending it again ends the login.

    The refresh token comes from the body, else from the `conveyor_refresh` cookie, which is
    set to the new one. Refused once the login has ended (signed out, ended from its
    sessions, a password change elsewhere) or has lasted CONVEYOR_SESSION_MAX_SECONDS: then
    sign in again (the refusal deletes the cookie).
    """
    sent = _refresh_token(body, request)
    try:
        if sent is None:
            raise Unauthorized("no refresh token: send it in the body, or sign in again")
        new_token = security.new_refresh_token()
        try:
            user_id, family = await users.rotate_session(
                db,
                security.token_digest(sent),
                security.token_digest(new_token),
                _lifetimes(settings),
            )
        except Unauthorized:
            kept_logins.clear()  # a token sent again has just ended its login
            raise
        caller = await users.find_user(db, user_id)
        if caller is None or caller.status is not UserStatus.ACTIVE:
            raise Unauthorized("this account is disabled")
    except Unauthorized as refused:
        refused.headers = _forget_refresh_cookie(refused.headers)
        raise
    return _pair(tokens, user_id, family, new_token, response, settings)


@router.post("/logout", operation_id="logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    request: Request, db: Db, kept_logins: KeptLogins, body: OptionalRefresh = None
) -> Response:
    """End the login the refresh token belongs to (the body's, else the cookie's); its access
    tokens stop working too (at once on this edge worker, within
    CONVEYOR_SESSION_CACHE_SECONDS on the others). The cookie is deleted; with no refresh
    token at all there is nothing more to end."""
    sent = _refresh_token(body, request)
    if sent is not None:
        await users.end_session(db, security.token_digest(sent))
        kept_logins.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=_forget_refresh_cookie({}))


@router.post(
    "/verify",
    operation_id="verifyEmail",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(422),
)
async def verify_email(body: EmailVerification, db: Db, kept_logins: KeptLogins) -> Response:
    """Confirm the account's e-mail address with the code the verification e-mail carried.

    A code works once, until it expires (CONVEYOR_VERIFICATION_TOKEN_SECONDS, 48 hours by
    default); any other is 422, saying to ask for a new one.
    """
    await account_emails.verify_email(db, body.token)
    kept_logins.clear()  # the account's kept checks say it is unverified
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/verify/resend",
    operation_id="resendVerificationEmail",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses=problems(401, 409),
)
async def resend_verification_email(
    user: CallerWithinEmailBudget, db: Db, settings: Settings, account_mail: AccountMail
) -> Response:
    """E-mail a new verification code to the caller's address; 409 when it is verified."""
    lifetime = timedelta(seconds=settings.verification_token_seconds)
    if not await account_emails.request_verification(db, user.id, lifetime):
        raise Conflict("your e-mail address is verified already")
    account_mail.wake()
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/password-reset",
    operation_id="requestPasswordReset",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
)
async def request_password_reset(
    body: ResetRequest,
    db: Db,
    settings: Settings,
    account_mail: AccountMail,
    background: BackgroundTasks,
) -> Response:
    """E-mail a code that sets a new password (POST /auth/password-reset/confirm) to the
    active account with this address.

    Always 202, whether an account has the address or not, and as quickly: the answer goes
    before the account is looked up, so neither it nor its timing tells who has an account.
    """
    lifetime = timedelta(seconds=settings.password_reset_token_seconds)
    background.add_task(_write_password_reset, db, account_mail, body.email, lifetime)
    return Response(status_code=status.HTTP_202_ACCEPTED)


async def _write_password_reset(
    db: Pool, account_mail: AccountMailSender, email: str, lifetime: timedelta
) -> None:
    try:
        if await account_emails.request_password_reset(db, email, lifetime):
            account_mail.wake()
    except ServiceUnavailable as exc:
        log.warning("a password reset e-mail was not written (asked again, it will be): %s", exc)


@router.post(
    "/password-reset/confirm",
    operation_id="confirmPasswordReset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(422),
)
async def confirm_password_reset(
    body: PasswordReset, db: Db, passwords: Passwords, kept_logins: KeptLogins
) -> Response:
    """Set a new password with the code from a password reset e-mail.

    Every login of the account ends: its refresh tokens at once, its access tokens at once on
    this edge worker and within CONVEYOR_SESSION_CACHE_SECONDS on the others. A code works
    once, until it expires (CONVEYOR_PASSWORD_RESET_TOKEN_SECONDS, 30 minutes by default); a
    weak password is 422 and leaves the code usable.
    """
    holder = await account_emails.reset_holder(db, body.token)
    await passwords.check_strength(body.new_password, holder.email, holder.name)
    password_hash = await passwords.hash(body.new_password)
    await users.reset_password(db, body.token, password_hash)
    kept_logins.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
