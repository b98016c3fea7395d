"""The schema is applied automatically, once, safely in parallel, and enforces the invariants."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from importlib import resources

import asyncpg
import pytest

from conveyor.devstack.settings import free_ports
from conveyor.infra import database
from conveyor.infra.database import apply_migrations, available_migrations, redact_dsn
from conveyor.infra.errors import MigrationError

EXPECTED_TABLES = {
    "users", "profiles", "sessions", "products", "stock", "orders", "order_items",
    "payments", "notifications", "schema_migrations", "account_tokens", "account_emails",
    "invoices", "invoice_counters",
    "product_recommendations",
}  # fmt: skip


@pytest.fixture
async def migrated(fresh_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    await apply_migrations(fresh_database_url)
    connection = await asyncpg.connect(fresh_database_url)
    yield connection
    await connection.close()


async def tables(dsn: str) -> set[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await connection.close()


async def test_an_empty_database_gets_every_table(fresh_database_url: str) -> None:
    applied = await apply_migrations(fresh_database_url)
    assert applied == [migration.name for migration in available_migrations()]
    assert await tables(fresh_database_url) == EXPECTED_TABLES


async def test_applying_twice_applies_nothing_the_second_time(fresh_database_url: str) -> None:
    await apply_migrations(fresh_database_url)
    assert await apply_migrations(fresh_database_url) == []


async def test_concurrent_runs_apply_each_migration_exactly_once(fresh_database_url: str) -> None:
    results = await asyncio.gather(*(apply_migrations(fresh_database_url) for _ in range(4)))
    assert sorted(len(applied) for applied in results) == [0, 0, 0, len(available_migrations())]


async def test_an_applied_migration_that_was_edited_is_refused(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await apply_migrations(fresh_database_url)
    [first, *rest] = available_migrations()
    edited = database.Migration(first.version, first.name, first.sql + "\n-- edited\n")
    monkeypatch.setattr(database, "available_migrations", lambda: [edited, *rest])
    with pytest.raises(MigrationError, match=f"{first.name} was changed after it was applied"):
        await apply_migrations(fresh_database_url)


async def test_an_unreachable_database_is_a_migration_error_with_advice() -> None:
    [port] = free_ports(1)
    with pytest.raises(MigrationError, match="conveyor dev up"):
        await apply_migrations(f"postgresql://postgres:hunter2@127.0.0.1:{port}/conveyor")


def test_passwords_never_reach_messages() -> None:
    assert redact_dsn("postgresql://app:hunter2@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redact_dsn("postgresql://app@db/x") == "postgresql://app@db/x"


def test_migrations_ship_inside_the_package() -> None:
    names = [entry.name for entry in resources.files("conveyor.infra.migrations").iterdir()]
    assert "0001_initial.sql" in names


async def insert_product(
    connection: asyncpg.Connection, name: str, description: str, category: str = "input"
) -> uuid.UUID:
    product_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO products (id, sku, name, description, price, currency, category) "
        "VALUES ($1, $2, $3, $4, 49.90, 'EUR', $5)",
        product_id, f"SKU-{product_id.hex[:8]}", name, description, category,
    )  # fmt: skip
    return product_id


async def search(connection: asyncpg.Connection, words: str) -> list[uuid.UUID]:
    rows = await connection.fetch(
        "SELECT id FROM products WHERE search_vector @@ websearch_to_tsquery('english', $1) "
        "ORDER BY ts_rank(search_vector, websearch_to_tsquery('english', $1)) DESC",
        words,
    )
    return [row["id"] for row in rows]


async def test_full_text_search_finds_products_by_stemmed_words(
    migrated: asyncpg.Connection,
) -> None:
    keyboard = await insert_product(migrated, "Mechanical keyboard", "Tactile switches")
    await insert_product(migrated, "Desk lamp", "Warm light for late nights")
    assert await search(migrated, "keyboards") == [keyboard]
    assert await search(migrated, "switch") == [keyboard]
    assert await search(migrated, "violin") == []


async def test_a_name_match_ranks_above_a_description_match(
    migrated: asyncpg.Connection,
) -> None:
    in_description = await insert_product(migrated, "Wrist rest", "Made for any keyboard")
    in_name = await insert_product(migrated, "Keyboard", "Compact, 60 percent layout")
    assert await search(migrated, "keyboard") == [in_name, in_description]


async def test_stock_can_never_be_negative(migrated: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await migrated.execute(
            "INSERT INTO stock (product_id, available, reserved, sold) VALUES ($1, -1, 0, 0)",
            uuid.uuid4(),
        )


async def insert_order(
    connection: asyncpg.Connection, user_id: uuid.UUID, key: str, status: str = "pending"
) -> None:
    await connection.execute(
        "INSERT INTO orders (id, user_id, idempotency_key, status, total, currency) "
        "VALUES ($1, $2, $3, $4, 10.00, 'EUR')",
        uuid.uuid4(), user_id, key, status,
    )  # fmt: skip


async def test_one_idempotency_key_from_one_user_is_one_order(
    migrated: asyncpg.Connection,
) -> None:
    ada, bob = uuid.uuid4(), uuid.uuid4()
    await insert_order(migrated, ada, "key-1")
    await insert_order(migrated, bob, "key-1")
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert_order(migrated, ada, "key-1")


async def test_an_unknown_order_status_is_refused(migrated: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_order(migrated, uuid.uuid4(), "key-2", status="shipped")


async def test_each_terminal_event_of_an_order_is_one_notification_claimed_before_sent(
    migrated: asyncpg.Connection,
) -> None:
    order_id, user_id = uuid.uuid4(), uuid.uuid4()
    # A claim: the email is not sent yet (the processor records sent_at once it is).
    claim = (
        "INSERT INTO notifications (id, user_id, order_id, event, recipient, subject) "
        "VALUES ($1, $2, $3, 'OrderConfirmed', 'ada@example.com', 'Confirmed')"
    )
    await migrated.execute(claim, uuid.uuid4(), user_id, order_id)
    assert await migrated.fetchval("SELECT sent_at FROM notifications") is None
    with pytest.raises(asyncpg.UniqueViolationError):
        await migrated.execute(claim, uuid.uuid4(), user_id, order_id)


async def test_an_email_address_is_one_account_whatever_its_case(
    migrated: asyncpg.Connection,
) -> None:
    insert = "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, 'Ada', 'x')"
    await migrated.execute(insert, uuid.uuid4(), "Ada@Example.com")
    with pytest.raises(asyncpg.UniqueViolationError):
        await migrated.execute(insert, uuid.uuid4(), "ada@example.com")
