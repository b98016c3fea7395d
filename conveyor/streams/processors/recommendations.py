"""``recommendations``: "customers also bought", counted from confirmed orders.

``orders.events`` is keyed by order, the counts are per product. Counting a pair (A, B) in a
table keyed by order would scatter product A's counts over every order partition, and
reading them would mean gathering all partitions; a table keyed by product but written while
an order's record is handled would land in the order's partition, where no single task owns
the product. So the processor repartitions, in the Kafka Streams way, through a topic of its
own keyed by product, ``recommendations.copurchases``, and reads it beside its input:

1. ``orders.events`` (partition of the order): OrderPlaced keeps the order's distinct
   products in ``baskets`` (keyed by order id, the retention long). OrderConfirmed turns
   the basket into one ProductsBoughtTogether per product, keyed by that product, naming
   the order's other products, and marks the basket counted; a redelivered OrderConfirmed
   finds it counted and sends nothing. Rejected and cancelled orders send nothing (a
   cancellation after confirmation is not taken back: the customer did buy them together).
2. ``recommendations.copurchases`` (partition of the product): the product's decayed counts
   in ``copurchases`` gain one co-purchase of each other product, unless ``counted`` (keyed
   ``<product>:<order>``, the retention long) says this order was counted for this product
   already: the repartition record itself may be redelivered (sent again by a step 1 whose
   offset was not committed, or read again after a crash), and it carries its order id and
   a derived event id, so counting is idempotent on both hops.
3. Each product whose counts a batch touched is written to PostgreSQL
   (``product_recommendations``, one row per product) and Redis (a JSON copy that the edge
   reads first), in one statement and one pipeline; a database that is down parks the
   record on ``recommendations.copurchases.retry``, and its retry writes the product's
   counts as they are then.

What it keeps stays bounded whatever the history: a product's entry holds at most
``CONVEYOR_RECOMMENDATION_TOP_N`` scores; each score decays exponentially with
``CONVEYOR_RECOMMENDATION_HALF_LIFE_SECONDS`` from the order's confirmation, and one that
decayed below ``FORGOTTEN_BELOW`` is dropped. Baskets and counted marks expire with the state
retention. A record older than the retention is not counted: the marks that would recognize
its redelivery may be gone. The design is in docs/recommendations.md.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.infra import readmodel
from conveyor.streams import metrics
from conveyor.streams.runtime import Decided, Processor, Refused, Send, Sends
from conveyor.streams.stores import ReadModelStores

log = logging.getLogger(__name__)

# A score this small is worth less than a co-purchase six and a half half-lives ago: it is
# dropped, so a product's entry forgets what nobody buys any more.
FORGOTTEN_BELOW = 0.01


class Basket(BaseModel):
    """An order's distinct products, from its OrderPlaced, until it is counted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    products: tuple[str, ...]
    counted: bool = False


class CoPurchases(BaseModel):
    """A product's decayed co-purchase scores, each as of ``as_of`` (seconds since the epoch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: float
    scores: dict[str, float]

    def ranked(self) -> list[tuple[str, float]]:
        """Highest score first; ties by product id, so every replica ranks alike."""
        return sorted(self.scores.items(), key=lambda item: (-item[1], item[0]))


class Counted(BaseModel):
    """That an order's co-purchases were counted for a product (the key says which)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def decayed(score: float, elapsed: float, half_life: float) -> float:
    """``score`` after ``elapsed`` seconds of exponential decay with ``half_life``."""
    return score * math.exp2(-elapsed / half_life)


def add_copurchases(
    current: CoPurchases | None,
    bought_with: Iterable[str],
    at: float,
    *,
    half_life: float,
    top_n: int,
) -> CoPurchases:
    """``current`` with one co-purchase of each of ``bought_with`` at time ``at``.

    The scores are kept as of the latest co-purchase: a later one first decays every score
    to its own time, an earlier one (a late record) adds what it is worth at ``as_of``. Then
    only the ``top_n`` highest scores above ``FORGOTTEN_BELOW`` are kept.
    """
    if current is None:
        scores: dict[str, float] = {}
        as_of, worth = at, 1.0
    elif at >= current.as_of:
        scores = {
            product: decayed(score, at - current.as_of, half_life)
            for product, score in current.scores.items()
        }
        as_of, worth = at, 1.0
    else:
        scores = dict(current.scores)
        as_of, worth = current.as_of, decayed(1.0, current.as_of - at, half_life)
    for product in bought_with:
        scores[product] = scores.get(product, 0.0) + worth
    kept = CoPurchases(as_of=as_of, scores=scores).ranked()
    return CoPurchases(
        as_of=as_of,
        scores={product: score for product, score in kept[:top_n] if score >= FORGOTTEN_BELOW},
    )


@dataclass(frozen=True)
class Decision:
    """What a record leads to: records to send, and a product's counts to write out."""

    sends: tuple[Send, ...] = ()
    product_id: str | None = None
    counts: CoPurchases | None = None


V = TypeVar("V")


class Entries(Protocol[V]):
    """What the decision needs of a table: a ``StateTable``, or a dict in the raw baseline."""

    def get(self, key: str) -> V | None: ...

    def put(self, key: str, value: V, *, expires_in: float | None = None) -> None: ...


@dataclass
class Counter:
    """Steps 1 and 2 above: the per-record decision over the three tables."""

    baskets: Entries[Basket]
    copurchases: Entries[CoPurchases]
    counted: Entries[Counted]
    retention_seconds: float
    half_life_seconds: float
    top_n: int
    _nothing: Decision = field(default_factory=Decision)

    def decide(self, envelope: Envelope[m.Message], key: str) -> Decision:
        message = envelope.payload
        if isinstance(message, m.OrderPlaced):
            return self._remember_basket(message)
        if isinstance(message, m.OrderConfirmed):
            return self._confirmed(message, envelope.occurred_at)
        if isinstance(message, m.ProductsBoughtTogether):
            return self._count(message, envelope.occurred_at)
        return self._nothing  # rejected and cancelled orders count nothing

    def _remember_basket(self, placed: m.OrderPlaced) -> Decision:
        order = str(placed.order_id)
        if self.baskets.get(order) is None:  # a redelivery must not forget it was counted
            products = tuple(dict.fromkeys(str(line.product_id) for line in placed.items))
            self.baskets.put(order, Basket(products=products), expires_in=self.retention_seconds)
        return self._nothing

    def _confirmed(self, confirmed: m.OrderConfirmed, occurred_at: datetime) -> Decision:
        order = str(confirmed.order_id)
        basket = self.baskets.get(order)
        if basket is None:
            if self._too_old(occurred_at):
                return self._nothing
            raise Refused(f"no OrderPlaced seen for order {confirmed.order_id}: no products")
        if basket.counted:
            return self._nothing
        self.baskets.put(
            order, basket.model_copy(update={"counted": True}), expires_in=self.retention_seconds
        )
        products = [UUID(product) for product in basket.products]
        return Decision(
            sends=tuple(
                Send(
                    m.ProductsBoughtTogether(
                        product_id=product,
                        order_id=confirmed.order_id,
                        bought_with=tuple(other for other in products if other != product),
                        confirmed_at=occurred_at,
                    )
                )
                for product in products
                if len(products) > 1
            )
        )

    def _count(self, together: m.ProductsBoughtTogether, occurred_at: datetime) -> Decision:
        product = str(together.product_id)
        mark = f"{product}:{together.order_id}"
        current = self.copurchases.get(product)
        repeated = self.counted.get(mark) is not None
        if repeated or self._too_old(occurred_at):
            # Counted already (or too old to tell): the counts are written out as they are.
            metrics.COPURCHASES.labels("repeated" if repeated else "too_old").inc()
            return Decision(product_id=product, counts=current)
        counts = add_copurchases(
            current,
            (str(other) for other in together.bought_with),
            together.confirmed_at.timestamp(),
            half_life=self.half_life_seconds,
            top_n=self.top_n,
        )
        self.copurchases.put(product, counts)
        self.counted.put(mark, Counted(), expires_in=self.retention_seconds)
        metrics.COPURCHASES.labels("counted").inc()
        return Decision(product_id=product, counts=counts)

    def _too_old(self, occurred_at: datetime) -> bool:
        return (datetime.now(UTC) - occurred_at).total_seconds() > self.retention_seconds


# One row per product, the latest counts replacing the previous ones.
_WRITE = """
    INSERT INTO product_recommendations (product_id, items, as_of, updated_at)
    SELECT product_id, items::jsonb, as_of, now()
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS written(product_id, items, as_of)
    ON CONFLICT (product_id) DO UPDATE
    SET items = excluded.items, as_of = excluded.as_of, updated_at = now()
"""


def items_json(counts: CoPurchases) -> str:
    """The ranked scores as the read model keeps them: ``[{"product_id", "score"}, ...]``."""
    return json.dumps(
        [{"product_id": product, "score": score} for product, score in counts.ranked()]
    )


class Materializer:
    """Step 3 above: each touched product's counts, into PostgreSQL and Redis."""

    def __init__(self, database_url: str, redis_url: str, *, cache_ttl: int) -> None:
        self.stores = ReadModelStores(database_url, redis_url)
        self.cache_ttl = cache_ttl

    async def write(self, batch: Sequence[Decided[Decision]]) -> Sends:
        latest: dict[str, CoPurchases] = {}
        for record in batch:
            decision = record.decision
            if decision.product_id is not None and decision.counts is not None:
                latest[decision.product_id] = decision.counts  # the batch's last is newest
        if latest:
            await self._write(dict(sorted(latest.items())))
        return [(send, record.envelope) for record in batch for send in record.decision.sends]

    async def _write(self, latest: dict[str, CoPurchases]) -> None:
        pool, cache = await self.stores.connected()
        items = {product: items_json(counts) for product, counts in latest.items()}
        await pool.execute(
            _WRITE,
            [UUID(product) for product in latest],
            list(items.values()),
            [datetime.fromtimestamp(counts.as_of, UTC) for counts in latest.values()],
        )
        # Redis is a copy the edge reads first; it expires, and then the edge reads the row.
        async with cache.pipeline(transaction=False) as pipe:
            for product, written in items.items():
                pipe.set(readmodel.recommendations_key(product), written, ex=self.cache_ttl)
            await pipe.execute()
        metrics.RECOMMENDATIONS_WRITTEN.inc(len(latest))


def register(processor: Processor) -> None:
    """The Faust glue: baskets from ``orders.events``, counts from the repartition topic."""
    settings = processor.settings
    counter = Counter(
        baskets=processor.state_table("baskets", Basket),
        copurchases=processor.state_table("copurchases", CoPurchases),
        counted=processor.state_table("counted", Counted),
        retention_seconds=settings.state_retention_seconds,
        half_life_seconds=settings.recommendation_half_life_seconds,
        top_n=settings.recommendation_top_n,
    )
    materializer = Materializer(
        processor.urls.database_url,
        processor.urls.redis_url,
        cache_ttl=max(1, int(settings.state_retention_seconds)),
    )
    processor.decide_and_act_in_batches(processor.spec.inputs, counter.decide, materializer.write)

    @processor.app.on_before_shutdown.connect
    async def close_stores(*_: object, **__: object) -> None:
        await materializer.stores.close()
