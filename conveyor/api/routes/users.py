"""``/users``: the caller's own account and notifications, and account management for admins."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response, status

from conveyor.api.data import notifications, users
from conveyor.api.deps import (
    AdminUser,
    CurrentUser,
    CurrentUserAnew,
    Cursor,
    Db,
    KeptLogins,
    Limit,
    Passwords,
)
from conveyor.api.errors import Conflict, NotFound
from conveyor.api.routes import problems
from conveyor.domain.rest import (
    NotificationPublic,
    Page,
    SelfUpdate,
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
    "",
    operation_id="createUser",
    status_code=status.HTTP_201_CREATED,
    responses=problems(403, 409, 422),
)
async def create_user(body: UserCreate, _: AdminUser, db: Db, passwords: Passwords) -> UserPublic:
    """Open an account with any role (admins only)."""
    await passwords.check_strength(body.password, body.email, body.name)
    password_hash = await passwords.hash(body.password)
    return await users.create_user(db, body.email, body.name, password_hash, body.role)


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
