"""``/statistics``: live figures for the admin console's operations panel (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from conveyor.api.data import statistics
from conveyor.api.deps import AdminUser, Db
from conveyor.api.routes import problems
from conveyor.domain.rest import OrderStatistics

router = APIRouter(prefix="/statistics", tags=["operations"], responses=problems(401, 403))
# A day at most: the panel shows the last hour by default, and a wider window would scan
# more of the orders table than a live panel should on each refresh.
MAX_MINUTES = 24 * 60


@router.get("/orders", operation_id="getOrderStatistics", responses=problems(422))
async def order_statistics(
    _: AdminUser,
    db: Db,
    minutes: Annotated[
        int, Query(ge=1, le=MAX_MINUTES, description="The window, in minutes, ending now.")
    ] = 60,
) -> OrderStatistics:
    """Orders placed per minute in the window, their statuses now, and why the rejected
    ones were rejected, from the orders read model (so a moment behind the saga)."""
    return await statistics.order_statistics(db, minutes)
