"""The e-mails the notifications processor recorded sending (``notifications``).

A row whose ``sent_at`` is NULL is an email claimed but not yet known to be sent; it is not
listed until the processor records it sent.
"""

from __future__ import annotations

from uuid import UUID

from conveyor.api.data.base import Pool, database_errors, decode_cursor, page_of
from conveyor.domain.rest import NotificationPublic


async def list_notifications(
    pool: Pool, user_id: UUID, limit: int, cursor: str | None
) -> tuple[list[NotificationPublic], str | None]:
    after = decode_cursor(cursor) if cursor else None
    async with database_errors():
        rows = await pool.fetch(
            """
            SELECT id, order_id, event, subject, sent_at FROM notifications
            WHERE user_id = $1 AND sent_at IS NOT NULL
              AND ($2::timestamptz IS NULL OR (sent_at, id) < ($2, $3))
            ORDER BY sent_at DESC, id DESC
            LIMIT $4
            """,
            user_id,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    kept, next_cursor = page_of(rows, limit, sorted_by="sent_at")
    return [
        NotificationPublic(
            id=row["id"],
            order_id=row["order_id"],
            event=row["event"],
            subject=row["subject"],
            sent_at=row["sent_at"],
        )
        for row in kept
    ], next_cursor
