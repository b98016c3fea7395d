"""What every data module shares: the pool type, cursors and the boundary for asyncpg errors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from conveyor.api.errors import Conflict, ServiceUnavailable, Unprocessable

Pool = asyncpg.Pool
Row = asyncpg.Record
# What pool.acquire() hands out; it behaves as a connection (generic only to the stubs).
if TYPE_CHECKING:
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy


@asynccontextmanager
async def database_errors(conflict: str = "it already exists") -> AsyncIterator[None]:
    """Translate asyncpg's errors into the edge's, for the statements run inside."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(conflict) from exc
    except (asyncpg.CheckViolationError, asyncpg.DataError) as exc:
        raise Unprocessable(
            "a value is out of the range the shop can store (an amount too large, a text too long)"
        ) from exc
    except (OSError, asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError) as exc:
        raise ServiceUnavailable("the database is unreachable; retry shortly", 5) from exc


def encode_cursor(*position: Any) -> str:
    """An opaque cursor for keyset pagination: the last item's sort key."""
    values = [
        value.isoformat() if isinstance(value, datetime) else str(value) for value in position
    ]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (created_at, id) a cursor points after; Unprocessable when it was not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, identifier = json.loads(raw)
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return parsed, UUID(identifier)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise Unprocessable("the cursor is not one this API gave out") from exc


def page_of(
    rows: list[Row], limit: int, sorted_by: str = "created_at"
) -> tuple[list[Row], str | None]:
    """The first ``limit`` rows (the query fetched one more) and the cursor after them."""
    if len(rows) <= limit:
        return rows, None
    kept = rows[:limit]
    last = kept[-1]
    return kept, encode_cursor(last[sorted_by], last["id"])
