"""``/users``: the caller's own account, password, logins and notifications, and account
management for admins."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status

from conveyor.api.data import notifications, users
from conveyor.api.deps import (
    AccountMail,
    AdminUser,
    CurrentLogin,
    CurrentUser,
    CurrentUserAnew,
    Cursor,
    Db,
    KeptLogins,
    Limit,
    Passwords,
    Settings,
    limit_password_attempts,
)
from conveyor.api.errors import Conflict, Forbidden, NotFound, Unprocessable
from conveyor.api.routes import problems
from conveyor.api.routes.auth import open_account
from conveyor.domain.rest import (
    NotificationPublic,
    Page,
    PasswordChange,
    SelfUpdate,
    SessionPublic,
    UserAdminUpdate,
    UserCreate,
    UserPublic,
)

router = APIRouter(prefix="/users", tags=["users"], responses=problems(401))


@router.get("/me", operation_id="getMe")
async def get_me(user: CurrentUserAnew) -> UserPublic:
    """The caller's account and profile."""
    # Read anew, not from the worker's kept login checks: the account page shows a change
    # at once.
    return user


@router.patch("/me", operation_id="updateMe", responses=problems(422))
async def update_me(body: SelfUpdate, user: CurrentUser, db: Db) -> UserPublic:
    """Change your name and profile. Role and status are not yours: sending them is 422."""
    profile: dict[str, Any] | None = (
        body.profile.model_dump(exclude_unset=True) if body.profile is not None else None
    )
    updated = await users.update_user(db, user.id, name=body.name, profile=profile)
    if updated is None:
        raise NotFound("your account no longer exists")
    return updated


@router.get("/me/notifications", operation_id="listMyNotifications")
async def list_my_notifications(
    user: CurrentUser, db: Db, limit: Limit = 20, cursor: Cursor = None
) -> Page[NotificationPublic]:
    """The e-mails Conveyor sent you, newest first."""
    items, next_cursor = await notifications.list_notifications(db, user.id, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/me/password",
    operation_id="changeMyPassword",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(422, described={403: "The current password is wrong."}),
    dependencies=[Depends(limit_password_attempts)],
)
async def change_my_password(
    body: PasswordChange,
    login: CurrentLogin,
    db: Db,
    passwords: Passwords,
    kept_logins: KeptLogins,
) -> Response:
    """Change your password, proving the current one; every other login of yours ends.

    The login that asks stays signed in. A wrong current password is 403, not 401: the
    token is fine, so a client must not take it for an expired one and sign out. Attempts
    are limited per account (CONVEYOR_RATE_LIMIT_ACCOUNT_PER_MINUTE) and per address
    (CONVEYOR_RATE_LIMIT_AUTH_PER_MINUTE, with the `/auth` routes).
    """
    user = login.user
    current_hash = await users.find_password_hash(db, user.id)
    if current_hash is None or not await passwords.verify(body.current_password, current_hash):
        raise Forbidden("the current password is wrong")
    if body.new_password == body.current_password:
        raise Unprocessable("the new password must differ from the current one")
    await passwords.check_strength(body.new_password, user.email, user.name)
    new_hash = await passwords.hash(body.new_password)
    if not await users.change_password(
        db, user.id, current_hash, new_hash, keep_family=login.family
    ):
        # Changed by another request since it was checked: what was sent is no longer it.
        raise Forbidden("the current password is wrong")
    kept_logins.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/sessions", operation_id="listMySessions", responses=problems(422))
async def list_my_sessions(
    login: CurrentLogin, db: Db, limit: Limit = 20, cursor: Cursor = None
) -> Page[SessionPublic]:
    """Your live logins, the most recently signed in first; `current` marks the one asking."""
    items, next_cursor = await users.list_sessions(db, login.user.id, login.family, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.delete(
    "/me/sessions/{session_id:uuid}",
    operation_id="endMySession",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(404),
)
async def end_my_session(
    session_id: UUID, user: CurrentUser, db: Db, kept_logins: KeptLogins
) -> Response:
    """End one of your logins (the current one too: that is signing out).

    Its refresh token is refused at once; its access tokens at once on this edge worker and
    within CONVEYOR_SESSION_CACHE_SECONDS on the others.
    """
    if not await users.end_login(db, user.id, session_id):
        raise NotFound(f"no live login {session_id} of yours")
    kept_logins.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/me/sessions", operation_id="endMySessions", status_code=status.HTTP_204_NO_CONTENT)
async def end_my_sessions(user: CurrentUser, db: Db, kept_logins: KeptLogins) -> Response:
    """Sign out everywhere: end every one of your logins, the one asking included."""
    await users.revoke_sessions(db, user.id)
    kept_logins.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "",
    operation_id="createUser",
    status_code=status.HTTP_201_CREATED,
    responses=problems(403, 409, 422),
)
async def create_user(
    body: UserCreate,
    _: AdminUser,
    db: Db,
    settings: Settings,
    passwords: Passwords,
    account_mail: AccountMail,
) -> UserPublic:
    """Open an account with any role (admins only). An e-mail with a code to verify the
    address follows (POST /auth/verify)."""
    return await open_account(body, body.role, db, settings, passwords, account_mail)


@router.get("", operation_id="listUsers", responses=problems(403, 422))
async def list_users(
    _: AdminUser, db: Db, limit: Limit = 20, cursor: Cursor = None
) -> Page[UserPublic]:
    """Every account, newest first (admins only)."""
    items, next_cursor = await users.list_users(db, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{user_id:uuid}", operation_id="getUser", responses=problems(403, 404))
async def get_user(user_id: UUID, _: AdminUser, db: Db) -> UserPublic:
    """One account (admins only)."""
    found = await users.find_user(db, user_id)
    if found is None:
        raise NotFound(f"no user {user_id}")
    return found


@router.patch("/{user_id:uuid}", operation_id="updateUser", responses=problems(403, 404, 409, 422))
async def update_user(
    user_id: UUID, body: UserAdminUpdate, admin: AdminUser, db: Db, kept_logins: KeptLogins
) -> UserPublic:
    """Change an account's name, role or status; a disabled account's tokens stop working."""
    if user_id == admin.id and (
        body.role not in (None, admin.role) or body.status not in (None, admin.status)
    ):
        raise Conflict("admins cannot demote or disable themselves; ask another admin")
    updated = await users.update_user(
        db, user_id, name=body.name, role=body.role, status=body.status
    )
    kept_logins.clear()
    if updated is None:
        raise NotFound(f"no user {user_id}")
    return updated


@router.delete(
    "/{user_id:uuid}/sessions",
    operation_id="endUserSessions",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404),
)
async def end_user_sessions(
    user_id: UUID, _: AdminUser, db: Db, kept_logins: KeptLogins
) -> Response:
    """End every login of an account (admins only), as its owner's "sign out everywhere"
    does; the account stays usable with its password."""
    if await users.find_user(db, user_id) is None:
        raise NotFound(f"no user {user_id}")
    await users.revoke_sessions(db, user_id)
    kept_logins.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{user_id:uuid}",
    operation_id="deleteUser",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404, 409),
)
async def delete_user(user_id: UUID, admin: AdminUser, db: Db, kept_logins: KeptLogins) -> Response:
    """Delete an account and its profile and logins; its orders stay for the books."""
    if user_id == admin.id:
        raise Conflict("admins cannot delete themselves; ask another admin")
    deleted = await users.delete_user(db, user_id)
    kept_logins.clear()
    if not deleted:
        raise NotFound(f"no user {user_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
