"""``/products``: the catalog for everyone, its management for admins.

Stock lives in the inventory processor: creating a product and adjusting stock are
commands to Kafka (UpsertProduct, AdjustStock), answered once Kafka has them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response, status

from conveyor.api.data import products
from conveyor.api.deps import AdminUser, Cache, Catalog, Cursor, Db, Limit, Sender
from conveyor.api.errors import NotFound
from conveyor.api.routes import problems
from conveyor.domain.messages import AdjustStock, UpsertProduct
from conveyor.domain.rest import (
    Page,
    Price,
    ProductCreate,
    ProductPublic,
    ProductUpdate,
    Recommendations,
    StockAdjustment,
    StockAdjustmentAccepted,
)

router = APIRouter(prefix="/products", tags=["catalog"])
# Adjustment ids derived from the client's key: a retried adjustment is applied once.
_ADJUSTMENTS = uuid.UUID("5b0e6c1e-3d0f-4b8e-9c55-7a4c2f9d1e60")

SearchText = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00]*$",
        description="Full-text search over name and description (web search syntax).",
    ),
]
PriceBound = Annotated[Price | None, Query()]


# The catalog's reads answer from the worker's catalog cache (``conveyor.api.caching``), as
# bytes with an ETag; the response model still documents what they hold.
CACHED_ANSWER: dict[int | str, dict[str, Any]] = {
    304: {"description": "The ETag sent in If-None-Match is still the answer's."},
}


@router.get(
    "",
    operation_id="listProducts",
    response_model=Page[ProductPublic],
    responses={**problems(422), **CACHED_ANSWER},
)
async def list_products(
    request: Request,
    db: Db,
    cache: Cache,
    catalog: Catalog,
    q: SearchText = None,
    category: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")] = None,
    min_price: PriceBound = None,
    max_price: PriceBound = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Response:
    """The catalog, newest first, filtered by text, category and price.

    Prices and stock are at most CONVEYOR_CATALOG_CACHE_SECONDS old (1 s by default).
    """

    async def page() -> Page[ProductPublic]:
        items, next_cursor = await products.list_products(
            db,
            cache,
            products.CatalogFilter(q, category, min_price, max_price),
            limit,
            cursor,
        )
        return Page(items=items, next_cursor=next_cursor)

    return await catalog.answer(request, page)


@router.get(
    "/{product_id:uuid}",
    operation_id="getProduct",
    response_model=ProductPublic,
    responses={**problems(404), **CACHED_ANSWER},
)
async def get_product(
    request: Request, product_id: UUID, db: Db, cache: Cache, catalog: Catalog
) -> Response:
    """One product with the units available now (at most CONVEYOR_CATALOG_CACHE_SECONDS old)."""

    async def product() -> ProductPublic:
        found = await products.get_product(db, cache, product_id)
        if found is None:
            raise NotFound(f"no product {product_id}")
        return found

    return await catalog.answer(request, product)


@router.get(
    "/{product_id:uuid}/recommendations",
    operation_id="listProductRecommendations",
    response_model=Recommendations,
    responses={**problems(404, 422), **CACHED_ANSWER},
)
async def list_product_recommendations(
    request: Request,
    product_id: UUID,
    db: Db,
    cache: Cache,
    catalog: Catalog,
    limit: Annotated[int, Query(ge=1, le=50, description="Products at most.")] = 8,
) -> Response:
    """The products customers bought together with this one, highest score first.

    Counted from confirmed orders by the recommendations processor, each order's weight
    halving every CONVEYOR_RECOMMENDATION_HALF_LIFE_SECONDS; never the product itself nor a
    retired product; empty until some order bought it with another.
    """

    async def recommended() -> Recommendations:
        found = await products.recommendations(db, cache, product_id, limit)
        if found is None:
            raise NotFound(f"no product {product_id}")
        return found

    return await catalog.answer(request, recommended)


@router.post(
    "",
    operation_id="createProduct",
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 409, 422, 503),
)
async def create_product(
    body: ProductCreate, _: AdminUser, db: Db, sender: Sender, catalog: Catalog, response: Response
) -> ProductPublic:
    """Add a product with its initial stock (admins only)."""
    product_id = uuid.uuid4()

    async def tell_inventory() -> None:
        await sender.send(
            UpsertProduct(
                product_id=product_id,
                sku=body.sku,
                name=body.name,
                initial_stock=body.initial_stock,
            )
        )

    row = await products.create_product(db, product_id, body, tell_inventory)
    catalog.forget()
    response.headers["Location"] = f"/api/v1/products/{product_id}"
    # The inventory applies it in a moment; until then the product shows what it will have.
    return products.product_public(row, body.initial_stock)


@router.patch(
    "/{product_id:uuid}", operation_id="updateProduct", responses=problems(401, 403, 404, 422)
)
async def update_product(
    product_id: UUID, body: ProductUpdate, _: AdminUser, db: Db, cache: Cache, catalog: Catalog
) -> ProductPublic:
    """Change a product's name, description, price or category (admins only)."""
    # Every column is required, so a field sent as null means "leave it as it is".
    changes = {key: value for key, value in body.model_dump().items() if value is not None}
    if not await products.update_product(db, product_id, changes):
        raise NotFound(f"no product {product_id}")
    catalog.forget()
    found = await products.get_product(db, cache, product_id)
    if found is None:
        raise NotFound(f"no product {product_id}")
    return found


@router.delete(
    "/{product_id:uuid}",
    operation_id="deleteProduct",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 403, 404),
)
async def delete_product(product_id: UUID, _: AdminUser, db: Db, catalog: Catalog) -> Response:
    """Take a product out of the catalog; orders that name it keep their lines (admins only)."""
    if not await products.retire_product(db, product_id):
        raise NotFound(f"no product {product_id}")
    catalog.forget()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{product_id:uuid}/stock",
    operation_id="adjustStock",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(401, 403, 404, 422, 503),
)
async def adjust_stock(
    product_id: UUID,
    body: StockAdjustment,
    _: AdminUser,
    db: Db,
    sender: Sender,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Optional: the same key applies the adjustment once, however often sent.",
        ),
    ] = None,
) -> StockAdjustmentAccepted:
    """Add (positive delta) or remove stock; the inventory never lets it go below zero."""
    if not await products.product_exists(db, product_id):
        raise NotFound(f"no product {product_id}")
    adjustment_id = (
        uuid.uuid5(_ADJUSTMENTS, f"{product_id}:{idempotency_key}")
        if idempotency_key
        else uuid.uuid4()
    )
    await sender.send(
        AdjustStock(product_id=product_id, adjustment_id=adjustment_id, delta=body.delta)
    )
    return StockAdjustmentAccepted(
        product_id=product_id, adjustment_id=adjustment_id, delta=body.delta
    )
