"""The edge's dependencies as ``Annotated`` aliases: what a route needs, it names.

Every dependency is ``async def``: FastAPI runs plain functions in a thread pool, and a
thread hop per dependency per request costs more than the work they do.

Nothing here is swapped or patched: the tests run the edge as a process against the real
services, and the edge benchmark's baseline replaces only the Kafka sender, through
``create_app(sender=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.api import passwords, ratelimit, security, throttle
from conveyor.api.access_tokens import AccessClaims, AccessTokens
from conveyor.api.account_mail import AccountMailSender
from conveyor.api.caching import CatalogCache, Expiring
from conveyor.api.commands import Sends
from conveyor.api.data import orders, users
from conveyor.api.errors import Forbidden, Unauthorized
from conveyor.api.middleware import InFlight
from conveyor.api.settings import ApiSettings
from conveyor.api.waiting import OrderStatusWatcher, WaitsPerUser
from conveyor.domain.rest import PasswordResetRequest, Role, UserPublic, UserStatus
from conveyor.infra.settings import ServiceUrls


@dataclass
class Resources:
    """What the edge holds open for its whole life, created in the app's lifespan."""

    urls: ServiceUrls
    pool: asyncpg.Pool
    cache: aioredis.Redis
    sender: Sends
    watcher: OrderStatusWatcher
    catalog: CatalogCache
    # Whether a login (its session family) is live, with its account, for a few seconds.
    sessions: Expiring[UUID, users.Authenticated]
    limiter: ratelimit.RateLimiter
    announced: orders.AnnouncedMarks
    waits: WaitsPerUser
    account_mail: AccountMailSender
    passwords: passwords.Passwords
    login_throttle: throttle.LoginThrottle


async def resources(request: Request) -> Resources:
    held: Resources = request.app.state.resources
    return held


async def current_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def _in_flight(request: Request) -> InFlight:
    counted: InFlight = request.app.state.in_flight
    return counted


async def _access_tokens(request: Request) -> AccessTokens:
    tokens: AccessTokens = request.app.state.access_tokens
    return tokens


Settings = Annotated[ApiSettings, Depends(current_settings)]
Tokens = Annotated[AccessTokens, Depends(_access_tokens)]
InFlightRequests = Annotated[InFlight, Depends(_in_flight)]
Held = Annotated[Resources, Depends(resources)]


async def _pool(held: Held) -> asyncpg.Pool:
    return held.pool


async def _cache(held: Held) -> aioredis.Redis:
    return held.cache


async def command_sender(held: Held) -> Sends:
    return held.sender


async def _watcher(held: Held) -> OrderStatusWatcher:
    return held.watcher


async def _catalog(held: Held) -> CatalogCache:
    return held.catalog


async def _announced(held: Held) -> orders.AnnouncedMarks:
    return held.announced


async def _waits(held: Held) -> WaitsPerUser:
    return held.waits


async def _account_mail(held: Held) -> AccountMailSender:
    return held.account_mail


async def _passwords(held: Held) -> passwords.Passwords:
    return held.passwords


async def _login_throttle(held: Held) -> throttle.LoginThrottle:
    return held.login_throttle


Db = Annotated[asyncpg.Pool, Depends(_pool)]
Cache = Annotated[aioredis.Redis, Depends(_cache)]
Sender = Annotated[Sends, Depends(command_sender)]
Watcher = Annotated[OrderStatusWatcher, Depends(_watcher)]
Catalog = Annotated[CatalogCache, Depends(_catalog)]
Announced = Annotated[orders.AnnouncedMarks, Depends(_announced)]
Waits = Annotated[WaitsPerUser, Depends(_waits)]
# Woken when a route wrote an account e-mail, so it leaves at once.
AccountMail = Annotated[AccountMailSender, Depends(_account_mail)]
Passwords = Annotated[passwords.Passwords, Depends(_passwords)]
LoginThrottle = Annotated[throttle.LoginThrottle, Depends(_login_throttle)]

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /auth/login.")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def limit_requests(request: Request, settings: Settings, tokens: Tokens, held: Held) -> None:
    """Per client address, and per user when the request carries a valid token.

    The header is read directly, not through the bearer scheme, so that public routes (the
    catalog) are not documented as needing a token.
    """
    budgets = [
        ratelimit.Budget("address", client_address(request), settings.rate_limit_address_per_minute)
    ]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            claims = tokens.read(token.strip())
        except Unauthorized:
            pass  # current_user answers 401; the address budget still counts the attempt.
        else:
            budgets.append(
                ratelimit.Budget("user", str(claims.user_id), settings.rate_limit_user_per_minute)
            )
    await held.limiter.spend(*budgets)


async def limit_auth_attempts(request: Request, settings: Settings, held: Held) -> None:
    """Per client address; the auth budget holds even while Redis is away (it fails closed),
    since these routes are where passwords are guessed."""
    address = client_address(request)
    await held.limiter.spend(
        ratelimit.Budget("address", address, settings.rate_limit_address_per_minute),
        ratelimit.Budget("auth", address, settings.rate_limit_auth_per_minute, fails_closed=True),
    )


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True)
class Login:
    """The caller and the login (session family) its access token belongs to."""

    user: UserPublic
    family: UUID


async def current_login(tokens: Tokens, held: Held, credentials: Bearer) -> Login:
    """The caller, from a valid access token of a live login of an active account.

    The login's check is kept for CONVEYOR_SESSION_CACHE_SECONDS: the routes that end a
    login or change an account clear what this worker kept (``KeptLogins``).
    """
    claims = _access_claims(tokens, credentials)
    user = _admitted(
        await held.sessions.fetch(
            claims.session_family,
            lambda: users.find_caller(held.pool, claims.user_id, claims.session_family),
        )
    )
    return Login(user, claims.session_family)


async def current_user(tokens: Tokens, held: Held, credentials: Bearer) -> UserPublic:
    """The caller as ``current_login`` finds it, for the routes that need no more."""
    return (await current_login(tokens, held, credentials)).user


async def current_user_anew(tokens: Tokens, held: Held, credentials: Bearer) -> UserPublic:
    """The caller as ``current_user`` finds it, read anew rather than kept: for the account's
    own page, which must show a change at once, in one query."""
    claims = _access_claims(tokens, credentials)
    return _admitted(await users.find_caller(held.pool, claims.user_id, claims.session_family))


def _access_claims(
    tokens: AccessTokens, credentials: HTTPAuthorizationCredentials | None
) -> AccessClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    return tokens.read(credentials.credentials)


def _admitted(caller: users.Authenticated | None) -> UserPublic:
    if caller is None or not caller.session_live:
        raise Unauthorized("this login has ended; sign in again")
    if caller.user.status is not UserStatus.ACTIVE:
        raise Unauthorized("this account is disabled")
    return caller.user


CurrentUser = Annotated[UserPublic, Depends(current_user)]
CurrentLogin = Annotated[Login, Depends(current_login)]
CurrentUserAnew = Annotated[UserPublic, Depends(current_user_anew)]


async def limit_password_attempts(
    request: Request, settings: Settings, held: Held, login: CurrentLogin
) -> None:
    """For a signed-in route that checks the account's password: per account, whichever
    address guesses, and per address with the ``/auth`` routes, where passwords are guessed
    too."""
    await held.limiter.spend(
        ratelimit.Budget("account", str(login.user.id), settings.rate_limit_account_per_minute),
        ratelimit.Budget(
            "auth", client_address(request), settings.rate_limit_auth_per_minute, fails_closed=True
        ),
    )


async def _spend_account_emails(held: Resources, settings: ApiSettings, email: str) -> None:
    # Counted per address whoever asks (hashed: the limiter's keys in Redis name no address),
    # so no one can fill someone else's inbox. The /auth routes' budget per client address
    # counts the request too.
    address = security.address_digest(email)
    await held.limiter.spend(
        ratelimit.Budget("account_email", address, settings.rate_limit_account_emails_per_minute)
    )


async def _reset_request_within_budget(
    body: PasswordResetRequest, settings: Settings, held: Held
) -> PasswordResetRequest:
    await _spend_account_emails(held, settings, body.email)
    return body


async def _caller_within_email_budget(
    user: CurrentUser, settings: Settings, held: Held
) -> UserPublic:
    await _spend_account_emails(held, settings, user.email)
    return user


# A password reset request, or the caller, once counted against the address's budget of
# account e-mails (CONVEYOR_RATE_LIMIT_ACCOUNT_EMAILS_PER_MINUTE).
ResetRequest = Annotated[PasswordResetRequest, Depends(_reset_request_within_budget)]
CallerWithinEmailBudget = Annotated[UserPublic, Depends(_caller_within_email_budget)]


async def _logins(held: Held) -> Expiring[UUID, users.Authenticated]:
    return held.sessions


# For the routes that end logins or change accounts: after the change they clear what this
# worker kept, so it checks every login anew (the other workers within
# CONVEYOR_SESSION_CACHE_SECONDS). Such changes are rare, so all of the worker's checks go
# rather than an index of logins per account being kept.
KeptLogins = Annotated[Expiring[UUID, users.Authenticated], Depends(_logins)]


async def admin_user(user: CurrentUser) -> UserPublic:
    if user.role is not Role.ADMIN:
        raise Forbidden("this needs the admin role")
    return user


AdminUser = Annotated[UserPublic, Depends(admin_user)]

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The next_cursor of the previous page.",
    ),
]
