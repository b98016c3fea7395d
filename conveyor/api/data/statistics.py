"""Figures over the orders read model for the operations panel (``GET /statistics/orders``).

Every figure is one aggregate over the window's orders, found through ``orders_newest``
(created_at), so the cost follows the window's orders, not the table's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.api.data.base import Pool, database_errors
from conveyor.domain.messages import OrderStatus, RejectionReason
from conveyor.domain.rest import OrdersInMinute, OrderStatistics, RejectionCount


async def order_statistics(pool: Pool, minutes: int) -> OrderStatistics:
    """The orders placed in the last ``minutes``: per minute, by status, rejections by reason."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    async with database_errors():
        rows = await pool.fetch(
            """
            SELECT date_trunc('minute', created_at) AS minute, status, reason, count(*) AS n
            FROM orders
            WHERE created_at >= $1
            GROUP BY 1, 2, 3
            ORDER BY 1
            """,
            since,
        )
    per_minute: dict[datetime, int] = {}
    by_status: dict[OrderStatus, int] = {}
    reasons: dict[RejectionReason, int] = {}
    for row in rows:
        count: int = row["n"]
        per_minute[row["minute"]] = per_minute.get(row["minute"], 0) + count
        status = OrderStatus(row["status"])
        by_status[status] = by_status.get(status, 0) + count
        if row["reason"] is not None:
            reason = RejectionReason(row["reason"])
            reasons[reason] = reasons.get(reason, 0) + count
    return OrderStatistics(
        minutes=minutes,
        since=since,
        placed=sum(per_minute.values()),
        per_minute=[OrdersInMinute(minute=m, placed=n) for m, n in per_minute.items()],
        by_status=by_status,
        rejections=[
            RejectionCount(reason=reason, count=count)
            for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ],
    )
