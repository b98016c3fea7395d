"""The catalog (``products``), which the edge owns, and the stock figures the projector keeps.

Stock is read from Redis (the projector's hot copy) and falls back to PostgreSQL's
``stock`` table; a product the inventory has not reported yet shows none available.
Recommendations are read the same way: Redis first, then ``product_recommendations``, both
written by the recommendations processor.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.api.data.base import Pool, Row, database_errors, decode_cursor, page_of
from conveyor.api.errors import Unprocessable
from conveyor.domain.rest import (
    ProductCreate,
    ProductPublic,
    Recommendation,
    Recommendations,
    StockLevel,
)
from conveyor.infra import readmodel

_COLUMNS = "p.id, p.sku, p.name, p.description, p.price, p.currency, p.category, p.created_at"
_DUPLICATE_SKU = "a product with this SKU already exists"


@dataclass(frozen=True)
class CatalogFilter:
    query: str | None = None
    category: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None


async def stock_levels(
    pool: Pool, cache: aioredis.Redis, product_ids: Sequence[UUID]
) -> dict[UUID, int]:
    """Available units per product: Redis first, PostgreSQL for what Redis lacks."""
    levels: dict[UUID, int] = {}
    if not product_ids:
        return levels
    try:
        async with cache.pipeline(transaction=False) as pipe:
            for product_id in product_ids:
                pipe.hget(readmodel.stock_key(product_id), "available")
            answers: list[Any] = await pipe.execute()
        for product_id, available in zip(product_ids, answers, strict=True):
            if available is not None:
                levels[product_id] = int(available)
    except RedisError:
        pass  # PostgreSQL has the same figures, a moment older at worst.
    missing = [product_id for product_id in product_ids if product_id not in levels]
    if missing:
        async with database_errors():
            rows = await pool.fetch(
                "SELECT product_id, available FROM stock WHERE product_id = ANY($1::uuid[])",
                missing,
            )
        levels.update({row["product_id"]: row["available"] for row in rows})
    return levels


def product_public(row: Row, available: int) -> ProductPublic:
    return ProductPublic(
        id=row["id"],
        sku=row["sku"],
        name=row["name"],
        description=row["description"],
        price=row["price"],
        currency=row["currency"].strip(),
        category=row["category"],
        stock=StockLevel(available=max(available, 0)),
    )


async def create_product(
    pool: Pool,
    product_id: UUID,
    product: ProductCreate,
    before_commit: Callable[[], Awaitable[object]],
) -> Row:
    """Insert the product and run ``before_commit`` (telling the inventory) in its transaction.

    When ``before_commit`` fails the product is not created, so a catalog entry never
    exists without the inventory having been told about it.
    """
    async with (
        database_errors(_DUPLICATE_SKU),
        pool.acquire() as connection,
        connection.transaction(),
    ):
        row = await connection.fetchrow(
            f"""
            INSERT INTO products (id, sku, name, description, price, currency, category)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING {_COLUMNS.replace("p.", "")}
            """,
            product_id,
            product.sku,
            product.name,
            product.description,
            product.price,
            product.currency,
            product.category,
        )
        await before_commit()
    assert row is not None
    return row


async def find_products(pool: Pool, product_ids: Sequence[UUID]) -> dict[UUID, Row]:
    """The listed products still in the catalog, by id (the others are simply absent)."""
    async with database_errors():
        rows = await pool.fetch(
            f"SELECT {_COLUMNS} FROM products p "
            "WHERE p.id = ANY($1::uuid[]) AND p.deleted_at IS NULL",
            list(product_ids),
        )
    return {row["id"]: row for row in rows}


async def get_product(pool: Pool, cache: aioredis.Redis, product_id: UUID) -> ProductPublic | None:
    rows = await find_products(pool, [product_id])
    row = rows.get(product_id)
    if row is None:
        return None
    levels = await stock_levels(pool, cache, [product_id])
    return product_public(row, levels.get(product_id, 0))


async def list_products(
    pool: Pool,
    cache: aioredis.Redis,
    where: CatalogFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[ProductPublic], str | None]:
    """Newest first; with a query, only matches, still newest first so cursors stay exact."""
    if (
        where.min_price is not None
        and where.max_price is not None
        and where.min_price > where.max_price
    ):
        raise Unprocessable("min_price must not exceed max_price")
    after = decode_cursor(cursor) if cursor else None
    async with database_errors():
        rows = await pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM products p
            WHERE p.deleted_at IS NULL
              AND ($1::text IS NULL OR p.search_vector @@ websearch_to_tsquery('english', $1))
              AND ($2::text IS NULL OR p.category = $2)
              AND ($3::numeric IS NULL OR p.price >= $3)
              AND ($4::numeric IS NULL OR p.price <= $4)
              AND ($5::timestamptz IS NULL OR (p.created_at, p.id) < ($5, $6))
            ORDER BY p.created_at DESC, p.id DESC
            LIMIT $7
            """,
            where.query,
            where.category,
            where.min_price,
            where.max_price,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    kept, next_cursor = page_of(rows, limit)
    levels = await stock_levels(pool, cache, [row["id"] for row in kept])
    return [product_public(row, levels.get(row["id"], 0)) for row in kept], next_cursor


async def update_product(pool: Pool, product_id: UUID, changes: dict[str, Any]) -> bool:
    columns = [
        column for column in ("name", "description", "price", "category") if column in changes
    ]
    if not columns:
        async with database_errors():
            found = await pool.fetchval(
                "SELECT id FROM products WHERE id = $1 AND deleted_at IS NULL", product_id
            )
        return found is not None
    assignments = ", ".join(f"{column} = ${index + 2}" for index, column in enumerate(columns))
    async with database_errors():
        updated = await pool.fetchval(
            f"UPDATE products SET {assignments}, updated_at = now() "
            "WHERE id = $1 AND deleted_at IS NULL RETURNING id",
            product_id,
            *(changes[column] for column in columns),
        )
    return updated is not None


async def retire_product(pool: Pool, product_id: UUID) -> bool:
    """Hide a product from the catalog; orders that name it keep their lines."""
    async with database_errors():
        retired = await pool.fetchval(
            "UPDATE products SET deleted_at = now(), updated_at = now() "
            "WHERE id = $1 AND deleted_at IS NULL RETURNING id",
            product_id,
        )
    return retired is not None


async def product_exists(pool: Pool, product_id: UUID) -> bool:
    return bool(await find_products(pool, [product_id]))


async def _scored(pool: Pool, cache: aioredis.Redis, product_id: UUID) -> list[tuple[UUID, float]]:
    """The products bought with ``product_id`` and their scores, best first (none: [])."""
    items: str | bytes | None = None
    with contextlib.suppress(RedisError):  # PostgreSQL has the same row.
        items = await cache.get(readmodel.recommendations_key(product_id))
    if items is None:
        async with database_errors():
            items = await pool.fetchval(
                "SELECT items::text FROM product_recommendations WHERE product_id = $1",
                product_id,
            )
    if items is None:
        return []
    return [(UUID(item["product_id"]), float(item["score"])) for item in json.loads(items)]


async def recommendations(
    pool: Pool, cache: aioredis.Redis, product_id: UUID, limit: int
) -> Recommendations | None:
    """Up to ``limit`` products bought with ``product_id``, best first; None: no such product.

    Retired products are left out, and so is the product itself.
    """
    scored = await _scored(pool, cache, product_id)
    rows = await find_products(pool, [product_id, *(other for other, _ in scored)])
    if product_id not in rows:
        return None
    kept = [(other, score) for other, score in scored if other != product_id and other in rows]
    kept = kept[:limit]
    levels = await stock_levels(pool, cache, [other for other, _ in kept])
    return Recommendations(
        items=[
            Recommendation(product=product_public(rows[other], levels.get(other, 0)), score=score)
            for other, score in kept
        ]
    )
