"""Account e-mails: the single-use codes they carry (``account_tokens``) and the outbox they
wait in for the mail server (``account_emails``).

A code and its e-mail are written in one transaction. Only the code's SHA-256 is kept to check
it against; the outbox row holds the code itself until the mail server accepted the e-mail,
then it is deleted. A code is deleted when used, so it works once.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NoReturn
from uuid import UUID, uuid4

from conveyor.api.data.base import Connection, Pool, database_errors
from conveyor.api.errors import Unprocessable
from conveyor.api.security import token_digest


class Purpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"


_ASK_AGAIN = {
    Purpose.VERIFY_EMAIL: "ask for a new one with POST /api/v1/auth/verify/resend",
    Purpose.RESET_PASSWORD: "ask for a new one with POST /api/v1/auth/password-reset",
}


@dataclass(frozen=True)
class PendingEmail:
    """An account e-mail a sender has claimed, with what it must say."""

    id: UUID
    purpose: Purpose
    recipient: str
    name: str
    token: str
    expires_at: datetime
    attempts: int


async def issue(
    connection: Connection,
    user_id: UUID,
    purpose: Purpose,
    recipient: str,
    name: str,
    lifetime: timedelta,
) -> None:
    """A new code for ``purpose`` and the e-mail that carries it, in the caller's transaction."""
    token = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + lifetime
    await connection.execute(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at) "
        "VALUES ($1, $2, $3, $4)",
        token_digest(token),
        user_id,
        purpose.value,
        expires_at,
    )
    await connection.execute(
        "INSERT INTO account_emails (id, user_id, purpose, recipient, name, token, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        uuid4(),
        user_id,
        purpose.value,
        recipient,
        name,
        token,
        expires_at,
    )


async def request_verification(pool: Pool, user_id: UUID, lifetime: timedelta) -> bool:
    """A new verification e-mail for the account; False when its address is verified already."""
    return await _issue_to_account(
        pool, Purpose.VERIFY_EMAIL, lifetime, "id = $1 AND email_verified_at IS NULL", user_id
    )


async def request_password_reset(pool: Pool, email: str, lifetime: timedelta) -> bool:
    """A password reset e-mail to the active account with this address; False when none has."""
    return await _issue_to_account(
        pool,
        Purpose.RESET_PASSWORD,
        lifetime,
        "lower(email) = lower($1) AND status = 'active'",
        email,
    )


async def _issue_to_account(
    pool: Pool, purpose: Purpose, lifetime: timedelta, condition: str, value: object
) -> bool:
    """A new code for ``purpose`` e-mailed to the account ``condition`` picks (``value`` is its
    $1); False when it picks none."""
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        account = await connection.fetchrow(
            f"SELECT id, email, name FROM users WHERE {condition}", value
        )
        if account is None:
            return False
        await issue(connection, account["id"], purpose, account["email"], account["name"], lifetime)
    return True


async def use_token(connection: Connection, token: str, purpose: Purpose) -> UUID:
    """Delete a live code, so it works once; returns its account. Unprocessable otherwise."""
    user_id: UUID | None = await connection.fetchval(
        "DELETE FROM account_tokens "
        "WHERE token_hash = $1 AND purpose = $2 AND expires_at > now() RETURNING user_id",
        token_digest(token),
        purpose.value,
    )
    if user_id is None:
        await _refuse(connection, token, purpose)
    return user_id


async def _refuse(db: Pool | Connection, token: str, purpose: Purpose) -> NoReturn:
    """Unprocessable for a code that is not live, saying whether it expired."""
    expired = await db.fetchval(
        "SELECT 1 FROM account_tokens WHERE token_hash = $1 AND purpose = $2",
        token_digest(token),
        purpose.value,
    )
    if expired:
        raise Unprocessable(f"this code has expired; {_ASK_AGAIN[purpose]}")
    raise Unprocessable(f"this code is unknown or already used; {_ASK_AGAIN[purpose]}")


async def verify_email(pool: Pool, token: str) -> None:
    """Mark the address of the code's account verified; its other verification codes and
    e-mails still waiting are of no use any more and go."""
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        user_id = await use_token(connection, token, Purpose.VERIFY_EMAIL)
        await connection.execute(
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), "
            "updated_at = now() WHERE id = $1",
            user_id,
        )
        await forget(connection, user_id, Purpose.VERIFY_EMAIL)


@dataclass(frozen=True)
class ResetHolder:
    email: str
    name: str


async def reset_holder(pool: Pool, token: str) -> ResetHolder:
    """The account a live password reset code belongs to; Unprocessable when none."""
    async with database_errors():
        row = await pool.fetchrow(
            "SELECT u.email, u.name FROM account_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_hash = $1 AND t.purpose = $2 AND t.expires_at > now()",
            token_digest(token),
            Purpose.RESET_PASSWORD.value,
        )
        if row is None:
            await _refuse(pool, token, Purpose.RESET_PASSWORD)
    return ResetHolder(row["email"], row["name"])


async def forget(connection: Connection, user_id: UUID, purpose: Purpose) -> None:
    """Delete the account's codes for ``purpose`` and their e-mails still waiting."""
    await connection.execute(
        "DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2", user_id, purpose.value
    )
    await connection.execute(
        "DELETE FROM account_emails WHERE user_id = $1 AND purpose = $2", user_id, purpose.value
    )


# -- the outbox --------------------------------------------------------------------------


async def claim_due(pool: Pool, batch: int, claim_for: timedelta) -> list[PendingEmail]:
    """Up to ``batch`` e-mails due, each claimed for ``claim_for``: no other sender takes them
    meanwhile, and any sender may once the claim lapses."""
    async with database_errors():
        rows = await pool.fetch(
            """
            UPDATE account_emails SET next_attempt_at = now() + $2::interval
            WHERE id IN (
                SELECT id FROM account_emails
                WHERE next_attempt_at <= now() AND expires_at > now()
                ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
            )
            RETURNING id, purpose, recipient, name, token, expires_at, attempts
            """,
            batch,
            claim_for,
        )
    return [
        PendingEmail(
            id=row["id"],
            purpose=Purpose(row["purpose"]),
            recipient=row["recipient"],
            name=row["name"],
            token=row["token"],
            expires_at=row["expires_at"],
            attempts=row["attempts"],
        )
        for row in rows
    ]


async def delete_sent(pool: Pool, email_ids: list[UUID]) -> None:
    async with database_errors():
        await pool.execute("DELETE FROM account_emails WHERE id = any($1::uuid[])", email_ids)


async def retry_later(pool: Pool, email_id: UUID, delay: timedelta, error: str) -> None:
    async with database_errors():
        await pool.execute(
            "UPDATE account_emails SET attempts = attempts + 1, "
            "next_attempt_at = now() + $2::interval, last_error = $3 WHERE id = $1",
            email_id,
            delay,
            error[:1000],
        )


async def delete_expired(
    pool: Pool, codes_expired_before: datetime, batch: int
) -> Counter[Purpose]:
    """Delete up to ``batch`` e-mails whose code expired before they could be sent, and as
    many codes that expired before ``codes_expired_before``; returns the e-mails deleted, by
    purpose."""
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        purposes = await connection.fetch(
            """
            DELETE FROM account_emails WHERE id IN (
                SELECT id FROM account_emails WHERE expires_at <= now()
                LIMIT $1 FOR UPDATE SKIP LOCKED
            ) RETURNING purpose
            """,
            batch,
        )
        await connection.execute(
            """
            DELETE FROM account_tokens WHERE token_hash IN (
                SELECT token_hash FROM account_tokens WHERE expires_at < $1
                LIMIT $2 FOR UPDATE SKIP LOCKED
            )
            """,
            codes_expired_before,
            batch,
        )
    return Counter(Purpose(row["purpose"]) for row in purposes)
