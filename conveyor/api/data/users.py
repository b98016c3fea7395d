"""Accounts and profiles (``users``, ``profiles``) and refresh-token sessions (``sessions``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID, uuid4

import asyncpg

from conveyor.api.data import account_emails
from conveyor.api.data.base import Pool, Row, database_errors, decode_cursor, page_of
from conveyor.api.errors import Unauthorized
from conveyor.domain.rest import Profile, Role, SessionPublic, UserPublic, UserStatus

_USER_COLUMNS = """
    u.id, u.email, u.email_verified_at IS NOT NULL AS email_verified, u.name, u.role, u.status,
    u.created_at, u.updated_at, p.bio, p.avatar_url, p.location, p.phone
"""
_DUPLICATE_EMAIL = "an account with this e-mail address already exists"
# A login (session family) is live while its current token is neither revoked nor expired.
_LIVE = "s.revoked_at IS NULL AND s.expires_at > now()"


def user_from_row(row: Row) -> UserPublic:
    return UserPublic(
        id=row["id"],
        email=row["email"],
        email_verified=row["email_verified"],
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
    pool: Pool,
    email: str,
    name: str,
    password_hash: str,
    role: Role = Role.USER,
    *,
    verify_within: timedelta,
) -> UserPublic:
    """A new account, with the e-mail that asks its owner to verify the address (its code
    works for ``verify_within``)."""
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
            await account_emails.issue(
                connection, user_id, account_emails.Purpose.VERIFY_EMAIL, email, name, verify_within
            )
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
    """The token's user, and whether the login it came from is still live (not ended, not
    past its refresh token's expiry, which never outlives the login's longest life)."""
    async with database_errors():
        row = await pool.fetchrow(
            f"""
            SELECT {_USER_COLUMNS}, EXISTS (
                SELECT 1 FROM sessions s
                WHERE s.family_id = $2 AND s.user_id = u.id AND {_LIVE}
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
    """Create the first admin unless an account with that e-mail exists; True when created.

    Its address is verified: it is the operator's, set in the edge's configuration. An admin
    with that address made before addresses were verified is marked so too.
    """
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        user_id = await connection.fetchval(
            """
            INSERT INTO users (id, email, name, password_hash, role, email_verified_at)
            VALUES ($1, $2, $3, $4, 'admin', now())
            ON CONFLICT DO NOTHING RETURNING id
            """,
            uuid4(),
            email,
            name,
            password_hash,
        )
        if user_id is not None:
            await connection.execute("INSERT INTO profiles (user_id) VALUES ($1)", user_id)
        else:
            await connection.execute(
                "UPDATE users SET email_verified_at = now() WHERE lower(email) = lower($1) "
                "AND role = 'admin' AND email_verified_at IS NULL",
                email,
            )
    return user_id is not None


async def find_password_hash(pool: Pool, user_id: UUID) -> str | None:
    async with database_errors():
        password_hash: str | None = await pool.fetchval(
            "SELECT password_hash FROM users WHERE id = $1", user_id
        )
    return password_hash


async def change_password(
    pool: Pool, user_id: UUID, verified_hash: str, new_hash: str, *, keep_family: UUID
) -> bool:
    """Store the new hash and end every other login of the user, at once; False when the
    password changed since ``verified_hash`` was checked (the check no longer holds)."""
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        changed = await connection.fetchval(
            "UPDATE users SET password_hash = $3, updated_at = now() "
            "WHERE id = $1 AND password_hash = $2 RETURNING id",
            user_id,
            verified_hash,
            new_hash,
        )
        if changed is None:
            return False
        # The pool's connection forwards every call to a Connection; the stubs don't say so.
        await revoke_sessions(
            cast(asyncpg.Connection, connection), user_id, keep_family=keep_family
        )
    return True


async def reset_password(pool: Pool, token: str, password_hash: str) -> UUID:
    """Set the password of the reset code's account and end every one of its logins; returns
    the account. The code reached its owner by e-mail, so the address counts as verified."""
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        user_id = await account_emails.use_token(
            connection, token, account_emails.Purpose.RESET_PASSWORD
        )
        await connection.execute(
            "UPDATE users SET password_hash = $2, "
            "email_verified_at = coalesce(email_verified_at, now()), updated_at = now() "
            "WHERE id = $1",
            user_id,
            password_hash,
        )
        await account_emails.forget(connection, user_id, account_emails.Purpose.RESET_PASSWORD)
        # A pooled connection is a connection; the stubs tell them apart.
        await revoke_sessions(cast(asyncpg.Connection, connection), user_id)
    return user_id


# -- sessions ----------------------------------------------------------------------------
#
# A login is a session family: one row per refresh token, rotated on refresh. Its one
# unrevoked, unexpired row is the live token; it carries the login's details (when it
# started, from which user agent and address) and its ``created_at`` is when the login was
# last refreshed.

# User agents may be long; this much tells one browser or app from another.
USER_AGENT_KEPT_CHARACTERS = 512


@dataclass(frozen=True)
class Lifetimes:
    """How long a refresh token lasts, and how long a login lasts however often refreshed."""

    refresh_token: timedelta
    login: timedelta


async def start_session(
    pool: Pool,
    user_id: UUID,
    token_digest: str,
    lifetimes: Lifetimes,
    *,
    user_agent: str | None = None,
    client_address: str | None = None,
) -> UUID:
    """A new login: a session family of one token; returns the family id."""
    family_id = uuid4()
    now = datetime.now(UTC)
    async with database_errors():
        await pool.execute(
            """
            INSERT INTO sessions (id, user_id, family_id, token_hash, expires_at,
                                  login_started_at, user_agent, client_address)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            uuid4(),
            user_id,
            family_id,
            token_digest,
            now + min(lifetimes.refresh_token, lifetimes.login),
            now,
            user_agent[:USER_AGENT_KEPT_CHARACTERS] if user_agent else None,
            client_address,
        )
    return family_id


async def rotate_session(
    pool: Pool, old_digest: str, new_digest: str, lifetimes: Lifetimes
) -> tuple[UUID, UUID]:
    """Replace a refresh token by a new one; returns (user id, family id).

    A token that was already rotated, presented again, means someone else holds a copy: the
    whole family is revoked, so the thief's tokens die with the owner's. The new token never
    outlives its login (``lifetimes.login`` after the sign-in).
    """
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        # FOR UPDATE: two concurrent refreshes with one token cannot both succeed.
        session = await connection.fetchrow(
            "SELECT id, user_id, family_id, expires_at, revoked_at, replaced_by, "
            "login_started_at FROM sessions WHERE token_hash = $1 FOR UPDATE",
            old_digest,
        )
        if session is None:
            raise Unauthorized("the refresh token is not valid")
        now = datetime.now(UTC)
        login_ends = session["login_started_at"] + lifetimes.login
        if session["revoked_at"] is not None:
            await connection.execute(
                "UPDATE sessions SET revoked_at = coalesce(revoked_at, now()) WHERE family_id = $1",
                session["family_id"],
            )
            refused = Unauthorized(
                "this login has ended; sign in again"
                if session["replaced_by"] is None
                else "the refresh token was already used; sign in again"
            )
        elif login_ends <= now:
            refused = Unauthorized("this login has lasted as long as a login may; sign in again")
        elif session["expires_at"] <= now:
            refused = Unauthorized("the refresh token has expired; sign in again")
        else:
            refused = None
            new_id = uuid4()
            await connection.execute(
                """
                INSERT INTO sessions (id, user_id, family_id, token_hash, expires_at,
                                      login_started_at, user_agent, client_address)
                SELECT $1, user_id, family_id, $2, $3, login_started_at, user_agent,
                       client_address
                FROM sessions WHERE id = $4
                """,
                new_id,
                new_digest,
                min(now + lifetimes.refresh_token, login_ends),
                session["id"],
            )
            await connection.execute(
                "UPDATE sessions SET revoked_at = now(), replaced_by = $2 WHERE id = $1",
                session["id"],
                new_id,
            )
    if refused is not None:
        # Raised after the transaction commits, so the family's revocation sticks.
        raise refused
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


async def list_sessions(
    pool: Pool, user_id: UUID, current_family: UUID, limit: int, cursor: str | None
) -> tuple[list[SessionPublic], str | None]:
    """The user's live logins, the most recently started first."""
    after = decode_cursor(cursor) if cursor else None
    async with database_errors():
        rows = await pool.fetch(
            f"""
            SELECT s.family_id AS id, s.login_started_at AS created_at,
                   s.created_at AS last_used_at, s.user_agent, s.client_address
            FROM sessions s
            WHERE s.user_id = $1 AND {_LIVE}
              AND ($2::timestamptz IS NULL OR (s.login_started_at, s.family_id) < ($2, $3))
            ORDER BY s.login_started_at DESC, s.family_id DESC LIMIT $4
            """,
            user_id,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    kept, next_cursor = page_of(rows, limit)
    return [
        SessionPublic(**dict(row), current=row["id"] == current_family) for row in kept
    ], next_cursor


async def _end_live_logins(
    db: asyncpg.Pool | asyncpg.Connection, which: str, *arguments: object
) -> int:
    """End every live login of the sessions ``which`` selects; how many ended.

    A live login has exactly one live token, so revoking the tokens counts the logins.
    """
    async with database_errors():
        ended: int = await db.fetchval(
            f"""
            WITH ended AS (
                UPDATE sessions s SET revoked_at = now() WHERE {_LIVE} AND {which} RETURNING 1
            )
            SELECT count(*) FROM ended
            """,
            *arguments,
        )
    return ended


async def end_login(pool: Pool, user_id: UUID, family_id: UUID) -> bool:
    """End one of the user's live logins; False when it is not theirs or not live."""
    return (
        await _end_live_logins(pool, "s.user_id = $1 AND s.family_id = $2", user_id, family_id) > 0
    )


async def revoke_sessions(
    db: asyncpg.Pool | asyncpg.Connection, user_id: UUID, *, keep_family: UUID | None = None
) -> int:
    """End every live login of the user but ``keep_family``'s; how many ended.

    Their refresh tokens are refused at once; their access tokens once the edge workers'
    kept login checks lapse (the caller clears its own worker's, ``KeptLogins``).
    """
    return await _end_live_logins(
        db, "s.user_id = $1 AND s.family_id IS DISTINCT FROM $2", user_id, keep_family
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
