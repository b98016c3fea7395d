"""Accounts and profiles (``users``, ``profiles``) and refresh-token sessions (``sessions``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from conveyor.api.data.base import Pool, Row, database_errors, decode_cursor, page_of
from conveyor.api.errors import Unauthorized
from conveyor.domain.rest import Profile, Role, UserPublic, UserStatus

_USER_COLUMNS = """
    u.id, u.email, u.name, u.role, u.status, u.created_at, u.updated_at,
    p.bio, p.avatar_url, p.location, p.phone
"""
_DUPLICATE_EMAIL = "an account with this e-mail address already exists"


def user_from_row(row: Row) -> UserPublic:
    return UserPublic(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        role=Role(row["role"]),
        status=UserStatus(row["status"]),
        profile=Profile(
            bio=row["bio"],
            avatar_url=row["avatar_url"],
            location=row["location"],
            phone=row["phone"],
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create_user(
    pool: Pool, email: str, name: str, password_hash: str, role: Role = Role.USER
) -> UserPublic:
    async with database_errors(_DUPLICATE_EMAIL), pool.acquire() as connection:
        async with connection.transaction():
            user_id = uuid4()
            await connection.execute(
                "INSERT INTO users (id, email, name, password_hash, role) "
                "VALUES ($1, $2, $3, $4, $5)",
                user_id,
                email,
                name,
                password_hash,
                role.value,
            )
            await connection.execute("INSERT INTO profiles (user_id) VALUES ($1)", user_id)
        row = await connection.fetchrow(_select_user("u.id = $1"), user_id)
    assert row is not None
    return user_from_row(row)


def _select_user(where: str) -> str:
    return (
        f"SELECT {_USER_COLUMNS} FROM users u "
        f"LEFT JOIN profiles p ON p.user_id = u.id WHERE {where}"
    )


async def find_user(pool: Pool, user_id: UUID) -> UserPublic | None:
    async with database_errors():
        row = await pool.fetchrow(_select_user("u.id = $1"), user_id)
    return None if row is None else user_from_row(row)


@dataclass(frozen=True)
class Authenticated:
    user: UserPublic
    session_live: bool


async def find_caller(pool: Pool, user_id: UUID, session_family: UUID) -> Authenticated | None:
    """The token's user, and whether the login it came from is still live (not logged out)."""
    async with database_errors():
        row = await pool.fetchrow(
            f"""
            SELECT {_USER_COLUMNS}, EXISTS (
                SELECT 1 FROM sessions s
                WHERE s.family_id = $2 AND s.user_id = u.id AND s.revoked_at IS NULL
            ) AS session_live
            FROM users u LEFT JOIN profiles p ON p.user_id = u.id WHERE u.id = $1
            """,
            user_id,
            session_family,
        )
    if row is None:
        return None
    return Authenticated(user_from_row(row), row["session_live"])


async def find_login(pool: Pool, email: str) -> tuple[UserPublic, str] | None:
    """The account with this e-mail (in any case) and its password hash."""
    async with database_errors():
        row = await pool.fetchrow(
            f"SELECT {_USER_COLUMNS}, u.password_hash FROM users u "
            "LEFT JOIN profiles p ON p.user_id = u.id WHERE lower(u.email) = lower($1)",
            email,
        )
    return None if row is None else (user_from_row(row), row["password_hash"])


async def upgrade_password_hash(pool: Pool, user_id: UUID, old_hash: str, new_hash: str) -> None:
    """Store ``new_hash``, the same password with the current hashing costs, unless the
    password changed since ``old_hash`` was read. Not a change of the account's own:
    ``updated_at`` stays."""
    async with database_errors():
        await pool.execute(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
            user_id,
            old_hash,
            new_hash,
        )


async def list_users(
    pool: Pool, limit: int, cursor: str | None
) -> tuple[list[UserPublic], str | None]:
    after = decode_cursor(cursor) if cursor else None
    async with database_errors():
        rows = await pool.fetch(
            _select_user("($1::timestamptz IS NULL OR (u.created_at, u.id) < ($1, $2))")
            + " ORDER BY u.created_at DESC, u.id DESC LIMIT $3",
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    kept, next_cursor = page_of(rows, limit)
    return [user_from_row(row) for row in kept], next_cursor


async def update_user(
    pool: Pool,
    user_id: UUID,
    *,
    name: str | None = None,
    role: Role | None = None,
    status: UserStatus | None = None,
    profile: dict[str, str | None] | None = None,
) -> UserPublic | None:
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        updated = await connection.fetchval(
            """
            UPDATE users SET name = coalesce($2, name), role = coalesce($3, role),
                             status = coalesce($4, status), updated_at = now()
            WHERE id = $1 RETURNING id
            """,
            user_id,
            name,
            role.value if role else None,
            status.value if status else None,
        )
        if updated is None:
            return None
        if profile:
            # Only the fields the client sent change; a field sent as null is cleared.
            columns = [
                column for column in ("bio", "avatar_url", "location", "phone") if column in profile
            ]
            await connection.execute(
                f"""
                INSERT INTO profiles (user_id, {", ".join(columns)})
                VALUES ($1, {", ".join(f"${index + 2}" for index in range(len(columns)))})
                ON CONFLICT (user_id) DO UPDATE SET
                    {", ".join(f"{column} = EXCLUDED.{column}" for column in columns)},
                    updated_at = now()
                """,
                user_id,
                *(profile[column] for column in columns),
            )
        row = await connection.fetchrow(_select_user("u.id = $1"), user_id)
    return None if row is None else user_from_row(row)


async def delete_user(pool: Pool, user_id: UUID) -> bool:
    async with database_errors():
        deleted = await pool.fetchval("DELETE FROM users WHERE id = $1 RETURNING id", user_id)
    return deleted is not None


async def ensure_admin(pool: Pool, email: str, name: str, password_hash: str) -> bool:
    """Create the first admin unless an account with that e-mail exists; True when created."""
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        user_id = await connection.fetchval(
            """
            INSERT INTO users (id, email, name, password_hash, role)
            VALUES ($1, $2, $3, $4, 'admin')
            ON CONFLICT DO NOTHING RETURNING id
            """,
            uuid4(),
            email,
            name,
            password_hash,
        )
        if user_id is not None:
            await connection.execute("INSERT INTO profiles (user_id) VALUES ($1)", user_id)
    return user_id is not None


# -- sessions ----------------------------------------------------------------------------


async def start_session(pool: Pool, user_id: UUID, token_digest: str, lifetime: timedelta) -> UUID:
    """A new login: a session family of one token; returns the family id."""
    family_id = uuid4()
    async with database_errors():
        await pool.execute(
            "INSERT INTO sessions (id, user_id, family_id, token_hash, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            uuid4(),
            user_id,
            family_id,
            token_digest,
            datetime.now(UTC) + lifetime,
        )
    return family_id


async def rotate_session(
    pool: Pool, old_digest: str, new_digest: str, lifetime: timedelta
) -> tuple[UUID, UUID]:
    """Replace a refresh token by a new one; returns (user id, family id).

    A token that was already rotated or revoked, presented again, means someone else holds
    a copy: the whole family is revoked, so the thief's tokens die with the owner's.
    """
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        # FOR UPDATE: two concurrent refreshes with one token cannot both succeed.
        session = await connection.fetchrow(
            "SELECT id, user_id, family_id, expires_at, revoked_at FROM sessions "
            "WHERE token_hash = $1 FOR UPDATE",
            old_digest,
        )
        if session is None:
            raise Unauthorized("the refresh token is not valid")
        if session["revoked_at"] is not None:
            await connection.execute(
                "UPDATE sessions SET revoked_at = coalesce(revoked_at, now()) WHERE family_id = $1",
                session["family_id"],
            )
            replay = Unauthorized("the refresh token was already used; sign in again")
        elif session["expires_at"] <= datetime.now(UTC):
            replay = Unauthorized("the refresh token has expired; sign in again")
        else:
            replay = None
            new_id = uuid4()
            await connection.execute(
                "INSERT INTO sessions (id, user_id, family_id, token_hash, expires_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                new_id,
                session["user_id"],
                session["family_id"],
                new_digest,
                datetime.now(UTC) + lifetime,
            )
            await connection.execute(
                "UPDATE sessions SET revoked_at = now(), replaced_by = $2 WHERE id = $1",
                session["id"],
                new_id,
            )
    if replay is not None:
        # Raised after the transaction commits, so the family's revocation sticks.
        raise replay
    return session["user_id"], session["family_id"]


async def end_session(pool: Pool, token_digest: str) -> None:
    """Log out: revoke every token of the login this refresh token belongs to."""
    async with database_errors():
        await pool.execute(
            """
            UPDATE sessions SET revoked_at = coalesce(revoked_at, now())
            WHERE family_id = (SELECT family_id FROM sessions WHERE token_hash = $1)
            """,
            token_digest,
        )


async def delete_expired_sessions(pool: Pool, expired_before: datetime, batch: int) -> int:
    """Delete up to ``batch`` sessions whose refresh token expired before ``expired_before``.

    Small batches keep each transaction's locks short; the caller repeats until it gets
    fewer than ``batch``. A token of a deleted session is refused as unknown, as it was
    refused as expired before.
    """
    async with database_errors():
        deleted = await pool.execute(
            """
            DELETE FROM sessions WHERE id IN (
                SELECT id FROM sessions WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED
            )
            """,
            expired_before,
            batch,
        )
    return int(deleted.split()[-1])
