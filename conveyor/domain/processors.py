"""The stream processors of the order saga, declared once: the catalogue.

Everything that lists processors derives from ``CATALOGUE``: the worker runtime and
``conveyor worker``, the dev stack's processes and their metrics ports, the dashboards, the
operator's children and the StreamProcessor CRD's ``processor`` enum. Adding a processor
means one ``ProcessorSpec`` here plus its handler module,
``conveyor/streams/processors/<name>.py``, whose ``register`` wires its handling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from conveyor.domain.topics import (
    INVENTORY_COMMANDS,
    INVENTORY_EVENTS,
    NOTIFICATIONS_EVENTS,
    ORDERS_COMMANDS,
    ORDERS_EVENTS,
    ORDERS_REPLIES,
    PAYMENTS_COMMANDS,
    RECOMMENDATIONS_COPURCHASES,
    TopicSpec,
    consumer_group,
)


@dataclass(frozen=True)
class ProcessorSpec:
    name: str
    # One line on what it does, as the dashboards introduce it.
    summary: str
    # The topics it consumes: its consumer lag is counted on these, and more replicas than
    # their largest partition count would sit idle.
    inputs: tuple[TopicSpec, ...]
    # The Kafka topics it writes (besides dead letters, retries and its tables' changelogs).
    outputs: tuple[TopicSpec, ...]
    # The inputs whose records it parks on ``<topic>.retry`` when carrying them out fails
    # transiently (a gateway, mail server or database down); it consumes those too. A
    # processor that needs no outside service parks nothing.
    parks: tuple[TopicSpec, ...]
    # The Faust tables it keeps, co-partitioned with its inputs (each entry expires with the
    # state retention).
    tables: tuple[str, ...]
    # Where its metrics listen locally: the dev stack's first metrics port plus this.
    metrics_port_offset: int
    # Off an order's path: no order waits on it (its emails and recommendations follow the
    # outcome), so it waits longer for its batches to fill (CONVEYOR_BACKGROUND_BATCH_SECONDS)
    # and pays each batch's fixed costs once for more orders.
    background: bool = False

    @property
    def stateful(self) -> bool:
        return bool(self.tables)

    @property
    def consumer_group(self) -> str:
        return consumer_group(self.name)


# In the order the dev stack starts them.
CATALOGUE: tuple[ProcessorSpec, ...] = (
    ProcessorSpec(
        "orders",
        summary="the saga orchestrator: orders.commands and orders.replies in, commands to "
        "inventory and payments and orders.events out",
        inputs=(ORDERS_COMMANDS, ORDERS_REPLIES),
        outputs=(INVENTORY_COMMANDS, PAYMENTS_COMMANDS, ORDERS_EVENTS),
        parks=(),
        tables=("sagas",),
        metrics_port_offset=0,
    ),
    ProcessorSpec(
        "inventory",
        summary="stock per product: reserves, releases and commits lines, publishes "
        "inventory.events",
        inputs=(INVENTORY_COMMANDS,),
        outputs=(ORDERS_REPLIES, INVENTORY_EVENTS),
        parks=(),
        tables=("products", "holds"),
        metrics_port_offset=1,
    ),
    ProcessorSpec(
        "payments",
        summary="authorizes and refunds through the payment gateway, behind a circuit breaker",
        inputs=(PAYMENTS_COMMANDS,),
        outputs=(ORDERS_REPLIES,),
        parks=(PAYMENTS_COMMANDS,),
        tables=(),
        metrics_port_offset=2,
    ),
    ProcessorSpec(
        "notifications",
        summary="emails the customer on every terminal order event",
        inputs=(ORDERS_EVENTS,),
        outputs=(NOTIFICATIONS_EVENTS,),
        parks=(ORDERS_EVENTS,),
        tables=("customers",),
        metrics_port_offset=3,
        background=True,
    ),
    ProcessorSpec(
        "projector",
        summary="writes orders.events and inventory.events to PostgreSQL and Redis, in batches",
        inputs=(ORDERS_EVENTS, INVENTORY_EVENTS),
        outputs=(),
        parks=(ORDERS_EVENTS, INVENTORY_EVENTS),
        tables=(),
        metrics_port_offset=4,
    ),
    ProcessorSpec(
        "recommendations",
        summary="counts the products bought together in confirmed orders, decayed and kept "
        "to the top few per product, and writes them to PostgreSQL and Redis",
        # orders.events for the baskets; its own repartition topic, keyed by product, for
        # the counts (docs/recommendations.md).
        inputs=(ORDERS_EVENTS, RECOMMENDATIONS_COPURCHASES),
        outputs=(RECOMMENDATIONS_COPURCHASES,),
        parks=(RECOMMENDATIONS_COPURCHASES,),
        tables=("baskets", "copurchases", "counted"),
        metrics_port_offset=5,
        background=True,
    ),
)

PROCESSORS: Mapping[str, ProcessorSpec] = {spec.name: spec for spec in CATALOGUE}
PROCESSOR_NAMES: tuple[str, ...] = tuple(PROCESSORS)

# Every topic some processor parks records of: each has a ``<topic>.retry`` beside it.
RETRIED_TOPICS: tuple[TopicSpec, ...] = tuple(
    {spec.name: spec for processor in CATALOGUE for spec in processor.parks}.values()
)


def processor_spec(name: str) -> ProcessorSpec:
    try:
        return PROCESSORS[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not a processor; the processors: {', '.join(PROCESSOR_NAMES)}"
        ) from None


def _known_processor(name: str) -> str:
    if name not in PROCESSORS:
        raise ValueError(f"not a processor; the processors: {', '.join(PROCESSOR_NAMES)}")
    return name


# A processor's name: validated against the catalogue, and an enum of its names in JSON
# Schema (so the StreamProcessor CRD lets the API server refuse any other).
ProcessorName = Annotated[
    str,
    AfterValidator(_known_processor),
    WithJsonSchema({"enum": list(PROCESSOR_NAMES), "type": "string"}),
]
