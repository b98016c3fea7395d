"""Sessions whose refresh token expired are deleted in small batches; live ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from conveyor.api.data import users
from conveyor.infra.database import apply_migrations

pytestmark = pytest.mark.stack


async def test_expired_sessions_are_deleted_in_batches_and_live_ones_kept(
    fresh_database_url: str,
) -> None:
    await apply_migrations(fresh_database_url)
    pool = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=2)
    try:
        user = await users.create_user(
            pool, "ada@example.com", "Ada", "hash", verify_within=timedelta(days=2)
        )
        # Lifetimes relative to now: five long expired, one just expired, two live.
        for index, lifetime in enumerate([-30, -30, -30, -30, -30, -0.5, 1, 14]):
            await users.start_session(
                pool,
                user.id,
                f"digest-{index}",
                users.Lifetimes(refresh_token=timedelta(days=lifetime), login=timedelta(days=30)),
            )
        cutoff = datetime.now(UTC) - timedelta(days=1)

        batches: list[int] = []
        while not batches or batches[-1] == 2:
            batches.append(await users.delete_expired_sessions(pool, cutoff, batch=2))

        assert batches == [2, 2, 1]
        left = await pool.fetch("SELECT token_hash FROM sessions ORDER BY expires_at")
        assert [row["token_hash"] for row in left] == ["digest-5", "digest-6", "digest-7"]
    finally:
        await pool.close()
