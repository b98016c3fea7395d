"""Where the read models live in Redis, named once for the projector that writes them and
the edge that reads them."""

from __future__ import annotations

from uuid import UUID

PREFIX = "conveyor"


def order_status_key(order_id: UUID | str) -> str:
    """A hash with the order's ``status``, ``reason`` and ``updated_at``."""
    return f"{PREFIX}:order:{order_id}"


def order_status_channel(order_id: UUID | str) -> str:
    """Pub/sub channel that gets the order's status (JSON) each time it changes."""
    return f"{PREFIX}:order:{order_id}:changes"


def stock_key(product_id: UUID | str) -> str:
    """A hash with the product's ``available``, ``reserved``, ``sold`` and ``version``."""
    return f"{PREFIX}:stock:{product_id}"


def recommendations_key(product_id: UUID | str) -> str:
    """JSON ``[{"product_id", "score"}, ...]``: the products bought with this one, best first."""
    return f"{PREFIX}:recommendations:{product_id}"
